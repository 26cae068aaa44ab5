"""The inference image: built from the local base, run as a container, pushed to a local registry.

Needs a Docker engine (the `docker_client` fixture fails without one) and Debian's docker-registry.
ECR is replaced only at its token API (FakeEcr): the registry behind it is a real one.
"""

from __future__ import annotations

import contextlib
import http.client
import json
from pathlib import Path

import pytest

from provisioner import inference_image, local_images
from provisioner.errors import EnvctlError, MissingTool
from tests.fixtures.docker import FakeEcr
from tests.fixtures.inference_server import wait_for_ping

TEAM = "citest"


@pytest.fixture(scope="module")
def built_image(docker_client):
    """envctl-citest-inference:<content tag>, built FROM the local bookworm base; its build output."""
    lines: list[str] = []
    ref = inference_image.build_image(TEAM, progress=lines.append)
    return ref, lines


@pytest.fixture
def run_container(docker_client):
    """A factory: run the image with 8080 published on a free 127.0.0.1 port; removes it afterwards."""
    containers = []

    def run(ref: str, *command: str, model_dir: Path | None = None, environment: dict | None = None):
        volumes = {str(model_dir): {"bind": "/opt/ml/model", "mode": "ro"}} if model_dir else None
        container = docker_client.containers.run(
            ref,
            list(command) or None,
            detach=True,
            ports={"8080/tcp": ("127.0.0.1", None)},
            volumes=volumes,
            environment=environment,
        )
        containers.append(container)
        container.reload()
        port = int(container.ports["8080/tcp"][0]["HostPort"])
        return container, port

    yield run
    for container in containers:
        container.remove(force=True)


def post_json(port: int, document: object) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/invocations", json.dumps(document), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


# ---- naming and settings (no engine needed) --------------------------------------------------


def test_default_tag_is_a_content_hash_of_the_templates():
    """The tag is default-<12 hex> and stays the same while templates/inference does not change."""
    tag = inference_image.default_image_tag()
    assert tag.startswith("default-") and len(tag) == len("default-") + 12
    assert tag == inference_image.default_image_tag()


def test_default_tag_follows_the_template_content(monkeypatch, tmp_path):
    """Changing any template file changes the tag (ECR tags are immutable)."""
    for name in ("app.py", "Dockerfile"):
        (tmp_path / name).write_text("original")
    monkeypatch.setattr(inference_image, "TEMPLATE_DIR", tmp_path)
    before = inference_image.default_image_tag()
    (tmp_path / "app.py").write_text("changed")
    assert inference_image.default_image_tag() != before


def test_team_names_that_cannot_name_an_image_are_refused():
    """An upper-case or punctuated team name is an input error, not a Docker error."""
    with pytest.raises(EnvctlError, match="cannot name an image"):
        inference_image.local_image_ref("Fraud_Team")


def test_debian_mirror_comes_from_the_apt_sources(tmp_path):
    """deb822 and one-line sources are read; the archive serving bookworm wins over security."""
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
    )
    assert local_images.debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text("deb [signed-by=/k.gpg] http://other.example/debian bookworm main\n")
    assert local_images.debian_mirror(tmp_path) == "http://other.example/debian"


def test_no_engine_is_one_line_naming_the_endpoint(monkeypatch, tmp_path):
    """Without a Docker engine the error says where it looked and what to do."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    with pytest.raises(MissingTool) as raised:
        local_images.connect_docker()
    assert raised.value.message == (
        f"no Docker engine at unix://{tmp_path}/docker.sock; start dockerd or set DOCKER_HOST"
    )


# ---- build and run ---------------------------------------------------------------------------


@pytest.mark.docker
def test_image_builds_from_the_local_base_with_the_content_tag(docker_client, built_image):
    """The image is tagged by content, serves on 8080 and starts `serve` with or without the argument."""
    ref, lines = built_image
    assert ref == f"envctl-{TEAM}-inference:{inference_image.default_image_tag()}"
    assert any(f"Successfully tagged {ref}" in line for line in lines)
    config = docker_client.images.get(ref).attrs["Config"]
    assert "8080/tcp" in config["ExposedPorts"]
    assert config["Entrypoint"] == ["/opt/program/serve"]
    assert docker_client.images.get(local_images.base_image_tag())


@pytest.mark.docker
@pytest.mark.parametrize("command", [("serve",), ()], ids=["docker-run-serve", "docker-run"])
def test_container_answers_ping_and_invocations(built_image, run_container, command):
    """`docker run <image> serve` (SageMaker) and `docker run <image>` both answer the contract."""
    container, port = run_container(built_image[0], *command)
    wait_for_ping("127.0.0.1", port, timeout=30)
    status, body = post_json(port, {"instances": [[1.0, 2.0, 3.0]]})
    assert status == 200
    assert body["predictions"] == pytest.approx([1.7])


@pytest.mark.docker
def test_container_reads_the_model_from_opt_ml_model(built_image, run_container, tmp_path):
    """A model.json mounted at /opt/ml/model (where SageMaker puts model data) is served."""
    (tmp_path / "model.json").write_text(json.dumps({"weights": [1.0], "bias": -1.0}))
    _, port = run_container(built_image[0], "serve", model_dir=tmp_path)
    wait_for_ping("127.0.0.1", port, timeout=30)
    assert post_json(port, {"instances": [[10.0]]}) == (200, {"predictions": [9.0]})


@pytest.mark.docker
def test_docker_stop_is_graceful(built_image, run_container):
    """gunicorn is PID 1 and ends on SIGTERM with exit code 0, well inside docker stop's grace time.

    One worker: a worker that gets SIGTERM while still booting misses it (a gunicorn race), and with
    one worker, a /ping answer proves it has booted."""
    container, port = run_container(built_image[0], "serve", environment={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"})
    wait_for_ping("127.0.0.1", port, timeout=30)
    container.stop(timeout=20)
    exit_code = container.wait(timeout=5)["StatusCode"]
    assert exit_code == 0, container.logs().decode()


@pytest.mark.docker
def test_a_missing_base_without_debootstrap_is_one_clear_line(docker_client, monkeypatch):
    """Without debootstrap (or root) the base cannot be built: MissingTool says what to do instead."""
    from provisioner.image_source import ImageSource

    monkeypatch.setattr(local_images, "BASE_RECIPE", "a recipe never built")
    monkeypatch.setattr(local_images.shutil, "which", lambda name: None)
    no_registry = ImageSource(None, "docker.io does not answer", "docker.io")
    with pytest.raises(MissingTool, match=r"needs root and debootstrap \(missing: debootstrap\)") as raised:
        local_images.ensure_base_image(docker_client, no_registry, print, alternative="; or pass --base-image x")
    assert "ENVCTL_IMAGE_REGISTRY" in raised.value.hint and raised.value.hint.endswith("; or pass --base-image x")


@pytest.fixture
def empty_base_image(docker_client):
    """An image with no files at all: every RUN step of a build FROM it fails.

    Kept between runs: removing it would leave the failed build's cached steps dangling."""
    import io
    import tarfile

    ref = "envctl-test/empty:latest"
    if not local_images.image_exists(docker_client, ref):
        archive = io.BytesIO()
        tarfile.open(fileobj=archive, mode="w").close()
        docker_client.api.import_image_from_data(archive.getvalue(), repository="envctl-test/empty", tag="latest")
    return ref


@pytest.mark.docker
def test_a_failing_build_step_raises_with_the_engine_message(empty_base_image):
    """A RUN step that fails is reported inside the build stream; it becomes one EnvctlError line."""
    with pytest.raises(EnvctlError, match=r"building envctl-citest-inference:default-\w+ failed: .+") as raised:
        inference_image.build_image(TEAM, base_image=empty_base_image, progress=lambda _: None)
    assert "\n" not in raised.value.message


# ---- push ------------------------------------------------------------------------------------


@pytest.fixture
def untag_pushed(docker_client):
    """Removes the registry tags push_image adds locally."""
    import docker

    refs: list[str] = []
    yield refs.append
    for ref in refs:
        with contextlib.suppress(docker.errors.ImageNotFound):  # the push failed before tagging
            docker_client.images.remove(ref)


@pytest.mark.docker
def test_push_puts_the_content_tag_in_the_registry(built_image, local_registry, untag_pushed):
    """push_image logs in with the ECR token and the registry then lists the tag."""
    repository_url = f"{local_registry.address}/envctl-{TEAM}"
    ecr = FakeEcr(local_registry.address)
    lines: list[str] = []
    pushed = inference_image.push_image(built_image[0], repository_url, ecr_client=ecr, progress=lines.append)
    untag_pushed(pushed)
    tag = inference_image.default_image_tag()
    assert pushed == f"{repository_url}:{tag}"
    assert ecr.calls == 1
    assert tag in local_registry.tags(f"envctl-{TEAM}")
    assert any(line.startswith("digest sha256:") for line in lines)


@pytest.mark.docker
def test_a_wrong_token_is_a_login_error(built_image, local_registry):
    """A token the registry refuses fails at login, with the registry's answer."""
    repository_url = f"{local_registry.address}/envctl-{TEAM}"
    with pytest.raises(EnvctlError, match=rf"docker login to {local_registry.address} failed: .*401"):
        inference_image.push_image(
            built_image[0], repository_url, ecr_client=FakeEcr(local_registry.address, "wrong"), progress=print
        )


@pytest.mark.docker
def test_a_push_refused_in_the_stream_raises(built_image, read_only_registry, untag_pushed):
    """An error the registry reports inside the push stream becomes an EnvctlError with its message."""
    repository_url = f"{read_only_registry.address}/envctl-{TEAM}"
    untag_pushed(f"{repository_url}:{inference_image.default_image_tag()}")
    with pytest.raises(EnvctlError, match=rf"push of {repository_url}:default-\w+ failed: .+") as raised:
        inference_image.push_image(
            built_image[0], repository_url, ecr_client=FakeEcr(read_only_registry.address), progress=print
        )
    assert "\n" not in raised.value.message


@pytest.mark.docker
def test_pushing_an_image_that_was_never_built_says_so(docker_client, local_registry):
    """A missing local image is named, with the command that builds it."""
    with pytest.raises(EnvctlError, match="no local image envctl-ghost-inference:default-0; build it first"):
        inference_image.push_image(
            "envctl-ghost-inference:default-0",
            f"{local_registry.address}/envctl-ghost",
            ecr_client=FakeEcr(local_registry.address),
            progress=print,
        )
