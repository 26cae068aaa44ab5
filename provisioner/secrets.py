"""A team's secrets in AWS Secrets Manager under `envctl/<team>/`, encrypted with the team's key.

Values pass through here on their way to Secrets Manager and nowhere else: never printed,
logged, returned, or written to envctl's state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from provisioner.components.names import AIRFLOW_INTERNAL_SECRETS, OWNER_PASSWORDS_SECRET, TeamNames
from provisioner.errors import InvalidInput, NotFound

# Team secrets the host loads, and Airflow connections/variables read through its secrets backend.
SECRET_NAME = re.compile(r"^((connections|variables)/)?[a-z][a-z0-9_]{0,62}$")
MAX_VALUE_BYTES = 64 * 1024  # Secrets Manager's limit on a secret value


@dataclass
class SecretInfo:
    name: str
    secret_id: str
    last_changed: str  # ISO 8601, "" if never
    has_value: bool
    kind: str  # declared | airflow | connection | variable | undeclared


def check_name(name: str) -> str:
    if not SECRET_NAME.match(name):
        raise InvalidInput(
            f"secret name {name!r} is not allowed; use lowercase letters, digits and '_' starting with a letter, "
            "optionally under connections/ or variables/ (Airflow connections and variables)"
        )
    return name


def check_value(value: str) -> str:
    if not value:
        raise InvalidInput("the secret value is empty; pass it on standard input or at the prompt")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise InvalidInput(f"the secret value is larger than Secrets Manager's {MAX_VALUE_BYTES // 1024} KiB limit")
    return value


def kind_of(name: str, declared: list[str]) -> str:
    if name.startswith("airflow/") and name.split("/", 1)[1] in (*AIRFLOW_INTERNAL_SECRETS, OWNER_PASSWORDS_SECRET):
        return "airflow"
    if name.startswith("connections/"):
        return "connection"
    if name.startswith("variables/"):
        return "variable"
    return "declared" if name in declared else "undeclared"


class TeamSecrets:
    def __init__(self, client: Any, team: str, kms_key_arn: str, tags: dict[str, str], declared: list[str]):
        self.client = client
        self.names = TeamNames(team)
        self.kms_key_arn = kms_key_arn
        self.tags = tags
        self.declared = declared

    def set(self, name: str, value: str) -> str:
        """Store a new value (creating the secret if needed); returns the secret's id, never the value."""
        from botocore.exceptions import ClientError

        secret_id = self.names.secret(check_name(name))
        check_value(value)
        try:
            self.client.put_secret_value(SecretId=secret_id, SecretString=value)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            self.client.create_secret(
                Name=secret_id, SecretString=value, KmsKeyId=self.kms_key_arn,
                Description=f"envctl {self.names.team}: {name}",
                Tags=[{"Key": k, "Value": v} for k, v in self.tags.items()],
            )
        return secret_id

    def list(self) -> list[SecretInfo]:
        prefix = self.names.secrets_prefix
        found: list[SecretInfo] = []
        for page in self.client.get_paginator("list_secrets").paginate(Filters=[{"Key": "name", "Values": [prefix]}]):
            for entry in page["SecretList"]:
                if not entry["Name"].startswith(prefix):
                    continue  # the name filter matches prefixes of words, not only of the whole name
                name = entry["Name"][len(prefix):]
                changed = entry.get("LastChangedDate")
                found.append(SecretInfo(
                    name=name, secret_id=entry["Name"], last_changed=changed.isoformat() if changed else "",
                    has_value=bool(entry.get("SecretVersionsToStages")), kind=kind_of(name, self.declared),
                ))
        return sorted(found, key=lambda s: s.name)

    def remove(self, name: str, *, recovery_days: int = 7) -> str:
        from botocore.exceptions import ClientError

        if name in self.declared:
            raise InvalidInput(
                f"{name} is declared in the team's request (secrets:); remove it there first, then apply, "
                "since the environment manages that secret"
            )
        secret_id = self.names.secret(check_name(name))
        try:
            self.client.delete_secret(SecretId=secret_id, RecoveryWindowInDays=recovery_days)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise NotFound(f"team {self.names.team} has no secret {name}") from None
            raise
        return secret_id


def owner_password(client: Any, team: str, owner: str, owners: list[str]) -> str:
    """The initial Airflow password of one of the team's owners, from the secret the host fills.

    The caller prints it and nothing else; it never reaches a log or envctl's state.
    """
    import json

    from botocore.exceptions import ClientError

    if owner not in owners:
        raise InvalidInput(f"--owner: {owner!r} is not an owner of {team}; owners: {', '.join(owners)}")
    secret_id = TeamNames(team).owner_passwords_secret
    not_yet = NotFound(
        f"no password for {owner} yet: the Airflow host of {team} generates the owners' passwords when it boots "
        "and within a minute of an owners change",
        hint=f"`envctl status {team}` shows whether the host is up",
    )
    try:
        value = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":  # no value yet, or no stack
            raise not_yet from None
        raise
    password = json.loads(value).get(owner)
    if not password:
        raise not_yet
    return password
