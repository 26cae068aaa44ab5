"""The sandbox's handlers, one module per group of AWS services; each fills `catalog.HANDLERS` on import.

The package loads its members (`load_all`), the catalog imports none of them. They load on
first use, not on import, so the engine's `list`, `status` and `outputs` need neither botocore
nor pulumi (the members import both). `base.Handler` is what every handler builds on;
`context.SandboxContext` is what each call gets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provisioner.engines.sandbox.handlers.base import Handler


def load_all() -> dict[str, Handler]:
    """Every handler by type token (importing the member modules registers them)."""
    from provisioner.engines.sandbox.handlers import (  # noqa: F401
        compute, data, identity, inference, model_registry, network, notifications, observability, scheduling,
    )
    from provisioner.engines.sandbox.handlers.catalog import HANDLERS

    return HANDLERS


def handler_for(type_token: str) -> Handler | None:
    return load_all().get(type_token)
