"""The sandbox's plan: from a registration and what the state holds of it, the action to take.

Pure: it reads only its arguments and calls nothing (no handler, no moto, no file), so a preview
and an apply decide alike; the applier carries the actions out (applier.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from provisioner.engines.base import ResourceChange
from provisioner.engines.sandbox.state import StackState, StoredResource, inputs_hash

if TYPE_CHECKING:
    from provisioner.engines.mocked import Registration
    from provisioner.engines.sandbox.handlers.base import Handler

SAME = "same"  # the stored resource is what the program asks for
CREATE = "create"
ADOPT = "adopt"  # the program imports it (data an earlier destroy kept): found, never created
UPDATE = "update"  # changed in place
REPLACE = "replace"  # a new resource; the old one goes before or after (see Action.delete_first)
UNHANDLED = "unhandled"  # no handler for the type: recorded with placeholder ids, reported "not materialised"


@dataclass(frozen=True)
class Action:
    kind: str
    reg: Registration
    handler: Handler | None
    digest: str  # of the inputs that count (ignore_changes left out)
    prior: StoredResource | None = None
    reasons: tuple[str, ...] = ()  # update: the keys that changed; replace: the keys that force it

    @property
    def delete_first(self) -> bool:
        """Replace by deleting the old resource first: its name is fixed, so the new one cannot exist beside it."""
        return self.kind == REPLACE and bool(self.reg.delete_before_replace
                                             or (self.handler is not None and self.handler.delete_before_replace))

    @property
    def shown_name(self) -> str:
        """How an adopted resource is named in messages: names read better than ARNs."""
        return self.reg.inputs.get("name") or self.reg.inputs.get("bucket") or self.reg.import_id

    def change(self, physical_id: str) -> ResourceChange:
        """The action as the operation's result reports it."""
        action, detail = self.kind, ""
        if self.kind == ADOPT:
            action, detail = CREATE, f"adopted the kept {self.shown_name}"
        elif self.kind == UPDATE:
            detail = "changed: " + ", ".join(self.reasons)
        elif self.kind == REPLACE:
            detail = "replaced because of: " + ", ".join(self.reasons)
        elif self.kind == UNHANDLED:
            action = CREATE if self.prior is None else (SAME if self.prior.inputs_hash == self.digest else UPDATE)
        return ResourceChange(urn=self.reg.urn, type=self.reg.type, name=self.reg.name, action=action, detail=detail,
                              materialised=self.kind != UNHANDLED, physical_id=physical_id)


def plan(reg: Registration, prior: StoredResource | None, handler: Handler | None) -> Action:
    """What to do with `reg`, given what the state holds under its URN and the handler of its type."""
    digest = inputs_hash(reg.inputs, reg.ignore_changes)
    if handler is None:
        return Action(UNHANDLED, reg, None, digest, prior)
    if prior is not None and prior.materialised and prior.inputs_hash == digest:
        return Action(SAME, reg, handler, digest, prior)
    if prior is None or not prior.materialised:
        return Action(ADOPT if reg.import_id else CREATE, reg, handler, digest)
    changed = _changed_keys(prior.inputs, reg.inputs, reg.ignore_changes)
    forced = [k for k in changed if k in handler.replace_on or k in reg.replace_on_changes]
    if handler.can_update and not forced:
        return Action(UPDATE, reg, handler, digest, prior, tuple(changed))
    return Action(REPLACE, reg, handler, digest, prior, tuple(forced or changed))


def _changed_keys(old: dict[str, Any], new: dict[str, Any], ignore: list[str]) -> list[str]:
    keys = (set(old) | set(new)) - set(ignore)
    return sorted(k for k in keys if old.get(k) != new.get(k))


def nothing_can_change(state: StackState, fingerprint: str) -> bool:
    """Same request, same envctl, last apply complete: the program would register exactly what is there."""
    return (state.fingerprint == fingerprint and state.status == "ok" and not state.pending
            and all(r.materialised for r in state.resources.values()))


@dataclass(frozen=True)
class Removal:
    """A stored resource on its way out, in the order removals run (the reverse of creation)."""

    resource: StoredResource
    delete: bool  # delete it in the sandbox (a retained resource stays there)
    forget: bool  # drop it from the state (a replaced resource's URN already names its successor)

    def change(self) -> ResourceChange:
        return stored_change(self.resource, "delete")


def stored_change(resource: StoredResource, action: str, detail: str = "") -> ResourceChange:
    """A stored resource as a result reports it (`action` one of engines.base.ACTIONS)."""
    return ResourceChange(urn=resource.urn, type=resource.type, name=resource.name, action=action, detail=detail,
                          physical_id=resource.id)


def removals_after_program(state: StackState, registered: set[str], replaced: list[StoredResource]) -> list[Removal]:
    """After the program ran: the resources it replaced (created before deleted, as Pulumi does) and the
    ones it no longer registers; a removed resource the program retains stays in the sandbox."""
    removed = [Removal(r, delete=not r.retain_on_delete, forget=True) for r in state.ordered() if r.urn not in registered]
    return list(reversed([Removal(r, delete=True, forget=False) for r in replaced] + removed))


def removals_for_destroy(state: StackState, *, delete_data: bool) -> list[Removal]:
    """Everything, newest first; the team's data (retained resources) stays unless `delete_data`."""
    return [Removal(r, delete=delete_data or not r.retain_on_delete, forget=True) for r in reversed(state.ordered())]
