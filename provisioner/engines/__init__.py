"""How a program is applied: one interface (base.Engine), two implementations (pulumi, sandbox)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provisioner.engines.base import Engine
    from provisioner.settings import Settings


def get_engine(settings: "Settings") -> "Engine":
    """The engine for the configured target; imported lazily (pulumi and moto are heavy)."""
    if settings.target == "aws":
        from provisioner.engines.pulumi import PulumiEngine
        from provisioner.program import BuildOptions

        return PulumiEngine(settings, build_options=BuildOptions(endpoint_url=settings.endpoint_url or None))
    from provisioner.engines.sandbox.engine import SandboxEngine

    return SandboxEngine(settings)
