"""Runs the program in-process under Pulumi mocks and records every resource it registers.

A `Materialiser` decides what a registration becomes: the offline preview answers with
placeholders; the sandbox creates the resource in moto and answers with what moto returned.
Registrations arrive on executor threads (Pulumi registers independent resources concurrently),
each only once the resources it depends on have answered.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime import stack as pulumi_stack
from pulumi.runtime.config import set_all_config

STACK_TYPE = "pulumi:pulumi:Stack"
PROVIDER_PREFIX = "pulumi:providers:"



@dataclass
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    dependencies: list[str]
    provider: str  # "<provider urn>::<provider id>" or ""
    ignore_changes: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    # input property -> URNs its value came from (only properties that have some); `dependencies`
    # is their union plus `depends_on`. A dependency on a component arrives expanded by the SDK
    # to the component's custom children, so every URN here names a custom resource.
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    protect: bool = False
    import_id: str = ""  # the `import_` option: adopt the existing resource with this id
    id: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def depends_on(self) -> list[str]:
        """The dependencies no input property explains: those of `depends_on` (one that is also
        an input's dependency cannot be told apart, and changes no order)."""
        implied = {urn for urns in self.property_dependencies.values() for urn in urns}
        return [urn for urn in self.dependencies if urn not in implied]

    @property
    def is_provider(self) -> bool:
        return self.type.startswith(PROVIDER_PREFIX)

    @property
    def provider_urn(self) -> str:
        return self.provider.rsplit("::", 1)[0] if self.provider else ""

    @property
    def default_tags(self) -> dict[str, str]:
        """A provider's default tags (providers receive their configuration JSON-encoded)."""
        value = self.inputs.get("defaultTags") or {}
        if isinstance(value, str):
            value = json.loads(value)
        return dict(value.get("tags") or {})


class Materialiser(Protocol):
    def register(self, registration: Registration) -> tuple[str, dict[str, Any]]:
        """The resource's physical id and its outputs (inputs plus what the cloud computed)."""

    def call(self, token: str, args: dict[str, Any]) -> dict[str, Any]:
        """The result of an invoke (data source), e.g. aws:index/getCallerIdentity:getCallerIdentity."""


class _Registrations:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Registration] = []
        self.pending = threading.local()

    def add(self, registration: Registration) -> None:
        with self._lock:
            self.items.append(registration)


class _Monitor(pulumi_mocks.MockMonitor):
    """Keeps what the stock mock monitor drops: parent, dependencies (all, and per property) and
    resource options (ignoreChanges, replaceOnChanges, protect, retainOnDelete, deleteBeforeReplace)."""

    def __init__(self, mocks: "_Mocks", registrations: _Registrations):
        super().__init__(mocks)
        self._registrations = registrations

    def RegisterResource(self, request):  # noqa: N802 (gRPC name)
        if request.type != STACK_TYPE:
            self._registrations.pending.request = request
            self._registrations.pending.urn = self.make_urn(request.parent, request.type, request.name)
        try:
            return super().RegisterResource(request)
        finally:
            self._registrations.pending.request = None


class _Mocks(pulumi_mocks.Mocks):
    def __init__(self, materialiser: Materialiser, registrations: _Registrations):
        self._materialiser = materialiser
        self._registrations = registrations

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        request = getattr(self._registrations.pending, "request", None)
        registration = Registration(
            urn=self._registrations.pending.urn,
            type=args.typ,
            name=args.name,
            parent=request.parent if request else "",
            custom=bool(args.custom),
            inputs=dict(args.inputs),
            dependencies=sorted(set(request.dependencies)) if request else [],
            provider=args.provider or "",
            ignore_changes=list(request.ignoreChanges) if request else [],
            replace_on_changes=list(request.replaceOnChanges) if request else [],
            retain_on_delete=bool(request.retainOnDelete) if request else False,
            delete_before_replace=bool(request.deleteBeforeReplace) if request else False,
            property_dependencies=_property_dependencies(request),
            protect=bool(request.protect) if request else False,
            import_id=args.resource_id or "",
        )
        if registration.custom:
            registration.id, registration.outputs = self._materialiser.register(registration)
        self._registrations.add(registration)
        return registration.id, registration.outputs

    def call(self, args: pulumi_mocks.MockCallArgs):
        return self._materialiser.call(args.token, dict(args.args))


def _property_dependencies(request: Any) -> dict[str, list[str]]:
    """RegisterResourceRequest.propertyDependencies (property -> PropertyDependencies{urns}), without empty ones."""
    if request is None:
        return {}
    return {key: sorted(set(deps.urns)) for key, deps in sorted(request.propertyDependencies.items()) if deps.urns}


class ProgramFailed(Exception):
    """The program (or a materialiser) raised; `registrations` holds what was registered before."""

    def __init__(self, cause: BaseException, registrations: list[Registration]):
        super().__init__(str(cause))
        self.cause = cause
        self.registrations = registrations


@dataclass
class MockRun:
    registrations: list[Registration]
    outputs: dict[str, Any]


def run_program(program: Callable[[], dict[str, Any] | None], materialiser: Materialiser, *, project: str,
                stack: str, config: dict[str, str] | None = None) -> MockRun:
    """Every registration of one run, in the order they were answered, and the program's outputs.

    `program` may return a dict of outputs (Pulumi Inputs); they are awaited once every
    resource has answered.
    """
    import pulumi

    registrations = _Registrations()
    outputs: dict[str, Any] = {}

    def program_then_outputs():
        wanted = program()
        if not wanted:
            return None

        async def resolve() -> None:
            outputs.update(await pulumi.Output.all(**wanted).future())

        return resolve()

    # The runtime's settings are context variables: runs on different threads do not mix.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        pulumi_settings.reset_options(project=project, stack=stack)
        mocks = _Mocks(materialiser, registrations)
        pulumi_mocks.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=_Monitor(mocks, registrations))
        set_all_config(config or {})
        loop.run_until_complete(pulumi_stack.run_pulumi_func(program_then_outputs))
    except Exception as exc:  # noqa: BLE001 - re-raised with what was registered so far
        raise ProgramFailed(_materialiser_error(exc), list(registrations.items)) from exc
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return MockRun(list(registrations.items), outputs)


def _materialiser_error(exc: BaseException) -> BaseException:
    """Pulumi may wrap an error raised on its executor threads: prefer envctl's own error inside."""
    from provisioner.errors import EnvctlError

    seen: set[int] = set()  # Pulumi's wrapped errors chain back to themselves
    probe: BaseException | None = exc
    while probe is not None and id(probe) not in seen:
        if isinstance(probe, EnvctlError):
            return probe
        seen.add(id(probe))
        probe = probe.__cause__ or probe.__context__
    return exc
