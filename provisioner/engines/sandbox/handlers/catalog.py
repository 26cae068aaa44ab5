"""The catalog of sandbox handlers: one per Pulumi type token, filled by @register.

It imports no handler module: the package loads them (handlers/__init__.py, `load_all`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from provisioner.engines.sandbox.handlers.base import Handler

HANDLERS: dict[str, Handler] = {}


def register(type_token: str) -> Callable[[type[Handler]], type[Handler]]:
    """Class decorator: one instance of the handler serves every resource of `type_token`."""
    def decorate(cls: type[Handler]) -> type[Handler]:
        if type_token in HANDLERS:
            raise RuntimeError(f"two sandbox handlers for {type_token}")
        cls.type_token = type_token
        HANDLERS[type_token] = cls()
        return cls

    return decorate
