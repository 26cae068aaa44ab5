"""Fixtures for the inference container: a local server process, a Docker engine, a local registry."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from provisioner.errors import MissingTool
from provisioner.local_images import connect_docker
from tests.conftest import ROOT, free_port

SERVE = ROOT / "templates" / "inference" / "serve"
REGISTRY_USER = "AWS"  # what ECR's tokens decode to: AWS:<password>
REGISTRY_PASSWORD = "not-a-real-ecr-token"


def wait_for_ping(host: str, port: int, *, timeout: float, server: LocalServer | None = None) -> float:
    """Seconds until GET /ping answers 200; fails the test on timeout or when server exits."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server is not None and server.process.poll() is not None:
            pytest.fail(f"server exited with {server.process.returncode} before /ping:\n{server.output()}")
        connection = http.client.HTTPConnection(host, port, timeout=1)
        try:
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return time.monotonic() - started
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.05)
    pytest.fail(f"no 200 from http://{host}:{port}/ping within {timeout} s")


@dataclass
class LocalServer:
    port: int
    process: subprocess.Popen
    log: IO[str]  # gunicorn's output; a file, so a chatty server never blocks on a full pipe

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        """SIGTERM, as SageMaker and `docker stop` send it; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def close(self) -> None:
        self.stop()
        self.log.close()


def spawn_server(model_dir: Path, *, workers: int = 2) -> LocalServer:
    """Run templates/inference/serve (gunicorn) with this venv's python on a free 127.0.0.1 port."""
    port = free_port()
    env = {
        **os.environ,
        "SM_MODEL_DIR": str(model_dir),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
        "ENVCTL_BIND_HOST": "127.0.0.1",
        "PYTHONDONTWRITEBYTECODE": "1",  # keep __pycache__ out of templates/inference
    }
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen([sys.executable, str(SERVE), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    return LocalServer(port, process, log)


@pytest.fixture
def start_server(tmp_path):
    """A factory: start a server for a model directory and wait until it answers /ping."""
    servers: list[LocalServer] = []

    def start(model_dir: Path | None = None, workers: int = 2) -> LocalServer:
        server = spawn_server(model_dir or tmp_path, workers=workers)
        servers.append(server)
        wait_for_ping("127.0.0.1", server.port, timeout=20, server=server)
        return server

    yield start
    for server in servers:
        server.close()


# ---- Docker ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_client():
    """The Docker engine; fails (never skips) without one: `make test` starts dockerd where it can."""
    try:
        client, problem = connect_docker(), ""
    except MissingTool as exc:
        client, problem = None, exc.message
    if client is None:
        pytest.fail(f"{problem} (these tests need Docker: run them with `make test`)", pytrace=False)
    yield client
    client.close()


@dataclass
class LocalRegistry:
    address: str  # 127.0.0.1:<port>; dockerd treats 127.0.0.0/8 registries as insecure-allowed

    def tags(self, repository: str) -> list[str]:
        connection = http.client.HTTPConnection(self.address, timeout=10)
        connection.request("GET", f"/v2/{repository}/tags/list", headers={"Authorization": _basic_auth()})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        if response.status == 404:
            return []
        assert response.status == 200, body
        return json.loads(body)["tags"] or []


def _basic_auth() -> str:
    return "Basic " + base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()


def _htpasswd_line(user: str, password: str) -> str:
    """distribution's htpasswd auth accepts bcrypt only; glibc's libxcrypt makes it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

    return f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n"


def _registry_config(directory: Path, port: int, *, read_only: bool) -> Path:
    (directory / "htpasswd").write_text(_htpasswd_line(REGISTRY_USER, REGISTRY_PASSWORD))
    maintenance = "  maintenance:\n    readonly:\n      enabled: true\n" if read_only else ""
    config = directory / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {directory / 'storage'}\n"
        f"{maintenance}"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n  htpasswd:\n    realm: envctl-test\n    path: {directory / 'htpasswd'}\n"
    )
    return config


def _wait_for_registry(process: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/v2/")
            connection.getresponse()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"docker-registry did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        finally:
            connection.close()


def _run_registry(directory: Path, *, read_only: bool = False):
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail(
            "docker-registry is not installed (apt-get install docker-registry; `make test` does as root)", pytrace=False
        )
    port = free_port()
    config = _registry_config(directory, port, read_only=read_only)
    log_path = directory / "registry.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        _wait_for_registry(process, port, log_path)
        yield LocalRegistry(f"127.0.0.1:{port}")
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory):
    """A Docker registry (Debian's docker-registry) on 127.0.0.1 that wants user AWS + a password."""
    yield from _run_registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="session")
def read_only_registry(tmp_path_factory):
    """A registry in read-only maintenance mode: it refuses pushes inside the push stream."""
    yield from _run_registry(tmp_path_factory.mktemp("registry-ro"), read_only=True)


class FakeEcr:
    """ECR's token API, at the true AWS boundary (moto's ECR has no registry behind it).

    Like ECR, get_authorization_token answers base64("AWS:<password>") and a proxyEndpoint.
    """

    def __init__(self, registry_address: str, password: str = REGISTRY_PASSWORD):
        self.registry_address = registry_address
        self.password = password
        self.calls = 0

    def get_authorization_token(self, **_):
        self.calls += 1
        token = base64.b64encode(f"AWS:{self.password}".encode()).decode()
        return {
            "authorizationData": [{"authorizationToken": token, "proxyEndpoint": f"https://{self.registry_address}"}]
        }
