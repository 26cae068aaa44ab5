"""Secrets Manager: a name scheduled for deletion cannot be created again."""

from __future__ import annotations

from provisioner.engines.sandbox.fidelity.registry import Refusal, rule
from provisioner.engines.sandbox.fidelity.request import AwsRequest


@rule("secretsmanager", "CreateSecret")
def no_create_while_scheduled_for_deletion(request: AwsRequest) -> Refusal | None:
    """CreateSecret of a name whose secret is scheduled for deletion (within its recovery window)
    fails with InvalidRequestException (Secrets Manager API Reference, CreateSecret and
    DeleteSecret: the name stays taken until the recovery window ends; restore it with
    RestoreSecret). moto answers ResourceExistsException instead.
    """
    name = request.params.get("Name")
    if not name:
        return None
    from moto.backends import get_backend

    secrets = get_backend("secretsmanager")[request.account][request.region].secrets
    if name in secrets and secrets[name].is_deleted():
        return Refusal("InvalidRequestException",
                       "You can't create this secret because a secret with this name is already scheduled for deletion.")
    return None
