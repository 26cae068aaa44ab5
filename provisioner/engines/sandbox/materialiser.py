"""What the mocked program run (engines/mocked.py) talks to in the sandbox: each registration is
planned against the stored state (planner.py) and carried out by an executor (applier.py: the
Applier of an apply, the DryRun of a preview); invokes are answered from the sandbox (invokes.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from provisioner.engines.base import ResourceChange
from provisioner.engines.sandbox.handlers import handler_for
from provisioner.engines.sandbox.invokes import sandbox_invoke
from provisioner.engines.sandbox.planner import plan

if TYPE_CHECKING:
    from provisioner.engines.mocked import Registration
    from provisioner.engines.sandbox.applier import Applier, DryRun
    from provisioner.engines.sandbox.handlers.context import SandboxContext
    from provisioner.engines.sandbox.state import StackState


class SandboxMaterialiser:
    """The mocked run's Materialiser; it collects the changes and the URNs the program registered."""

    def __init__(self, ctx: SandboxContext, state: StackState, executor: Applier | DryRun, default_region: str):
        self.ctx = ctx
        self.state = state
        self.executor = executor
        self.region = default_region
        self.changes: list[ResourceChange] = []
        self.registered: set[str] = set()
        from provisioner.engines.offline import OfflineMaterialiser

        self.placeholders = OfflineMaterialiser(default_region)

    def call(self, token: str, args: dict[str, Any]) -> dict[str, Any]:
        answer = sandbox_invoke(self.ctx, token, args, self.region)
        return answer if answer is not None else self.placeholders.call(token, args)

    def register(self, reg: Registration) -> tuple[str, dict[str, Any]]:
        if reg.is_provider:
            self.ctx.provider_tags[reg.urn] = reg.default_tags
            return "sandbox-provider", dict(reg.inputs)
        self.registered.add(reg.urn)
        outcome = self.executor.execute(plan(reg, self.state.resources.get(reg.urn), handler_for(reg.type)))
        self.changes.append(outcome.change)
        return outcome.physical_id, outcome.outputs
