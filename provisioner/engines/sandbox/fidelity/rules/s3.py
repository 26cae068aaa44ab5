"""S3: bucket policies are evaluated with their conditions on object calls."""

from __future__ import annotations

import json

from provisioner.engines.sandbox.fidelity.policy import NotModelled, denying_statements
from provisioner.engines.sandbox.fidelity.registry import Refusal, rule
from provisioner.engines.sandbox.fidelity.request import AwsRequest

# API operation -> the IAM action a bucket policy names for it (S3 User Guide, "Amazon S3 policy actions").
OBJECT_ACTIONS = {
    "PutObject": "s3:PutObject", "CopyObject": "s3:PutObject", "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject", "UploadPartCopy": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
    "GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "DeleteObject": "s3:DeleteObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload", "ListParts": "s3:ListMultipartUploadParts",
    "PutObjectTagging": "s3:PutObjectTagging", "PutObjectAcl": "s3:PutObjectAcl",
}
BUCKET_ACTIONS = {"ListObjects": "s3:ListBucket", "HeadBucket": "s3:ListBucket", "ListObjectVersions": "s3:ListBucketVersions"}


def request_context(request: AwsRequest) -> dict[str, str]:
    """The condition keys of an S3 request the sandbox knows (lower-case names).

    The sandbox stands in for AWS's TLS endpoints: aws:SecureTransport is true. The SSE keys
    come from the request's headers and are absent when the request does not send them
    (S3 User Guide, "Specifying server-side encryption with AWS KMS": the condition keys
    s3:x-amz-server-side-encryption and s3:x-amz-server-side-encryption-aws-kms-key-id).
    """
    context = {"aws:securetransport": "true", "aws:principalaccount": request.account}
    caller = request.caller_arn
    context["aws:principalarn"] = caller
    for header in ("x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id"):
        if request.header(header) is not None:
            context[f"s3:{header}"] = request.header(header)
    return context


@rule("s3", *OBJECT_ACTIONS, *BUCKET_ACTIONS)
def bucket_policy_denies(request: AwsRequest) -> Refusal | None:
    """An object call (or a listing) that a Deny statement of the bucket's policy matches, conditions included, is
    refused with 403 AccessDenied (S3 User Guide, "How Amazon S3 authorizes a request for an object
    operation": an explicit deny in the bucket policy wins; IAM User Guide, "Policy evaluation
    logic"). moto ignores conditions (a TLS-only Deny would deny every call), so the sandbox
    evaluates the statements itself and moto's own check is switched off.
    """
    if not request.bucket:
        return None
    from moto.backends import get_backend
    from moto.s3.exceptions import S3ClientError

    try:
        bucket = get_backend("s3")[request.account]["aws"].get_bucket(request.bucket)
    except S3ClientError:
        return None  # no such bucket (or another account's, locked): moto answers as AWS does
    if not bucket.policy:
        return None
    if request.key:
        action, resource = OBJECT_ACTIONS[request.action], f"arn:aws:s3:::{request.bucket}/{request.key}"
    else:
        action, resource = BUCKET_ACTIONS[request.action], f"arn:aws:s3:::{request.bucket}"
    try:
        denied = denying_statements(json.loads(bucket.policy), action=action, resource=resource,
                                    caller_arn=request.caller_arn, account=request.account,
                                    context=request_context(request))
    except NotModelled as gap:
        return Refusal("NotImplemented", f"the envctl sandbox cannot evaluate the policy of bucket {request.bucket}: "
                                         f"{gap} is not modelled", 501)
    if not denied:
        return None
    return Refusal("AccessDenied", f"User: {request.caller_arn} is not authorized to perform: {action} on resource: "
                                   f"\"{resource}\" with an explicit deny in a resource-based policy", 403)
