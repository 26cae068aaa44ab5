"""Small helpers shared by the sandbox handlers: naming, tags, input conversion, error codes."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from botocore.exceptions import ClientError

# Pulumi marks a secret input as {SIG_KEY: SECRET_SIG, "value": ...} when the engine sends it unresolved.
_PULUMI_SIG_KEY = "4dabf18193072939515e22adb298388d"
_PULUMI_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

_AUTONAME_ALPHABET = string.ascii_lowercase + string.digits


def autoname(logical_name: str, max_length: int = 63, suffix_length: int = 7) -> str:
    """A physical name like Pulumi's autonaming: `<logical name>-<random lowercase alnum>`."""
    suffix = "".join(secrets.choice(_AUTONAME_ALPHABET) for _ in range(suffix_length))
    prefix = logical_name[: max_length - suffix_length - 1]
    return f"{prefix}-{suffix}"


def name_or_autoname(inputs: dict[str, Any], logical_name: str, max_length: int) -> str:
    """The `name` input, else an autoname from the `namePrefix` input or the logical name (as Pulumi does)."""
    return inputs.get("name") or autoname(inputs.get("namePrefix") or logical_name, max_length=max_length)


def unsecret(value: Any) -> Any:
    """The plain value of a Pulumi secret marker (recursively); other values unchanged."""
    if isinstance(value, dict):
        if value.get(_PULUMI_SIG_KEY) == _PULUMI_SECRET_SIG:
            return unsecret(value.get("value"))
        return {key: unsecret(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unsecret(item) for item in value]
    return value


def as_int(value: Any) -> int | None:
    """Pulumi sends every number as a float; most AWS APIs want ints."""
    return None if value is None else int(value)


def compact(**kwargs: Any) -> dict[str, Any]:
    """Keyword arguments for a boto3 call without the ones that are None."""
    return {key: value for key, value in kwargs.items() if value is not None}


def policy_text(policy: Any) -> str:
    """A policy document as the JSON string AWS wants (the program may pass a dict)."""
    return policy if isinstance(policy, str) else json.dumps(policy)


def tag_list(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    """`{"a": "b"}` -> `[{"Key": "a", "Value": "b"}]`, with the field names a service uses."""
    return [{key: tag_key, value: tag_value} for tag_key, tag_value in tags.items()]


def removed_tag_keys(old: dict[str, str], new: dict[str, str]) -> list[str]:
    return [key for key in old if key not in new]


def input_changed(new: Any, old: Any, key: str) -> bool:
    """Whether an input differs between a registration and the stored resource it updates."""
    return new.inputs.get(key) != old.inputs.get(key)


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def is_error(error: ClientError, *codes: str) -> bool:
    return error_code(error) in codes


def ignore_missing(call: Any, *codes: str) -> None:
    """Make the call; a ClientError with one of the codes that say "not found" means there was nothing to do
    (a handler's own codes are ignored by `Handler.missing_ok`)."""
    try:
        call()
    except ClientError as error:
        if not is_error(error, *codes):
            raise


def arn(service: str, region: str, account_id: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{account_id}:{resource}"


def api_shape(value: Any, renames: dict[str, str] | None = None) -> Any:
    """Pulumi's camelCase structure as an AWS API shape: PascalCase keys, whole floats as ints.

    For structures whose keys are all field names (not user maps like tags or environment).
    `renames` covers the keys whose API spelling is not just capitalised (memorySizeInMb -> MemorySizeInMB).
    """
    renames = renames or {}
    if isinstance(value, dict):
        return {renames.get(key, key[:1].upper() + key[1:]): api_shape(item, renames) for key, item in value.items()}
    if isinstance(value, list):
        return [api_shape(item, renames) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # botocore accepts ints for doubles but not floats for integers
    return value
