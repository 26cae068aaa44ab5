"""CloudWatch: a role's PutMetricData is allowed only in the namespaces its policies allow, conditions included."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

from provisioner.engines.sandbox.fidelity.policy import NotModelled, allowing_statements, denying_statements
from provisioner.engines.sandbox.fidelity.registry import Refusal, rule
from provisioner.engines.sandbox.fidelity.request import AwsRequest

ACTION = "cloudwatch:PutMetricData"
_ASSUMED_ROLE = re.compile(r"^arn:aws:sts::\d{12}:assumed-role/([^/]+)/")


def _document(text: str) -> dict[str, Any]:
    """A policy document as moto keeps it (JSON, or URL-encoded JSON as IAM returns it)."""
    text = text if text.lstrip().startswith("{") else unquote(text)
    return json.loads(text)


def _role_documents(account: str, role_name: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None] | None:
    """The role's identity policies (inline and attached) and its permissions boundary; None: no such role."""
    from moto.backends import get_backend
    from moto.iam.exceptions import NotFoundException

    iam = get_backend("iam")[account]["aws"]
    try:
        role = iam.get_role(role_name)
    except NotFoundException:
        return None
    documents = [_document(text) for text in role.policies.values()]
    for policy in role.managed_policies.values():
        (default,) = [version for version in policy.versions if version.is_default]
        documents.append(_document(default.document))
    boundary = None
    if role.permissions_boundary_arn:
        boundary_policy = iam.get_policy(role.permissions_boundary_arn)
        (default,) = [version for version in boundary_policy.versions if version.is_default]
        boundary = _document(default.document)
    return documents, boundary


@rule("monitoring", "PutMetricData")
def put_metric_data_in_an_allowed_namespace(request: AwsRequest) -> Refusal | None:
    """PutMetricData by a role (an assumed-role session: the Airflow host, a SageMaker job) is refused with
    403 AccessDenied unless an identity policy of the role allows cloudwatch:PutMetricData with the request's
    `cloudwatch:namespace`, the role's permissions boundary allows it too, and no statement denies it
    (CloudWatch User Guide, "Using condition keys to limit access to CloudWatch namespaces"; IAM User
    Guide, "Policy evaluation logic" and "Permissions boundaries for IAM entities"). moto ignores
    conditions even when it enforces IAM, and without enforcement allows every call: the sandbox
    evaluates the role's policies for this call itself, so a host that publishes outside its team's
    namespace fails here as on AWS. Callers that are not roles (the sandbox admin) are left to moto.
    """
    role = _ASSUMED_ROLE.match(request.caller_arn)
    if role is None:
        return None
    found = _role_documents(request.account, role.group(1))
    if found is None:
        return None
    documents, boundary = found
    namespace = str(request.params.get("Namespace", ""))
    context = {"cloudwatch:namespace": namespace, "aws:principalarn": request.caller_arn,
               "aws:principalaccount": request.account}
    try:
        denied = any(denying_statements(document, action=ACTION, resource="*", caller_arn=request.caller_arn,
                                        account=request.account, context=context)
                     for document in [*documents, *([boundary] if boundary else [])])
        allowed = any(allowing_statements(document, action=ACTION, resource="*", context=context) for document in documents)
        bounded = boundary is None or bool(allowing_statements(boundary, action=ACTION, resource="*", context=context))
    except NotModelled as gap:
        return Refusal("NotImplemented", f"the envctl sandbox cannot evaluate the policies of role {role.group(1)}: "
                                         f"{gap} is not modelled", 501)
    if allowed and bounded and not denied:
        return None
    why = ("with an explicit deny in an identity-based policy" if denied
           else "because no permissions boundary allows the cloudwatch:PutMetricData action" if allowed
           else "because no identity-based policy allows the cloudwatch:PutMetricData action")
    return Refusal("AccessDenied", f"User: {request.caller_arn} is not authorized to perform: {ACTION} {why} "
                                   f"(namespace {namespace})", 403)
