"""One AWS request as the fidelity rules see it, parsed from the WSGI environ; AWS-shaped errors.

The service and region come from the SigV4 credential scope of the Authorization header (every
SDK and the AWS CLI sign), the action from the X-Amz-Target header (JSON protocols), the
`Action` form field (query protocols), the path of sagemaker-runtime's InvokeEndpoint (signed as
`sagemaker`, REST) or, for S3, the method, path, query and headers.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from provisioner.engines.sandbox.fidelity.registry import Refusal, Reply

DEFAULT_ACCOUNT = "123456789012"  # moto's default account
_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
MAX_PARSED_BODY = 1 << 20  # rules read the bodies of API calls, never of uploads
MAX_INVOCATION_BODY = 6 * 1024 * 1024  # SageMaker's real-time payload limit
_INVOCATION = re.compile(r"^/endpoints/([^/]+)/invocations$")


@dataclass
class AwsRequest:
    service: str
    region: str
    action: str
    access_key: str
    account: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    params: dict[str, Any] = field(default_factory=dict)  # JSON body or query form fields
    bucket: str | None = None
    key: str | None = None
    protocol: str = "json"  # json | query | ec2 | s3 | rest-json
    body: bytes = b""  # kept for operations that forward it (InvokeEndpoint); rules read params

    def header(self, name: str) -> str | None:
        """A header; for S3's x-amz-* headers also the query parameter a presigned URL carries it in."""
        name = name.lower()
        if name in self.headers:
            return self.headers[name]
        if self.protocol == "s3" and name.startswith("x-amz-") and name in self.query:
            return self.query[name][0]
        return None

    @cached_property
    def caller_arn(self) -> str:
        """The ARN of the caller: the IAM user or assumed role owning the access key, else moto's default user."""
        from moto.iam.access_control import CreateAccessKeyFailure, create_access_key

        try:
            key = create_access_key(self.account, "aws", self.access_key, {k.title(): v for k, v in self.headers.items()})
        except CreateAccessKeyFailure:
            return f"arn:aws:iam::{self.account}:user/moto"  # a key moto does not know: it answers as its default user
        return key.arn


def _read_body(environ: dict[str, Any], limit: int = MAX_PARSED_BODY) -> bytes:
    """The request body, put back for moto to read again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if not length or length > limit:
        return b""
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _account(headers: dict[str, str], access_key: str) -> str:
    if headers.get("x-moto-account-id"):
        return headers["x-moto-account-id"]
    from moto.iam.models import get_account_id_from

    return get_account_id_from(access_key) or DEFAULT_ACCOUNT


def parse(environ: dict[str, Any]) -> AwsRequest | None:
    """The request, or None when it is not a signed AWS API call (moto's own API, metadata...).
    Presigned URLs count as signed: their credential (SigV4 scope, or SigV2 key) is in the query."""
    path = environ.get("PATH_INFO", "") or "/"
    if path.startswith("/moto-api"):
        return None
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    presigned = query.get("X-Amz-Credential", [""])[0]
    scope = _SCOPE.search(headers.get("authorization", "")) or _SCOPE.search(f"Credential={presigned}/")
    if scope:
        access_key, region, service = scope.groups()
    elif "AWSAccessKeyId" in query and "Signature" in query:  # a SigV2 presigned URL: S3's
        access_key, region, service = query["AWSAccessKeyId"][0], "us-east-1", "s3"
    else:
        return None
    request = AwsRequest(service=service, region=region, action="", access_key=access_key,
                         account=_account(headers, access_key), method=environ.get("REQUEST_METHOD", "GET"),
                         path=path, query=query, headers=headers)
    if service == "s3":
        request.protocol = "s3"
        _parse_s3(request)
        return request
    invocation = _INVOCATION.match(path) if service == "sagemaker" else None
    if invocation:
        request.action, request.protocol = "InvokeEndpoint", "rest-json"
        request.params = {"EndpointName": unquote(invocation.group(1))}
        request.body = _read_body(environ, limit=MAX_INVOCATION_BODY)
        return request
    body = _read_body(environ)
    target = headers.get("x-amz-target")
    if target:
        request.action = target.rsplit(".", 1)[-1]
        try:
            request.params = json.loads(body or b"{}")
        except json.JSONDecodeError:
            request.params = {}
        return request
    form = {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
    form.update({key: values[0] for key, values in query.items() if key not in form})
    request.params = form
    request.action = form.get("Action", "")
    request.protocol = "ec2" if service == "ec2" else "query"
    return request


def _parse_s3(request: AwsRequest) -> None:
    """Bucket, key and operation of a path-style (or virtual-host-style) S3 request."""
    host = request.headers.get("host", "").split(":")[0]
    parts = unquote(request.path).lstrip("/").split("/", 1)
    virtual = re.match(r"^(.+?)\.(?:localhost|s3[.-].*amazonaws\.com|s3\.amazonaws\.com)$", host)
    if virtual:
        bucket, key = virtual.group(1), "/".join(part for part in parts if part) or None
    else:
        bucket = parts[0] or None
        key = parts[1] if len(parts) > 1 and parts[1] else None
    request.bucket, request.key = bucket, key
    request.action = _s3_action(request.method, bool(bucket), bool(key), request.query, request.headers)


_BUCKET_SUBRESOURCES = {"policy": "BucketPolicy", "encryption": "BucketEncryption", "versioning": "BucketVersioning",
                        "tagging": "BucketTagging", "acl": "BucketAcl", "lifecycle": "BucketLifecycleConfiguration",
                        "publicAccessBlock": "PublicAccessBlock"}


def _s3_action(method: str, has_bucket: bool, has_key: bool, query: dict[str, list[str]], headers: dict[str, str]) -> str:
    if not has_bucket:
        return "ListBuckets"
    if not has_key:
        for sub, name in _BUCKET_SUBRESOURCES.items():
            if sub in query:
                return {"GET": f"Get{name}", "PUT": f"Put{name}", "DELETE": f"Delete{name}"}.get(method, name)
        if "delete" in query and method == "POST":
            return "DeleteObjects"
        return {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket"}.get(
            method, "ListObjectVersions" if "versions" in query else "ListObjects")
    if method == "PUT":
        if "uploadId" in query:
            return "UploadPartCopy" if "x-amz-copy-source" in headers else "UploadPart"
        if "tagging" in query or "acl" in query:
            return "PutObjectTagging" if "tagging" in query else "PutObjectAcl"
        return "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return "PostObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "HEAD":
        return "HeadObject"
    return "ListParts" if "uploadId" in query else "GetObject"


# --- answers ---------------------------------------------------------------------------------


def _xml(text: str) -> str:
    return escape(text, {'"': "&quot;"})


RULE_HEADER = "x-envctl-fidelity-rule"  # names the rule that refused (AWS sends no such header; SDKs ignore it)


def render_refusal(request: AwsRequest, refusal: Refusal, rule: str = "") -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body of AWS's error answer in the request's protocol."""
    request_id = uuid.uuid4().hex.upper()[:16]
    if request.protocol == "s3":
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{_xml(refusal.code)}</Code><Message>{_xml(refusal.message)}</Message>"
                + (f"<BucketName>{_xml(request.bucket)}</BucketName>" if request.bucket else "")
                + f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>").encode()
        content_type = "application/xml"
        if request.method == "HEAD":
            body = b""  # S3 answers HEAD errors with the status alone
    elif request.protocol == "ec2":
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Response><Errors><Error><Code>{_xml(refusal.code)}</Code><Message>{_xml(refusal.message)}</Message>"
                f"</Error></Errors><RequestID>{request_id}</RequestID></Response>").encode()
        content_type = "text/xml"
    elif request.protocol == "query":
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{_xml(refusal.code)}</Code>"
                f"<Message>{_xml(refusal.message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>").encode()
        content_type = "text/xml"
    else:
        body = json.dumps({"__type": refusal.code, "message": refusal.message}).encode()
        content_type = "application/x-amz-json-1.1"
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
               ("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", refusal.code)]
    if rule:
        headers.append((RULE_HEADER, rule))
    return _status_line(refusal.status), headers, body


def render_reply(reply: Reply) -> tuple[str, list[tuple[str, str]], bytes]:
    """A reply's answer; JSON protocols' Content-Type unless the reply names its own."""
    body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
    own_type = any(name.lower() == "content-type" for name, _ in reply.headers)
    headers = [*([] if own_type else [("Content-Type", "application/x-amz-json-1.1")]),
               ("Content-Length", str(len(body))), ("x-amzn-RequestId", uuid.uuid4().hex), *reply.headers]
    return _status_line(reply.status), headers, body


def _status_line(status: int) -> str:
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"
