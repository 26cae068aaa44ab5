"""The sandbox's registry without Debian's docker-registry binary: the registry:2 image as a container."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import urllib.request

import pytest

from provisioner.engines.base import no_progress
from provisioner.engines.sandbox.container_registry import RegistryServer
from provisioner.errors import MissingTool

pytestmark = pytest.mark.docker

# A registry name that cannot resolve: the image is found locally or not at all, and nothing of
# the shared engine's settings or its public names (registry:2) is touched.
TEST_REGISTRY = "envctl-test.invalid"
STANDIN_CONFIG = {
    "version": 0.1,
    "log": {"level": "warn"},
    "storage": {"filesystem": {"rootdirectory": "/var/lib/registry"}},
    "http": {"addr": ":5000"},
}


def _standin_registry_image(client) -> str:
    """`<test registry>/library/registry:2`: Debian's docker-registry on the stand-in base, with the
    official image's contract (listens on :5000, stores under /var/lib/registry)."""
    from provisioner.image_source import ImageSource
    from provisioner.local_images import ensure_base_image

    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("building the stand-in registry:2 image needs docker-registry (make test installs it)", pytrace=False)
    base = ensure_base_image(client, ImageSource(registry=None, reason="test"), no_progress)
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        tar.add(binary, arcname="docker-registry")
        config = json.dumps(STANDIN_CONFIG).encode()
        info = tarfile.TarInfo("config.yml")
        info.size = len(config)
        tar.addfile(info, io.BytesIO(config))
        dockerfile = (f"FROM {base}\nCOPY docker-registry /bin/registry\nCOPY config.yml /etc/docker/registry/config.yml\n"
                      'EXPOSE 5000\nENTRYPOINT ["/bin/registry", "serve", "/etc/docker/registry/config.yml"]\n').encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    ref = f"{TEST_REGISTRY}/library/registry:2"
    client.images.build(fileobj=context, custom_context=True, tag=ref, rm=True)
    return ref


def _without_docker_registry(monkeypatch) -> None:
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "docker-registry" else which(name, *a, **k))


def test_without_the_binary_the_registry_runs_as_a_container(docker_client, tmp_path, monkeypatch):
    """Where docker-registry is not installed (Docker Desktop), the registry:2 image serves the same
    API on 127.0.0.1, is found again while it runs, and stop removes its container."""
    image = _standin_registry_image(docker_client)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _without_docker_registry(monkeypatch)
    server = RegistryServer(tmp_path, image_registry=TEST_REGISTRY)
    lines: list[str] = []
    info = server.ensure_started(lines.append)
    try:
        assert info.container and info.pid == 0
        assert any(image in line for line in lines), lines
        with urllib.request.urlopen(f"http://{info.address}/v2/", timeout=5) as response:
            assert response.status == 200
        assert server.running() == info
        assert server.ensure_started() == info  # no second container
    finally:
        server.stop()
    assert server.running() is None
    assert not docker_client.containers.list(all=True, filters={"name": info.container})


def test_without_the_binary_or_the_image_the_error_says_both_ways_out(docker_client, tmp_path, monkeypatch):
    """No docker-registry and an image that cannot be pulled: one error naming both, no container left."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _without_docker_registry(monkeypatch)
    before = {c.id for c in docker_client.containers.list(all=True)}
    with pytest.raises(MissingTool) as missing:
        RegistryServer(tmp_path, image_registry="127.0.0.1:9").ensure_started()
    assert "docker-registry" in missing.value.message and "127.0.0.1:9/library/registry:2" in missing.value.message
    assert {c.id for c in docker_client.containers.list(all=True)} == before


def test_sandboxes_of_different_image_registries_do_not_share_the_storage(monkeypatch, tmp_path):
    """The names hosts pull are not content-tagged: another registry's push must not replace Docker Hub's."""
    from provisioner.engines.sandbox.container_registry import shared_storage

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert shared_storage() == shared_storage("docker.io") == tmp_path / "envctl" / "registry"
    other = shared_storage("127.0.0.1:5000")
    assert other.parent == tmp_path / "envctl" and other != shared_storage() and ":" not in other.name
    assert shared_storage("mirror.example.com/hub") != other and "/" not in shared_storage("mirror.example.com/hub").name
