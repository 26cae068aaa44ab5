"""An emulated EC2 instance metadata service (IMDSv2) for sandbox hosts.

One server answers every host of a sandbox; it tells hosts apart by the source address of the
request (each host container has its own address on the docker bridge; the containers a host
runs reach it through the host's NAT, so they get the same answers, as with hop limit 2 on EC2).
A host's identity is the record hosts.py writes when it starts the host (host_records.py).

Where it differs from EC2: only IMDSv2 (a GET without a token gets 401, as with
`HttpTokens=required`), only the paths the userdata and the AWS SDKs read, and the role
credentials are an STS AssumeRole of the instance profile's role on the sandbox's moto server,
made as the sandbox admin (the sandbox adds the admin to every role's trust policy).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from provisioner.engines.sandbox.host_records import HostRecord, find_host_record

TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TOKEN_TTL_S = 21600
CREDENTIALS_TTL_S = 3600
REFRESH_MARGIN_S = 300  # hand out new keys this long before the old ones expire


class TokenStore:
    """IMDSv2 session tokens, each valid for the address that asked for it, until its TTL."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def issue(self, address: str, ttl_s: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = (address, time.monotonic() + ttl_s)
        return token

    def valid(self, token: str | None, address: str) -> bool:
        with self._lock:
            entry = self._tokens.get(token or "")
        return entry is not None and entry[0] == address and entry[1] > time.monotonic()


class RoleCredentials:
    """Temporary credentials of an instance profile's role, from STS on the sandbox's moto server."""

    def __init__(self, client_factory: Callable[[str, str], Any]):
        self._client = client_factory  # (service, region) -> boto3 client as the sandbox admin
        self._cache: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def role_name(self, host: HostRecord) -> str | None:
        if not host.instance_profile:
            return None
        profile = self._client("iam", host.region).get_instance_profile(InstanceProfileName=host.instance_profile)
        roles = profile["InstanceProfile"]["Roles"]
        return roles[0]["RoleName"] if roles else None

    def for_role(self, host: HostRecord, role_name: str) -> dict[str, str]:
        key = f"{host.instance_id}/{role_name}"
        with self._lock:
            cached = self._cache.get(key)
            if cached and _seconds_left(cached["Expiration"]) > REFRESH_MARGIN_S:
                return cached
        role_arn = self._client("iam", host.region).get_role(RoleName=role_name)["Role"]["Arn"]
        answer = self._client("sts", host.region).assume_role(
            RoleArn=role_arn, RoleSessionName=host.instance_id, DurationSeconds=CREDENTIALS_TTL_S)["Credentials"]
        issued = {
            "Code": "Success", "LastUpdated": _iso(datetime.now(timezone.utc)), "Type": "AWS-HMAC",
            "AccessKeyId": answer["AccessKeyId"], "SecretAccessKey": answer["SecretAccessKey"],
            "Token": answer["SessionToken"], "Expiration": _iso(answer["Expiration"]),
        }
        with self._lock:
            self._cache[key] = issued
        return issued


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds_left(expiration: str) -> float:
    expires = datetime.strptime(expiration, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (expires - datetime.now(timezone.utc)).total_seconds()


class MetadataService:
    """Answers one metadata path for one host: (HTTP status, body)."""

    def __init__(self, hosts_dir: Path, credentials: RoleCredentials):
        self.hosts_dir = hosts_dir
        self.credentials = credentials
        self.tokens = TokenStore()

    def host_at(self, address: str) -> HostRecord | None:
        return find_host_record(self.hosts_dir, container_ip=address)

    def answer(self, host: HostRecord, path: str) -> tuple[int, str]:
        path = path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/latest/user-data":
            return 200, host.user_data.decode(errors="replace")
        if path == "/latest/dynamic/instance-identity/document":
            return 200, json.dumps(self._identity_document(host), indent=2)
        if not path.startswith("/latest/meta-data"):
            return 404, "Not Found"
        key = path.removeprefix("/latest/meta-data").strip("/")
        if key.startswith("iam"):
            return self._iam(host, key)
        values = self._values(host)
        if key in values:
            return 200, values[key]
        if key == "":
            return 200, "\n".join(sorted({k.split("/")[0] for k in values} | {"iam"}))
        return 404, "Not Found"

    @staticmethod
    def _values(host: HostRecord) -> dict[str, str]:
        return {
            "instance-id": host.instance_id, "instance-type": host.instance_type, "ami-id": host.ami,
            "local-ipv4": host.private_ip, "hostname": host.hostname, "local-hostname": host.hostname,
            "placement/region": host.region, "placement/availability-zone": host.availability_zone,
            "placement": "availability-zone\nregion",
        }

    def _identity_document(self, host: HostRecord) -> dict[str, str]:
        return {"accountId": host.account_id, "instanceId": host.instance_id, "region": host.region,
                "availabilityZone": host.availability_zone, "instanceType": host.instance_type,
                "imageId": host.ami, "privateIp": host.private_ip}

    def _iam(self, host: HostRecord, key: str) -> tuple[int, str]:
        role = self.credentials.role_name(host)
        if role is None:
            return 404, "Not Found"
        if key == "iam":
            return 200, "info\nsecurity-credentials/"
        if key == "iam/info":
            profile_arn = f"arn:aws:iam::{host.account_id}:instance-profile/{host.instance_profile}"
            return 200, json.dumps({"Code": "Success", "InstanceProfileArn": profile_arn,
                                    "InstanceProfileId": host.instance_profile})
        if key == "iam/security-credentials":
            return 200, role
        if key == f"iam/security-credentials/{role}":
            return 200, json.dumps(self.credentials.for_role(host, role), indent=2)
        return 404, "Not Found"


def make_server(address: str, port: int, service: MetadataService) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.rstrip("/") != "/latest/api/token":
                return self._send(404, "Not Found")
            try:
                ttl = int(self.headers.get(TOKEN_TTL_HEADER, ""))
            except ValueError:
                return self._send(400, "Bad Request: missing or invalid " + TOKEN_TTL_HEADER)
            if not 1 <= ttl <= MAX_TOKEN_TTL_S:
                return self._send(400, "Bad Request: TTL out of range")
            if service.host_at(self.client_address[0]) is None:
                return self._send(403, "Forbidden: not a sandbox host")
            self._send(200, service.tokens.issue(self.client_address[0], ttl), {TOKEN_TTL_HEADER: str(ttl)})

        def do_GET(self) -> None:  # noqa: N802
            address = self.client_address[0]
            if not service.tokens.valid(self.headers.get(TOKEN_HEADER), address):
                return self._send(401, "Unauthorized")
            host = service.host_at(address)
            if host is None:
                return self._send(403, "Forbidden: not a sandbox host")
            try:
                status, body = service.answer(host, self.path)
            except Exception as exc:  # noqa: BLE001 - the caller (an SDK) sees a 500 and retries
                status, body = 500, f"Internal Error: {type(exc).__name__}: {exc}"
            self._send(status, body)

        def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: no log per request
            return

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    return server
