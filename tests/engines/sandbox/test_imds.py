"""The emulated IMDSv2 of sandbox hosts, against the session's moto server (no Docker needed)."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request

import boto3
import pytest

from provisioner.engines.sandbox.host_records import HostRecord, save_host_record
from provisioner.engines.sandbox.imds import TOKEN_HEADER, TOKEN_TTL_HEADER, MetadataService, RoleCredentials, make_server
from tests.conftest import SANDBOX_CREDENTIALS, free_port

pytestmark = [pytest.mark.sandbox]

ADMIN = "arn:aws:iam::123456789012:user/envctl-sandbox-admin"


@pytest.fixture
def imds(moto_endpoint, tmp_path):
    """An IMDS on 127.0.0.1 that knows one host (at 127.0.0.1) whose profile holds a moto role."""
    def client(service, region):
        return boto3.client(service, region_name=region, endpoint_url=moto_endpoint, **SANDBOX_CREDENTIALS)

    iam = client("iam", "eu-west-1")
    trust = {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Principal": {"AWS": ADMIN}, "Action": "sts:AssumeRole"}]}
    role = f"imds-test-{tmp_path.name[-8:]}"
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    iam.create_instance_profile(InstanceProfileName=role)
    iam.add_role_to_instance_profile(InstanceProfileName=role, RoleName=role)
    save_host_record(tmp_path, HostRecord(
        instance_id="i-0123456789abcdef0", team="fraud", region="eu-west-1", account_id="123456789012",
        container="envctl-host-i-0123456789abcdef0", user_data_b64=base64.b64encode(b"#!/bin/bash\n").decode(),
        instance_profile=role, availability_zone="eu-west-1a", container_ip="127.0.0.1"))
    port = free_port()
    server = make_server("127.0.0.1", port, MetadataService(tmp_path, RoleCredentials(client)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}", role
    server.shutdown()


def _call(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _token(base: str) -> str:
    status, token = _call(f"{base}/latest/api/token", "PUT", {TOKEN_TTL_HEADER: "60"})
    assert status == 200
    return token


def test_get_without_a_token_is_refused(imds):
    """IMDSv2 only: a GET without a session token gets 401, as with HttpTokens=required."""
    base, _ = imds
    assert _call(f"{base}/latest/meta-data/instance-id")[0] == 401
    assert _call(f"{base}/latest/meta-data/instance-id", headers={TOKEN_HEADER: "forged"})[0] == 401


def test_token_then_instance_identity(imds):
    """With a token the host reads its instance id, region and user data."""
    base, _ = imds
    headers = {TOKEN_HEADER: _token(base)}
    assert _call(f"{base}/latest/meta-data/instance-id", headers=headers) == (200, "i-0123456789abcdef0")
    assert _call(f"{base}/latest/meta-data/placement/region", headers=headers) == (200, "eu-west-1")
    assert _call(f"{base}/latest/user-data", headers=headers) == (200, "#!/bin/bash\n")
    document = json.loads(_call(f"{base}/latest/dynamic/instance-identity/document", headers=headers)[1])
    assert document["region"] == "eu-west-1" and document["accountId"] == "123456789012"


def test_role_credentials_are_an_assumed_role_of_the_profile(imds, moto_endpoint):
    """The credentials path names the profile's role and returns STS keys that moto knows as that role."""
    base, role = imds
    headers = {TOKEN_HEADER: _token(base)}
    assert _call(f"{base}/latest/meta-data/iam/security-credentials/", headers=headers) == (200, role)
    status, body = _call(f"{base}/latest/meta-data/iam/security-credentials/{role}", headers=headers)
    credentials = json.loads(body)
    assert status == 200 and credentials["Code"] == "Success"
    sts = boto3.client("sts", region_name="eu-west-1", endpoint_url=moto_endpoint,
                       aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                       aws_session_token=credentials["Token"])
    assert f":assumed-role/{role}/i-0123456789abcdef0" in sts.get_caller_identity()["Arn"]


def test_unknown_address_gets_no_token(imds, tmp_path):
    """Only sandbox hosts (known by their address) get a token."""
    base, _ = imds
    (tmp_path / "i-0123456789abcdef0.json").unlink()
    assert _call(f"{base}/latest/api/token", "PUT", {TOKEN_TTL_HEADER: "60"})[0] == 403
