"""Starts, finds and stops the sandbox's moto server; records it in `<state_dir>/sandbox/server.json`.

At start the server gets an identity (a random id kept in an SSM parameter inside moto) and an
admin IAM user whose keys envctl uses for every call, so that tests can switch on moto's IAM
enforcement and still administer the sandbox.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from provisioner.engines.base import Progress, no_progress
from provisioner.engines.sandbox.processes import ProcessRecord, free_port, pid_alive, wait_until_ready
from provisioner.errors import EnvctlError

SERVER_ID_PARAMETER = "/envctl/sandbox/server-id"
ADMIN_USER = "envctl-sandbox-admin"
ACCOUNT_ID = "123456789012"  # moto's default account
HOME_REGION = "us-east-1"
START_TIMEOUT_S = 20.0
_THREAD_START_LOCK = threading.Lock()  # flock is per open file: threads of one process need their own lock


@dataclass
class ServerInfo:
    pid: int
    host: str
    port: int
    server_id: str
    started_at: float
    access_key_id: str
    secret_access_key: str

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT_ID}:user/{ADMIN_USER}"

    @property
    def credentials(self) -> dict[str, str]:
        return {"aws_access_key_id": self.access_key_id, "aws_secret_access_key": self.secret_access_key}


def aws_command(endpoint: str, region: str, aws: str = "aws") -> str:
    """The AWS CLI pointed at the sandbox (moto takes any credentials unless IAM enforcement is on)."""
    return f"AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing {aws} --endpoint-url {endpoint} --region {region}"


def _answers(endpoint: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class SandboxServer:
    def __init__(self, sandbox_dir: Path, port: int = 0, host: str = "127.0.0.1"):
        self.dir = sandbox_dir
        self.port = port
        self.host = host
        self.record = ProcessRecord(sandbox_dir / "server.json", ServerInfo)
        self.log_path = sandbox_dir / "server.log"

    def recorded(self) -> ServerInfo | None:
        return self.record.read()

    def running(self) -> ServerInfo | None:
        """The recorded server, if its process is alive and answers."""
        return self.record.running(lambda info: pid_alive(info.pid) and _answers(info.endpoint))

    def ensure_started(self, progress: Progress = no_progress) -> ServerInfo:
        """The running server, or a new one; one starter at a time across processes and threads."""
        if info := self.running():
            return info
        with self._start_lock():
            return self.running() or self.start(progress)

    @contextmanager
    def _start_lock(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with _THREAD_START_LOCK, open(self.dir / "server.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # blocks: the other starter finishes within seconds
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def start(self, progress: Progress = no_progress) -> ServerInfo:
        if self.running():
            raise EnvctlError(f"the sandbox is already running at {self.running().endpoint}")
        self.dir.mkdir(parents=True, exist_ok=True)
        port = self.port or free_port(self.host)
        server_id = uuid.uuid4().hex
        progress(f"starting the sandbox's moto server on {self.host}:{port}")
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "provisioner.engines.sandbox.server_process", "--host", self.host, "--port", str(port),
                 "--sandbox-dir", str(self.dir.resolve()), "--server-id", server_id],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
            )
        endpoint = f"http://{self.host}:{port}"
        wait_until_ready(process, lambda: _answers(endpoint, timeout=0.5), log_path=self.log_path,
                         failure=f"the sandbox's moto server did not start on {endpoint}", timeout_s=START_TIMEOUT_S, poll_s=0.05)
        info = self._bootstrap(process.pid, port, server_id)
        self.record.write(info, private=True)
        return info

    def _bootstrap(self, pid: int, port: int, server_id: str) -> ServerInfo:
        """Give the new server its identity and the admin user (before any IAM enforcement)."""
        import boto3

        endpoint = f"http://{self.host}:{port}"
        session = boto3.session.Session(aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap", region_name=HOME_REGION)
        iam = session.client("iam", endpoint_url=endpoint)
        iam.create_user(UserName=ADMIN_USER, Tags=[{"Key": "envctl:managed-by", "Value": "envctl"}])
        iam.put_user_policy(UserName=ADMIN_USER, PolicyName="sandbox-admin", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        session.client("ssm", endpoint_url=endpoint).put_parameter(Name=SERVER_ID_PARAMETER, Value=server_id, Type="String")
        return ServerInfo(pid=pid, host=self.host, port=port, server_id=server_id, started_at=time.time(),
                          access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"])

    def holds_identity(self, info: ServerInfo) -> bool:
        """Whether the server still holds what was made at its start (false after a moto reset)."""
        import botocore.session  # not boto3: this runs on every command's fast path

        ssm = botocore.session.get_session().create_client(
            "ssm", endpoint_url=info.endpoint, region_name=HOME_REGION, **info.credentials)
        try:
            return ssm.get_parameter(Name=SERVER_ID_PARAMETER)["Parameter"]["Value"] == info.server_id
        except Exception:  # noqa: BLE001 - any failure means the identity is not there
            return False

    def stop(self) -> ServerInfo | None:
        return self.record.stop()
