"""Carrying out the planner's actions (planner.py).

`Applier` makes them real in the sandbox through the handlers, recording each in the team's state
as it goes; `DryRun` is a preview's stand-in with placeholder ids, which reads (an import's
lookup) but writes nothing. The engine picks one and runs the program against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from provisioner.engines.base import Progress, ResourceChange
from provisioner.engines.sandbox.handlers import handler_for
from provisioner.engines.sandbox.handlers.context import SandboxContext, region_of
from provisioner.engines.sandbox.planner import ADOPT, REPLACE, SAME, UNHANDLED, UPDATE, Action, Removal, stored_change
from provisioner.engines.sandbox.state import StackState, StateStore, StoredResource, inputs_hash, now_iso
from provisioner.errors import EnvctlError

if TYPE_CHECKING:
    from provisioner.engines.mocked import Registration


@dataclass(frozen=True)
class Outcome:
    physical_id: str  # what the program gets back
    outputs: dict[str, Any]
    change: ResourceChange  # what the operation's result reports


def _placeholders(region: str) -> Any:
    from provisioner.engines.offline import OfflineMaterialiser

    return OfflineMaterialiser(region)


def _find_kept(ctx: SandboxContext, action: Action, region: str) -> tuple[str, dict[str, Any]]:
    """The program's `import_` (data an earlier destroy kept): adopt the existing resource, as Pulumi
    does, never create it; like Pulumi, fail when it does not exist. A resource the program keeps
    (retain_on_delete) but does not import is created, and AWS's refusals apply."""
    reg = action.reg
    found = action.handler.find(ctx, reg, region)
    if found is None:
        raise EnvctlError(f"cannot import {reg.type} {reg.name}: {reg.import_id} does not exist")
    return found


class DryRun:
    """A preview: each action answered with what it would give; nothing made, deleted or recorded."""

    def __init__(self, ctx: SandboxContext, default_region: str):
        self.ctx = ctx
        self.region = default_region
        self.placeholders = _placeholders(default_region)
        self.replaced: list[StoredResource] = []  # stays empty: a preview replaces nothing

    def adopt_interrupted(self) -> None:
        """Nothing: the next apply adopts what an interrupted run made."""

    def execute(self, action: Action) -> Outcome:
        reg, prior = action.reg, action.prior
        if action.kind == ADOPT:
            physical_id, outputs = _find_kept(self.ctx, action, region_of(reg, self.region))
            return Outcome(physical_id, outputs, action.change(physical_id))
        if action.kind == SAME:
            return Outcome(prior.id, prior.outputs, action.change(prior.id))
        if action.kind == UPDATE:
            return Outcome(prior.id, {**prior.outputs, **reg.inputs}, action.change(prior.id))
        physical_id, outputs = self.placeholders.register(reg)
        if action.kind == UNHANDLED:
            return Outcome(physical_id, outputs, action.change(physical_id))
        # A create has no id yet; a replacement reports the resource it would replace.
        return Outcome(physical_id, outputs, action.change(prior.id if action.kind == REPLACE else ""))

    def remove(self, removals: list[Removal]) -> None:
        """Nothing: the result lists them."""

    def complete(self, operation: str, *, outputs: dict[str, Any], fingerprint: str) -> None:
        """Nothing: a preview leaves the state as it was."""

    def fail(self, operation: str, error: str) -> None:
        """Nothing: a preview leaves the state as it was."""


class Applier:
    """Makes each action real in the sandbox and records it in the team's state, saved after every change."""

    def __init__(self, ctx: SandboxContext, store: StateStore, state: StackState, default_region: str,
                 progress: Progress):
        self.ctx = ctx
        self.store = store
        self.state = state
        self.region = default_region
        self.progress = progress
        self.placeholders = _placeholders(default_region)
        self.replaced: list[StoredResource] = []  # old resources to delete once the program is done

    def adopt_interrupted(self) -> None:
        """Resources whose create was interrupted (process killed mid-call): adopt them if they exist."""
        from provisioner.engines.mocked import Registration

        adopted = []
        for urn, pending in self.state.pending.items():
            handler = handler_for(pending["type"])
            reg = Registration(urn=urn, type=pending["type"], name=pending["name"], parent="", custom=True,
                               inputs=pending["inputs"], dependencies=[], provider=pending.get("provider", ""))
            found = handler.find(self.ctx, reg, region_of(reg, self.region)) if handler else None
            if found is not None:
                self.progress(f"adopting {reg.type} {reg.name} made by an interrupted run")
                adopted.append(_adopted(reg, *found))
        with self.store.changing(self.state):
            self.state.pending.clear()
            for resource in adopted:
                self.state.record(resource)

    def execute(self, action: Action) -> Outcome:
        reg, prior, handler = action.reg, action.prior, action.handler
        region = region_of(reg, self.region)
        if action.kind == SAME:  # recorded again for its place in the order; saved with the next change
            self._record(action, prior.id, prior.outputs, inputs=prior.inputs, save=False)
            return Outcome(prior.id, prior.outputs, action.change(prior.id))
        if action.kind == UNHANDLED:
            physical_id, outputs = self.placeholders.register(reg)
            self._record(action, physical_id, outputs, materialised=False)
            return Outcome(physical_id, outputs, action.change(physical_id))
        if action.kind == ADOPT:
            physical_id, outputs = _find_kept(self.ctx, action, region)
            self.progress(f"adopting {reg.type} {reg.name} ({action.shown_name}, kept by an earlier destroy)")
        elif action.kind == UPDATE:
            self.progress(f"updating {reg.type} {reg.name} ({', '.join(action.reasons)})")
            physical_id, outputs = prior.id, handler.update(self.ctx, reg, prior, region)
        else:
            if action.kind == REPLACE:
                self.progress(f"replacing {reg.type} {reg.name} ({', '.join(action.reasons)})")
                if action.delete_first:
                    handler.delete(self.ctx, prior, region_of(prior, self.region))
                else:
                    self.replaced.append(prior)
            else:
                self.progress(f"creating {reg.type} {reg.name}")
            with self.store.changing(self.state):
                self.state.note_pending(reg.urn, {"type": reg.type, "name": reg.name, "inputs": reg.inputs,
                                                  "provider": reg.provider})
            physical_id, outputs = handler.create(self.ctx, reg, region)
        self._record(action, physical_id, outputs)
        return Outcome(physical_id, outputs, action.change(physical_id))

    def _record(self, action: Action, physical_id: str, outputs: dict[str, Any], *, materialised: bool = True,
                inputs: dict[str, Any] | None = None, save: bool = True) -> None:
        reg = action.reg
        with self.store.changing(self.state, save=save):
            self.state.record(StoredResource(
                urn=reg.urn, type=reg.type, name=reg.name, id=physical_id, inputs=inputs if inputs is not None else reg.inputs,
                outputs=outputs, inputs_hash=action.digest, parent=reg.parent, dependencies=reg.dependencies,
                provider=reg.provider, retain_on_delete=reg.retain_on_delete, materialised=materialised))

    def remove(self, removals: list[Removal]) -> None:
        """In the order given, the state saved after each: an interrupted run resumes where it stopped."""
        for removal in removals:
            if removal.delete:
                self._delete(removal.resource)
            if removal.forget:
                with self.store.changing(self.state):
                    self.state.forget(removal.resource.urn)

    def _delete(self, resource: StoredResource) -> None:
        if not resource.materialised:
            return
        handler = handler_for(resource.type)
        if handler is None:
            raise EnvctlError(f"cannot delete {resource.type} {resource.id}: no sandbox handler for its type")
        self.progress(f"deleting {resource.type} {resource.name}")
        handler.delete(self.ctx, resource, region_of(resource, self.region))

    def forget_vanished(self) -> list[ResourceChange]:
        """Refresh: drop from the state what is no longer in the sandbox, reported as deleted."""
        resources = self.state.ordered()
        gone = {r.urn for r in resources if r.materialised and not self._exists(r)}
        with self.store.changing(self.state):
            for urn in gone:
                self.state.forget(urn)
            if gone:  # the program must run again to put them back: no skipping by fingerprint
                self.state.fingerprint = ""
            self.state.last_operation, self.state.last_updated = "refresh", now_iso()
        return [stored_change(r, "delete", "gone from the sandbox") if r.urn in gone else stored_change(r, "same")
                for r in resources]

    def _exists(self, resource: StoredResource) -> bool:
        handler = handler_for(resource.type)
        return handler is None or handler.exists(self.ctx, resource, region_of(resource, self.region))

    def complete(self, operation: str, *, outputs: dict[str, Any], fingerprint: str) -> None:
        """The program ran and every action is done: the state holds all of the environment."""
        with self.store.changing(self.state):
            self.state.outputs, self.state.fingerprint = outputs, fingerprint
            self._concluded(operation, "ok")

    def fail(self, operation: str, error: str) -> None:
        with self.store.changing(self.state):
            self._concluded(operation, "failed", error)

    def _concluded(self, operation: str, status: str, error: str = "") -> None:
        self.state.last_operation, self.state.last_updated = operation, now_iso()
        self.state.status, self.state.error = status, error


def _adopted(reg: Registration, physical_id: str, outputs: dict[str, Any]) -> StoredResource:
    return StoredResource(urn=reg.urn, type=reg.type, name=reg.name, id=physical_id, inputs=reg.inputs, outputs=outputs,
                          inputs_hash=inputs_hash(reg.inputs), provider=reg.provider)
