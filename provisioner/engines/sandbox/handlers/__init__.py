"""The sandbox's handlers, one module per group of AWS services; each fills `registry.HANDLERS` on import.

The package loads its members (`load_all`), the registry imports none of them. They load on
first use, not on import, so the engine's `list`, `status` and `outputs` need neither botocore
nor pulumi (the members import both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provisioner.engines.sandbox.handlers.registry import Handler


def load_all() -> dict[str, Handler]:
    """Every handler by type token (importing the member modules registers them)."""
    from provisioner.engines.sandbox.handlers import (  # noqa: F401
        compute, data, identity, inference, network, notifications, observability,
    )
    from provisioner.engines.sandbox.handlers.registry import HANDLERS

    return HANDLERS


def handler_for(type_token: str) -> Handler | None:
    return load_all().get(type_token)
