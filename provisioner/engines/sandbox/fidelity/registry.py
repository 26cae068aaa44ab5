"""The fidelity rules and extra operations, registered by decorators like the sandbox handlers.

`@rule("sagemaker", "CreateModel")` registers a check for one or more operations of a service:
it gets the parsed request and returns a `Refusal` (AWS's error) or None (let moto answer).
`@operation("sagemaker", "UpdateEndpoint")` registers a handler that answers an operation moto
lacks: it gets the parsed request and returns a `Reply`. Rules run before extra operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from provisioner.engines.sandbox.fidelity.request import AwsRequest


@dataclass(frozen=True)
class Refusal:
    """AWS's answer to a request it refuses: error code, message, HTTP status."""

    code: str
    message: str
    status: int = 400


@dataclass(frozen=True)
class Reply:
    """An extra operation's answer: a JSON body (json protocols) or raw bytes, with its status."""

    body: Any = field(default_factory=dict)
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


RuleCheck = Callable[["AwsRequest"], "Refusal | None"]
Operation = Callable[["AwsRequest"], "Reply | Refusal"]


@dataclass(frozen=True)
class Rule:
    name: str
    service: str
    actions: tuple[str, ...]
    check: RuleCheck

    @property
    def doc(self) -> str:
        return " ".join((self.check.__doc__ or "").split())


RULES: dict[str, Rule] = {}
OPERATIONS: dict[tuple[str, str], Operation] = {}


def rule(service: str, *actions: str) -> Callable[[RuleCheck], RuleCheck]:
    """Register a fidelity rule for `service`'s `actions` (API operation names, e.g. "PutObject")."""

    def register(check: RuleCheck) -> RuleCheck:
        name = check.__name__
        if name in RULES:
            raise ValueError(f"fidelity rule {name} is registered twice")
        RULES[name] = Rule(name=name, service=service, actions=tuple(actions), check=check)
        return check

    return register


def operation(service: str, action: str) -> Callable[[Operation], Operation]:
    """Register a handler for an operation moto does not implement (served instead of moto)."""

    def register(handler: Operation) -> Operation:
        OPERATIONS[(service, action)] = handler
        return handler

    return register


def rules_for(service: str, action: str) -> list[Rule]:
    return [item for item in RULES.values() if item.service == service and action in item.actions]
