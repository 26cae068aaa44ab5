"""Sandbox images: content tags that change when, and only when, an image's recipe (or source)
does, and the choice between the public images of a registry and local stand-ins (no Docker)."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import threading
import time

import pytest

from provisioner import image_source
from provisioner.engines.sandbox import images
from provisioner.errors import MissingTool
from provisioner.image_source import ImageSource

HUB = ImageSource("docker.io", "test", "docker.io")
STAND_IN = ImageSource(None, "test", "docker.io")


def test_airflow_tag_follows_its_own_constraints_and_requirements_only(tmp_path, monkeypatch):
    """A stand-in Airflow tag changes with its own version's constraints/requirements, not another's."""
    shutil.copytree(images.TEMPLATES, tmp_path / "sandbox")
    monkeypatch.setattr(images, "TEMPLATES", tmp_path / "sandbox")
    before = images.airflow_image_ref("2.10.5", STAND_IN)
    (tmp_path / "sandbox" / "airflow" / "constraints-3.0.6.txt").write_text("apache-airflow==3.0.6\n")
    (tmp_path / "sandbox" / "airflow" / "requirements-3.txt").write_text("asyncpg\n")
    assert images.airflow_image_ref("2.10.5", STAND_IN) == before  # adding another version rebuilds nothing
    airflow3 = images.airflow_image_ref("3.0.6", STAND_IN)
    (tmp_path / "sandbox" / "airflow" / "requirements-3.txt").write_text("asyncpg\nsomething-else\n")
    assert images.airflow_image_ref("3.0.6", STAND_IN) != airflow3
    assert images.airflow_image_ref("2.10.5", STAND_IN) == before
    with open(tmp_path / "sandbox" / "airflow" / "constraints-2.10.5.txt", "a") as constraints:
        constraints.write("# repinned\n")
    assert images.airflow_image_ref("2.10.5", STAND_IN) != before
    assert images.airflow_image_ref("3.0.6", STAND_IN).startswith("envctl/sandbox-airflow:3.0.6-standin-")


def test_tags_name_the_source_and_differ_between_sources_and_registries():
    """Every image's tag says registry or standin; another registry's public images make another tag."""
    other = ImageSource("127.0.0.1:5000", "test", "127.0.0.1:5000")
    for ref_of in (images.host_image_ref, images.postgres_image_ref,
                   lambda source: images.airflow_image_ref("2.10.5", source)):
        real, standin, elsewhere = ref_of(HUB), ref_of(STAND_IN), ref_of(other)
        assert "-registry-" in real and "-standin-" in standin, (real, standin)
        assert len({real, standin, elsewhere}) == 3
    assert images.postgres_image_ref(HUB).startswith("envctl/sandbox-postgres:16-registry-")
    assert images.postgres_image_ref(STAND_IN).startswith("envctl/sandbox-postgres:15-standin-")


def test_images_are_built_from_the_public_names_a_real_host_pulls():
    """FROM debian:bookworm / postgres:16 / apache/airflow on Docker Hub; under library/ elsewhere."""
    assert images.host_base(HUB) == "debian:bookworm"
    assert images.host_base(STAND_IN) == images.rootfs_image_ref()
    assert HUB.public_ref("postgres:16") == "postgres:16"
    mirror = ImageSource("127.0.0.1:5000", "test", "127.0.0.1:5000")
    assert mirror.public_ref("postgres:16") == "127.0.0.1:5000/library/postgres:16"
    assert mirror.public_ref("apache/airflow:2.10.5") == "127.0.0.1:5000/apache/airflow:2.10.5"
    assert HUB.labels("debian:bookworm") == {"envctl.image-source": "registry", "envctl.base-image": "debian:bookworm"}
    assert STAND_IN.labels("x")["envctl.image-source"] == "stand-in"


def test_probe_urls_respect_the_engines_mirrors_and_plain_http_on_loopback():
    """Docker Hub is asked through dockerd's mirrors first; 127.0.0.1 and insecure registries over http."""
    config = {"Mirrors": ["https://mirror.example/"],
              "IndexConfigs": {"reg.internal:5000": {"Secure": False}, "docker.io": {"Secure": True}}}
    assert image_source.probe_urls("docker.io", config) == ["https://mirror.example/v2/",
                                                            "https://registry-1.docker.io/v2/"]
    assert image_source.probe_urls("docker.io", None) == ["https://registry-1.docker.io/v2/"]
    assert image_source.probe_urls("127.0.0.1:5000", config) == ["http://127.0.0.1:5000/v2/"]
    assert image_source.probe_urls("localhost:5000", {}) == ["http://localhost:5000/v2/"]
    assert image_source.probe_urls("reg.internal:5000", config) == ["http://reg.internal:5000/v2/"]
    assert image_source.probe_urls("ghcr.io", config) == ["https://ghcr.io/v2/"]


def test_choice_registry_answers_not_answers_and_cached():
    """Real images when the registry answers or they are cached (not probed then); stand-ins otherwise."""
    up = image_source.choose("docker.io", registry_config={}, real_cached=False, answer=lambda url: None)
    assert up.registry == "docker.io" and "registry-1.docker.io/v2/ answers" in up.describe()
    down = image_source.choose("docker.io", registry_config={}, real_cached=False,
                               answer=lambda url: "Could not resolve host")
    assert down.registry is None and down.kind == "stand-in"
    assert "docker.io does not answer" in down.describe() and "Could not resolve host" in down.describe()

    def never(url):
        raise AssertionError(f"probed {url} although the real images are cached")

    cached = image_source.choose("docker.io", registry_config=None, real_cached=True, answer=never)
    assert cached.registry == "docker.io" and "cached" in cached.describe()


def test_a_mirror_that_answers_is_enough_for_docker_hub():
    """With Docker Hub unreachable but a configured mirror answering, the public images are used."""
    config = {"Mirrors": ["https://mirror.example"]}
    source = image_source.choose("docker.io", registry_config=config, real_cached=False,
                                 answer=lambda url: None if url.startswith("https://mirror.example") else "refused")
    assert source.registry == "docker.io" and "mirror.example" in source.reason


class _Registry(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_registry():
    """A local HTTP server answering /v2/ with the status a test sets."""
    handler = type("Handler", (_Registry,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "answers"), [(200, True), (401, True), (404, False), (503, False)])
def test_v2_answering_200_or_401_is_a_registry(http_registry, status, answers):
    """The Registry API's version check: 200 (open) or 401 (wants a login) means a registry answers."""
    handler, address = http_registry
    handler.status = status
    source = image_source.choose(address, registry_config={}, real_cached=False)
    assert (source.registry == address) is answers, source.reason
    if not answers:
        assert f"HTTP {status}" in source.reason


def test_a_registry_that_never_answers_is_given_up_within_the_timeout(monkeypatch):
    """A port that accepts and stays silent costs about PROBE_TIMEOUT_S, not a long hang."""
    monkeypatch.setattr(image_source, "PROBE_TIMEOUT_S", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        source = image_source.choose(f"127.0.0.1:{silent.getsockname()[1]}", registry_config={}, real_cached=False)
    assert source.registry is None
    assert time.monotonic() - started < 2.0


def test_resolve_says_the_choice_in_one_line():
    """resolve asks the engine for its mirrors, probes them, and reports the source in one progress line."""

    class Engine:  # what resolve reads of the Docker engine: `docker info`
        def info(self):
            return {"RegistryConfig": {"Mirrors": ["http://127.0.0.1:9"]}}

    lines: list[str] = []
    source = image_source.resolve(Engine(), "docker.io", lambda candidate: ["envctl/x:1"], exists=lambda ref: False,
                                  progress=lines.append)
    assert len(lines) == 1 and lines[0] == source.describe()
    assert source.registry is None and "http://127.0.0.1:9/v2/" in lines[0]


def _path_with(tmp_path, *tools: str) -> str:
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in tools:
        (folder / tool).write_text("#!/bin/sh\nexit 0\n")
        (folder / tool).chmod(0o755)
    return str(folder)


def test_without_registry_and_debootstrap_the_error_names_both_ways_out(tmp_path, monkeypatch):
    """No registry and no debootstrap: the error says what is missing, to reach a registry, or install it."""
    monkeypatch.setenv("PATH", _path_with(tmp_path))
    with pytest.raises(MissingTool) as raised:
        image_source.require_standin_tools(ImageSource(None, "docker.io does not answer: refused", "docker.io"),
                                           alternative="; or pass --base-image <image with python3>")
    message, hint = raised.value.message, raised.value.hint
    assert "missing: debootstrap" in message and "docker.io does not answer: refused" in message
    assert "ENVCTL_IMAGE_REGISTRY" in hint and "apt-get install debootstrap" in hint and "--base-image" in hint


def test_stand_ins_need_root_as_well(tmp_path, monkeypatch):
    """debootstrap present but not root: refused naming root; root and debootstrap: allowed."""
    monkeypatch.setenv("PATH", _path_with(tmp_path, "debootstrap"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(MissingTool, match=r"missing: root\)"):
        image_source.require_standin_tools(STAND_IN)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    image_source.require_standin_tools(STAND_IN)  # nothing missing: no error


# ---- with a Docker engine: a registry serving the public base images -------------------------
# Slow (builds the real-based images and boots one host: minutes): marked hosts and docker.

AIRFLOW_VERSION = "2.10.5"
HEALTHY_WITHIN_S = 300


def _start_plain_registry(directory):
    """Debian's docker-registry on 127.0.0.1:<free port>, no auth, its own storage (dockerd pulls from
    127.0.0.0/8 over http without any insecure-registry setting)."""
    import subprocess
    import urllib.request

    from tests.conftest import free_port

    binary = shutil.which("docker-registry")
    assert binary, "docker-registry is not installed (apt-get install docker-registry)"
    port = free_port()
    config = directory / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: "
                      f"{directory / 'storage'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    log = open(directory / "registry.log", "wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                return process, log, f"127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"docker-registry did not start: {(directory / 'registry.log').read_text()}")
            time.sleep(0.1)


def _path_without(tool: str, shadow_root) -> str:
    """PATH with every folder that holds tool replaced by a copy of symlinks to everything else in it."""
    folders = []
    for index, folder in enumerate(os.environ["PATH"].split(os.pathsep)):
        if folder and os.path.exists(os.path.join(folder, tool)):
            shadow = shadow_root / f"{index}"
            shadow.mkdir(parents=True)
            for entry in os.listdir(folder):
                if entry != tool:
                    (shadow / entry).symlink_to(os.path.join(folder, entry))
            folder = str(shadow)
        folders.append(folder)
    return os.pathsep.join(folders)


def _push_as(client, local_ref: str, registry: str, public: str) -> None:
    """Push local_ref to registry under a public name (`library/postgres:16`), then drop the local tag
    so the Docker engine can only get it by pulling."""
    from provisioner.local_images import follow

    repository, tag = f"{registry}/{public}".rsplit(":", 1)
    client.api.tag(local_ref, repository, tag)
    follow(lambda: client.api.push(repository, tag=tag, stream=True, decode=True), print,
           failure=f"push of {public} to the test registry failed")
    client.images.remove(f"{repository}:{tag}")


@pytest.mark.docker
@pytest.mark.hosts
def test_with_a_registry_and_no_debootstrap_create_hosts_builds_no_stand_in(tmp_path_factory):
    """With a Docker engine, no debootstrap, and a registry that serves the public base images,
    `envctl create fraud --hosts` brings the Airflow host up from them without building a stand-in."""
    import json
    import subprocess
    import sys
    import urllib.request

    from provisioner.inference_image import PYTHON_IMAGE
    from provisioner.local_images import connect_docker, ensure_base_image
    from tests.conftest import ROOT

    client = connect_docker()
    work = tmp_path_factory.mktemp("public-images")
    # What the registry serves under the public names: the stand-ins (built here with debootstrap
    # when not cached), as Docker Hub would serve the real ones.
    standin = ImageSource(None, "the test's public images", "docker.io")
    served = {
        f"library/{images.DEBIAN_IMAGE}": ensure_base_image(client, standin, print),
        f"library/{PYTHON_IMAGE}": ensure_base_image(client, standin, print),
        f"library/{images.POSTGRES_IMAGE}": images.ensure_postgres_image(client, standin, print).local_ref,
        images.airflow_public_image(AIRFLOW_VERSION):
            images.ensure_airflow_image(client, AIRFLOW_VERSION, standin, print).local_ref,
    }
    process, log, registry = _start_plain_registry(work)
    project = work / "project"
    project.mkdir()
    shutil.copytree(ROOT / "stacks", project / "stacks")
    shutil.copy(ROOT / "envctl.toml", project / "envctl.toml")
    envctl = str(ROOT / ".venv" / "bin" / "envctl") if (ROOT / ".venv" / "bin" / "envctl").exists() else \
        os.path.join(os.path.dirname(sys.executable), "envctl")
    env = {**os.environ, "ENVCTL_IMAGE_REGISTRY": registry, "PATH": _path_without("debootstrap", work / "path")}
    real = ImageSource(registry, "", registry)
    try:
        for public, local_ref in served.items():
            _push_as(client, local_ref, registry, public)
        assert subprocess.run(["sh", "-c", "command -v debootstrap"], env=env).returncode != 0

        created = subprocess.run([envctl, "create", "fraud", "--hosts"], cwd=project, env=env,
                                 capture_output=True, text=True, timeout=1800)
        output = created.stdout + created.stderr
        assert created.returncode == 0, output
        assert f"images: FROM the public images of {registry} (http://{registry}/v2/ answers)" in output
        assert "stand-in" not in output and "debootstrap" not in output and "pip install apache-airflow" not in output
        for public in ("debian:bookworm", "postgres:16", f"apache/airflow:{AIRFLOW_VERSION}"):
            assert f"pulling {real.public_ref(public)}" in output

        status = json.loads(subprocess.run([envctl, "status", "fraud", "--json"], cwd=project, env=env,
                                           capture_output=True, text=True, check=True).stdout)
        host = client.containers.get(status["host"]["container"])
        host_labels = host.image.labels
        assert host.image.tags == [images.host_image_ref(real)]
        assert host_labels["envctl.image-source"] == "registry"
        assert host_labels["envctl.base-image"] == f"{registry}/library/debian:bookworm"

        health: dict = {}
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{status['airflow_url']}/health", timeout=5) as response:
                    health = json.loads(response.read())
            except OSError:
                health = {}
            if health.get("scheduler", {}).get("status") == "healthy":
                break
            time.sleep(5)
        assert health.get("metadatabase", {}).get("status") == "healthy", health
        assert health["scheduler"]["status"] == "healthy", health
        # Inside the host, the compose project runs the real-based images the sandbox registry served.
        exit_code, inside = host.exec_run(["docker", "inspect", "--format",
                                           '{{index .Config.Labels "envctl.image-source"}}',
                                           f"apache/airflow:{AIRFLOW_VERSION}", "postgres:16"])
        assert exit_code == 0 and inside.decode().split() == ["registry", "registry"], inside
    finally:
        subprocess.run([envctl, "destroy", "fraud", "--yes", "--delete-data"], cwd=project, env=env,
                       capture_output=True, timeout=600)
        subprocess.run([envctl, "sandbox", "stop"], cwd=project, env=env, capture_output=True, timeout=120)
        process.terminate()
        process.wait(timeout=10)
        log.close()
        # Made by this test, named after its registry's port: by id, so that the tags the push to the
        # sandbox registry added go too.
        for ref in [*images.built_refs({AIRFLOW_VERSION}, real),
                    *(real.public_ref(name) for name in ("debian:bookworm", PYTHON_IMAGE, "postgres:16",
                                                         f"apache/airflow:{AIRFLOW_VERSION}"))]:
            if images.image_exists(client, ref):
                image = client.images.get(ref)
                if image.labels.get("envctl.image-source") == "registry":
                    client.images.remove(image.id, force=True)
                else:
                    client.images.remove(ref)  # a pulled stand-in: only the tag is this test's
