"""The local Docker engine as envctl's images need it: connect, pull, build, stream, and the local
Debian bookworm base made with debootstrap + `docker import` when no registry serves public images.

Both the inference image (inference_image.py) and the sandbox hosts' images
(engines/sandbox/images.py) are built with these; the Docker SDK (`docker`, in the `sandbox`
extra) is imported inside the functions that need it.

The Docker SDK reports build and push failures inside its JSON stream, not as exceptions: every
stream here goes through `follow`, which raises on the first error event.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner import image_source
from provisioner.errors import EnvctlError, MissingTool
from provisioner.image_source import ImageSource

if TYPE_CHECKING:
    import docker

Progress = Callable[[str], None]

BASE_REPOSITORY = "envctl/base"
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Everything that decides the base image's content; the mirror does not (same packages anywhere).
BASE_RECIPE = f"debootstrap --variant=minbase --include={','.join(BASE_PACKAGES)} {BASE_SUITE}; v1"
BASE_IMPORT_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["/bin/bash"]',
)  # no STOPSIGNAL: dockerd 20.10's import --change rejects it
FALLBACK_DEBIAN_MIRROR = "http://deb.debian.org/debian"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # the engine colours the stderr of RUN steps


# ---- Docker engine ------------------------------------------------------------------------


def docker_endpoint() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect_docker() -> docker.DockerClient:
    """A client for the reachable Docker engine, or MissingTool in one line."""
    try:
        import docker
        import requests
    except ImportError:
        raise MissingTool("the Docker SDK is not installed: pip install 'envctl[sandbox]'") from None
    try:
        client = docker.from_env()
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        raise MissingTool(f"no Docker engine at {docker_endpoint()}; start dockerd or set DOCKER_HOST") from None
    return client


def image_exists(client: docker.DockerClient, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def follow(start: Callable[[], Iterable[dict[str, Any]]], progress: Progress, failure: str) -> None:
    """Start a Docker JSON stream and pass its messages to progress; any error, whether the engine
    raises it or reports it inside the stream, becomes `EnvctlError("<failure>: <message>")`."""
    import docker

    try:
        for event in start():
            if "error" in event:
                detail = event.get("errorDetail", {}).get("message") or event["error"]
                raise EnvctlError(f"{failure}: {str(detail).strip()}")
            message = _progress_line(event)
            if message:
                progress(message)
    except docker.errors.APIError as exc:
        raise EnvctlError(f"{failure}: {exc.explanation or exc}") from exc


def _progress_line(event: dict[str, Any]) -> str:
    if "stream" in event:
        return ANSI_ESCAPE.sub("", event["stream"]).rstrip()
    if "aux" in event:  # the built image's id, or the pushed image's digest
        aux = event["aux"]
        return f"digest {aux['Digest']}" if "Digest" in aux else f"image {aux.get('ID', aux)}"
    status = event.get("status", "")
    if not status or event.get("progressDetail"):
        return ""  # per-byte progress bars: too many lines to be useful
    return f"{event['id']}: {status}" if event.get("id") else status


def ensure_pulled(client: docker.DockerClient, ref: str, progress: Progress) -> str:
    """ref, pulled by the Docker engine (through its mirrors) unless it is here already."""
    if image_exists(client, ref):
        return ref
    repository, tag = ref.rsplit(":", 1)
    progress(f"pulling {ref}")
    follow(lambda: client.api.pull(repository, tag=tag, stream=True, decode=True), progress,
           failure=f"pulling {ref} failed")
    return ref


# ---- building -----------------------------------------------------------------------------


def copy_host_certificates(context: Path) -> None:
    """This machine's extra CA certificates into a build context (envctl's Dockerfiles install them)."""
    for certificate in sorted(HOST_CA_DIR.glob("*.crt")):
        shutil.copy2(certificate, context / certificate.name)


def build(client: docker.DockerClient, context: str, ref: str, build_args: dict[str, str], labels: dict[str, str],
          progress: Progress) -> None:
    """Build context as ref; the build's pip uses this machine's index (PIP_INDEX_URL) when it has one."""
    index_url = host_pip_index_url()
    if index_url:
        build_args = {**build_args, "PIP_INDEX_URL": index_url}
    follow(
        lambda: client.api.build(path=context, tag=ref, buildargs=build_args, labels=labels, rm=True, forcerm=True,
                                 decode=True),
        progress, failure=f"building {ref} failed",
    )


def host_pip_index_url() -> str | None:
    """The index `pip install` uses on this machine (PIP_INDEX_URL, else pip's config files), if set."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    home = Path.home()
    config_files = [Path("/etc/pip.conf"), home / ".pip" / "pip.conf", home / ".config" / "pip" / "pip.conf"]
    if os.environ.get("PIP_CONFIG_FILE"):
        config_files.append(Path(os.environ["PIP_CONFIG_FILE"]))
    parser = configparser.ConfigParser()
    parser.read([path for path in config_files if path.is_file()])  # later files override, as in pip
    return parser.get("install", "index-url", fallback=None) or parser.get("global", "index-url", fallback=None)


# ---- the local bookworm base --------------------------------------------------------------


def base_image_tag() -> str:
    recipe_hash = hashlib.sha256(BASE_RECIPE.encode()).hexdigest()[:12]
    return f"{BASE_REPOSITORY}:{BASE_SUITE}-{recipe_hash}"


def debian_mirror(sources_root: Path = Path("/etc/apt")) -> str:
    """The Debian archive this machine's apt uses (so debootstrap goes where apt may go)."""
    archives = [uri for uri, suites in _apt_sources(sources_root) if BASE_SUITE in suites]
    archives = archives or [uri for uri, _ in _apt_sources(sources_root) if uri.rstrip("/").endswith("/debian")]
    return archives[0] if archives else FALLBACK_DEBIAN_MIRROR


def _apt_sources(root: Path) -> list[tuple[str, list[str]]]:
    """(uri, suites) for every enabled `deb` source, one-line and deb822 formats."""
    sources = []
    list_files = [root / "sources.list", *sorted((root / "sources.list.d").glob("*.list"))]
    for path in filter(Path.is_file, list_files):
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", "", line).split()  # drop [signed-by=...] options
            if len(words) >= 3 and words[0] == "deb":
                sources.append((words[1], [words[2]]))
    for path in sorted((root / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = _deb822_fields(stanza)
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                suites = fields.get("suites", "").split()
                sources += [(uri, suites) for uri in fields.get("uris", "").split()]
    return sources


def _deb822_fields(stanza: str) -> dict[str, str]:
    fields = {}
    for line in stanza.splitlines():
        if line.startswith("#") or ":" not in line or line[:1].isspace():
            continue
        key, value = line.split(":", 1)
        fields[key.strip().lower()] = value.strip()
    return fields


def ensure_base_image(client: docker.DockerClient, source: ImageSource, progress: Progress, *,
                      alternative: str = "") -> str:
    """The local stand-in bookworm base (python3, ca-certificates); built once, then found by its tag."""
    ref = base_image_tag()
    if image_exists(client, ref):
        progress(f"base image {ref} exists")
        return ref
    image_source.require_standin_tools(source, alternative=alternative)
    build_rootfs_image(client, ref, BASE_PACKAGES, progress)
    return ref


def build_rootfs_image(client: docker.DockerClient, ref: str, packages: Iterable[str], progress: Progress, *,
                       including: str = "", failure: str = "debootstrap failed") -> None:
    """A minbase bookworm with packages, made by debootstrap from this machine's Debian mirror and
    imported as ref (`including` tells what the packages bring, in the progress line)."""
    with tempfile.TemporaryDirectory(prefix="envctl-rootfs-") as workdir:
        rootfs = Path(workdir) / "rootfs"
        mirror = debian_mirror()
        progress(f"debootstrap {BASE_SUITE}{including} from {mirror} (about a minute)")
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", BASE_SUITE, str(rootfs), mirror]
        run_streaming(command, progress, failure=failure)
        slim_rootfs(rootfs)
        import_rootfs(client, rootfs, ref, progress)


def run_streaming(command: list[str], progress: Progress, failure: str) -> None:
    """Run command, each line of its output to progress; a failure names its exit status and last line."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last_line = ""
    assert process.stdout is not None
    for line in process.stdout:
        progress(line.rstrip())
        last_line = line.strip() or last_line
    if process.wait() != 0:
        raise EnvctlError(f"{failure} (exit {process.returncode}): {last_line}")


def slim_rootfs(rootfs: Path) -> None:
    """Drop package caches and lists: an image does not need them (the Dockerfile runs apt-get update)."""
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (rootfs / cache).glob("*"):
            if entry.is_file() and entry.name != "lock":
                entry.unlink()


def import_rootfs(client: docker.DockerClient, rootfs: Path, ref: str, progress: Progress) -> None:
    """`docker import` of the rootfs folder as ref; an image of a truncated tar is not kept."""
    import docker

    repository, tag = ref.rsplit(":", 1)
    progress(f"importing the rootfs as {ref}")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    assert tar.stdout is not None
    try:
        answer = client.api.import_image_from_stream(
            tar.stdout, repository=repository, tag=tag, changes=list(BASE_IMPORT_CHANGES)
        )
    except docker.errors.APIError as exc:
        raise EnvctlError(f"docker import of {ref} failed: {exc.explanation or exc}") from exc
    finally:
        tar.stdout.close()
    if tar.wait() != 0:
        if image_exists(client, ref):
            client.images.remove(ref, force=True)  # an image of a truncated tar must not be cached
        raise EnvctlError(f"tar of the rootfs failed (exit {tar.returncode}); {ref} was not kept")
    events = [json.loads(line) for line in answer.splitlines() if line.strip()]
    follow(lambda: events, progress, failure=f"docker import of {ref} failed")
