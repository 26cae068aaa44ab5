"""Which Deny statements of a resource policy apply to a request, conditions included.

Follows the IAM User Guide: "IAM JSON policy elements: Condition operators" (a key missing from
the request makes a condition false, except that a negated operator is then true, `...IfExists`
is true and `Null` tests presence), "Condition" (operators, keys and values: AND across
operators and keys, OR across a key's values; a negated operator matches none of them),
"Principal"/"NotPrincipal", "Action"/"NotAction", "Resource"/"NotResource" with `*` and `?`.
Only Deny statements are evaluated: allowing is moto's (identity policies under IAM
enforcement, or everything without it); an explicit Deny always wins. An operator or key the
sandbox does not model raises `NotModelled` instead of guessing (guessing could be more lenient
or stricter than AWS).
"""

from __future__ import annotations

import re
from typing import Any

_OPERATORS = {
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase", "StringLike",
    "StringNotLike", "Bool", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Null",
}


class NotModelled(Exception):
    """A policy element the sandbox cannot evaluate as AWS would."""


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, value: str, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """ArnEquals/ArnLike: each of the six colon-separated parts matched on its own, wildcards allowed."""
    pattern_parts, value_parts = pattern.split(":", 5), value.split(":", 5)
    if len(pattern_parts) != 6 or len(value_parts) != 6:
        return False
    return all(_wildcard(p, v) for p, v in zip(pattern_parts, value_parts, strict=True))


def _matches(base: str, policy_value: str, value: str) -> bool:
    if base == "StringEquals":
        return policy_value == value
    if base == "StringEqualsIgnoreCase":
        return policy_value.lower() == value.lower()
    if base == "StringLike":
        return _wildcard(policy_value, value)
    if base == "Bool":
        return policy_value.lower() == value.lower()
    if base in ("ArnEquals", "ArnLike"):
        return _arn_like(policy_value, value)
    raise NotModelled(f"condition operator {base}")


def condition_holds(operator: str, key: str, policy_values: Any, context: dict[str, str]) -> bool:
    """One `operator: {key: values}` entry against the request context."""
    if operator.startswith(("ForAnyValue:", "ForAllValues:")):
        raise NotModelled(f"condition set operator {operator}")
    if_exists = operator.endswith("IfExists") and operator != "IfExists"
    base = operator[: -len("IfExists")] if if_exists else operator
    if base not in _OPERATORS:
        raise NotModelled(f"condition operator {operator}")
    present = key in context
    if base == "Null":
        return all(str(value).lower() == ("false" if present else "true") for value in _as_list(policy_values))
    if not present:
        return if_exists or "Not" in base
    negated = "Not" in base
    positive = base.replace("Not", "", 1) if negated else base
    hit = any(_matches(positive, str(value), context[key]) for value in _as_list(policy_values))
    return not hit if negated else hit


def _conditions_hold(conditions: dict[str, dict[str, Any]], context: dict[str, str], known_keys: set[str]) -> bool:
    for operator, entries in conditions.items():
        for key, values in entries.items():
            if key.lower() not in known_keys:
                raise NotModelled(f"condition key {key}")
            if not condition_holds(operator, key.lower(), values, context):
                return False
    return True


def _principal_matches(principal: Any, caller_arn: str, account: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    role = re.match(r"^arn:aws:sts::(\d{12}):assumed-role/([^/]+)/", caller_arn)
    identities = {caller_arn}
    if role:
        identities.add(f"arn:aws:iam::{role.group(1)}:role/{role.group(2)}")
    for value in _as_list(principal.get("AWS", [])):
        if value == "*" or value in identities or value in (account, f"arn:aws:iam::{account}:root"):
            return True
    return False


def _element_matches(statement: dict[str, Any], name: str, value: str, ignore_case: bool) -> bool:
    if name in statement:
        return any(_wildcard(pattern, value, ignore_case) for pattern in _as_list(statement[name]))
    negated = f"Not{name}"
    if negated in statement:
        return not any(_wildcard(pattern, value, ignore_case) for pattern in _as_list(statement[negated]))
    return False


def denying_statements(document: dict[str, Any], *, action: str, resource: str, caller_arn: str, account: str,
                       context: dict[str, str]) -> list[dict[str, Any]]:
    """The Deny statements of `document` that apply to the request (its context keys lower-case)."""
    denying = []
    known = set(context) | KNOWN_ABSENT_KEYS
    for statement in _as_list(document.get("Statement") or []):
        if statement.get("Effect") != "Deny":
            continue
        if not _element_matches(statement, "Action", action, ignore_case=True):
            continue
        if not _element_matches(statement, "Resource", resource, ignore_case=False):
            continue
        if "Principal" in statement:
            if not _principal_matches(statement["Principal"], caller_arn, account):
                continue
        elif "NotPrincipal" in statement:
            if _principal_matches(statement["NotPrincipal"], caller_arn, account):
                continue
        if _conditions_hold(statement.get("Condition") or {}, context, known):
            denying.append(statement)
    return denying


# Keys the sandbox models as absent when the request does not carry them.
KNOWN_ABSENT_KEYS = {"s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id"}


def allowing_statements(document: dict[str, Any], *, action: str, resource: str,
                        context: dict[str, str]) -> list[dict[str, Any]]:
    """The Allow statements of an identity policy (or permissions boundary) that grant the request,
    conditions included; for tests that evaluate what a team's role may do where moto does not scope
    by resource (every service but S3 and IAM)."""
    allowing = []
    for statement in _as_list(document.get("Statement") or []):
        if statement.get("Effect") != "Allow":
            continue
        if not _element_matches(statement, "Action", action, ignore_case=True):
            continue
        if not _element_matches(statement, "Resource", resource, ignore_case=False):
            continue
        if _conditions_hold(statement.get("Condition") or {}, context, set(context)):
            allowing.append(statement)
    return allowing
