"""Builds envctl's default inference image (templates/inference) and pushes it to a team's ECR.

The Docker SDK (`docker`, in the `sandbox` extra) is imported inside the functions that need it.
By default the image is built FROM PYTHON_IMAGE as the image registry (Docker Hub, or the
`image_registry` setting) serves it; when no registry answers, FROM a local Debian bookworm base
made with debootstrap + `docker import` (see image_source.py); `--base-image` picks any other base.
Images are tagged by content (`default-<hash of templates/inference>`) because the teams' ECR tags
are immutable; the `envctl.image-source` label says which base an image was built FROM.

The Docker SDK reports build and push failures inside its JSON stream, not as exceptions: every
stream here goes through `_follow`, which raises on the first error event.
"""

from __future__ import annotations

import base64
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
from provisioner.errors import EnvctlError, InvalidInput, MissingTool
from provisioner.image_source import ImageSource

if TYPE_CHECKING:
    import docker

Progress = Callable[[str], None]

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "inference"

PYTHON_IMAGE = "python:3.11-slim"  # the public base; Debian bookworm's Python is 3.11 too
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
TEAM_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


# ---- naming -------------------------------------------------------------------------------


def template_files() -> list[Path]:
    """The files that make up the image, sorted; caches and bytecode are not part of it."""
    return sorted(
        path
        for path in TEMPLATE_DIR.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


def default_image_tag() -> str:
    digest = hashlib.sha256()
    for path in template_files():
        digest.update(path.relative_to(TEMPLATE_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return f"default-{digest.hexdigest()[:12]}"


def base_image_tag() -> str:
    recipe_hash = hashlib.sha256(BASE_RECIPE.encode()).hexdigest()[:12]
    return f"{BASE_REPOSITORY}:{BASE_SUITE}-{recipe_hash}"


def local_image_ref(team: str) -> str:
    if not TEAM_NAME.fullmatch(team):
        raise InvalidInput(f"team name {team!r} cannot name an image: use lowercase letters, digits and '-'")
    return f"envctl-{team}-inference:{default_image_tag()}"


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


def _follow(start: Callable[[], Iterable[dict[str, Any]]], progress: Progress, failure: str) -> None:
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


# ---- base image ---------------------------------------------------------------------------


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
    with tempfile.TemporaryDirectory(prefix="envctl-rootfs-") as workdir:
        rootfs = Path(workdir) / "rootfs"
        _debootstrap(rootfs, debian_mirror(), progress)
        _slim_rootfs(rootfs)
        _import_rootfs(client, rootfs, ref, progress)
    return ref


def _debootstrap(rootfs: Path, mirror: str, progress: Progress) -> None:
    progress(f"debootstrap {BASE_SUITE} from {mirror} (about a minute)")
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        BASE_SUITE,
        str(rootfs),
        mirror,
    ]
    _run_streaming(command, progress, failure="debootstrap failed")


def _run_streaming(command: list[str], progress: Progress, failure: str) -> None:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last_line = ""
    assert process.stdout is not None
    for line in process.stdout:
        progress(line.rstrip())
        last_line = line.strip() or last_line
    if process.wait() != 0:
        raise EnvctlError(f"{failure} (exit {process.returncode}): {last_line}")


def _slim_rootfs(rootfs: Path) -> None:
    """Drop package caches and lists: an image does not need them (the Dockerfile runs apt-get update)."""
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (rootfs / cache).glob("*"):
            if entry.is_file() and entry.name != "lock":
                entry.unlink()


def ensure_pulled(client: docker.DockerClient, ref: str, progress: Progress) -> str:
    """ref, pulled by the Docker engine (through its mirrors) unless it is here already."""
    if image_exists(client, ref):
        return ref
    repository, tag = ref.rsplit(":", 1)
    progress(f"pulling {ref}")
    _follow(lambda: client.api.pull(repository, tag=tag, stream=True, decode=True), progress,
            failure=f"pulling {ref} failed")
    return ref


def _import_rootfs(client: docker.DockerClient, rootfs: Path, ref: str, progress: Progress) -> None:
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
    _follow(lambda: events, progress, failure=f"docker import of {ref} failed")


# ---- inference image ----------------------------------------------------------------------


def build_image(team: str, *, base_image: str | None = None, registry: str = image_source.DOCKER_HUB,
                progress: Progress) -> str:
    """Build templates/inference for team; returns the local reference envctl-<team>-inference:<tag>."""
    ref = local_image_ref(team)
    client = connect_docker()
    if base_image:
        base, labels = base_image, {image_source.SOURCE_LABEL: "base-image option", image_source.BASE_LABEL: base_image}
    else:
        source = image_source.resolve(client, registry, _inference_bases, exists=lambda r: image_exists(client, r),
                                      progress=progress)
        if source.registry:
            base = ensure_pulled(client, source.public_ref(PYTHON_IMAGE), progress)
        else:
            base = ensure_base_image(client, source, progress, alternative="; or pass --base-image <image with python3>")
        labels = source.labels(base)
    with tempfile.TemporaryDirectory(prefix="envctl-inference-") as context:
        _stage_build_context(Path(context))
        progress(f"building {ref} FROM {base}")
        _follow(
            lambda: client.api.build(
                path=context, tag=ref, buildargs=_build_args(base), labels=labels, rm=True, forcerm=True, decode=True
            ),
            progress,
            failure=f"building {ref} failed",
        )
    return ref


def _inference_bases(source: ImageSource) -> list[str]:
    """The base image of source, which, when present, needs no registry (see image_source.resolve)."""
    return [source.public_ref(PYTHON_IMAGE)] if source.registry else [base_image_tag()]


def _stage_build_context(context: Path) -> None:
    """templates/inference plus this machine's extra CA certificates (the Dockerfile installs them)."""
    for path in template_files():
        target = context / path.relative_to(TEMPLATE_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    for certificate in sorted(HOST_CA_DIR.glob("*.crt")):
        shutil.copy2(certificate, context / certificate.name)


def _build_args(base_image: str) -> dict[str, str]:
    build_args = {"BASE_IMAGE": base_image}
    index_url = host_pip_index_url()
    if index_url:
        build_args["PIP_INDEX_URL"] = index_url
    return build_args


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


# ---- push ---------------------------------------------------------------------------------


def push_image(local_ref: str, repository_url: str, *, ecr_client: Any, progress: Progress) -> str:
    """Push local_ref to repository_url (the team's ECR repository) under the same tag."""
    tag = image_tag(local_ref)
    remote_ref = f"{repository_url}:{tag}"
    client = connect_docker()
    auth_config = ecr_auth_config(ecr_client, registry_host(repository_url))
    _login(client, auth_config)
    _tag_for_push(client, local_ref, repository_url, tag)
    progress(f"pushing {remote_ref}")
    _follow(
        lambda: client.api.push(repository_url, tag=tag, auth_config=auth_config, stream=True, decode=True),
        progress,
        failure=f"push of {remote_ref} failed",
    )
    return remote_ref


def image_tag(ref: str) -> str:
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        raise InvalidInput(f"image reference {ref!r} has no tag")
    return tag


def registry_host(repository_url: str) -> str:
    """`123.dkr.ecr.eu-west-1.amazonaws.com/envctl-fraud` -> `123.dkr.ecr.eu-west-1.amazonaws.com`."""
    return repository_url.split("/", 1)[0]


def ecr_auth_config(ecr_client: Any, registry: str) -> dict[str, str]:
    """Docker credentials for registry from ECR's token (base64 of `AWS:<password>`)."""
    try:
        data = ecr_client.get_authorization_token()["authorizationData"][0]
        username, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    except Exception as exc:  # botocore's errors (credentials, access), or a malformed token
        raise EnvctlError(f"could not get an ECR login token: {exc}") from exc
    return {"username": username, "password": password, "serveraddress": registry}


def _login(client: docker.DockerClient, auth_config: dict[str, str]) -> None:
    import docker

    registry = auth_config["serveraddress"]
    try:
        client.login(username=auth_config["username"], password=auth_config["password"], registry=registry, reauth=True)
    except docker.errors.APIError as exc:
        raise EnvctlError(f"docker login to {registry} failed: {exc.explanation or exc}") from exc


def _tag_for_push(client: docker.DockerClient, local_ref: str, repository_url: str, tag: str) -> None:
    import docker

    try:
        client.api.tag(local_ref, repository_url, tag)
    except docker.errors.ImageNotFound:
        raise EnvctlError(f"no local image {local_ref}; build it first (envctl inference build <team>)") from None
    except docker.errors.APIError as exc:
        raise EnvctlError(f"tagging {local_ref} as {repository_url}:{tag} failed: {exc.explanation or exc}") from exc


# ---- push into the sandbox ------------------------------------------------------------------

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def push_to_sandbox(local_ref: str, repository_url: str, *, registry: str, ecr_client: Any, progress: Progress) -> str:
    """The sandbox's push: layers to the sandbox's registry, the image recorded in moto's ECR.

    moto's ECR keeps repositories and image manifests but has no registry behind it, so the image
    goes to the sandbox's local registry (`registry`, 127.0.0.1:<port>) under the repository's
    name, and the manifest that registry answers is put into moto's ECR (PutImage) under the same
    tag: DescribeImages then lists it, as ECR does after a `docker push`, for the engine's check of
    the default image and for the sandbox's rule on CreateModel. Returns `<repository_url>:<tag>`.
    """
    tag = image_tag(local_ref)
    repository = repository_url.split("/", 1)[1]
    target = f"{registry}/{repository}"
    client = connect_docker()
    _tag_for_push(client, local_ref, target, tag)
    progress(f"pushing {target}:{tag} (the sandbox's registry)")
    _follow(lambda: client.api.push(target, tag=tag, stream=True, decode=True), progress,
            failure=f"push of {target}:{tag} failed")
    record_in_ecr(ecr_client, repository, tag, registry_manifest(registry, repository, tag))
    return f"{repository_url}:{tag}"


def registry_manifest(registry: str, repository: str, tag: str) -> str:
    """The image manifest (schema 2) a registry holds for repository:tag."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"http://{registry}/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_V2})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        raise EnvctlError(f"the sandbox registry {registry} has no manifest for {repository}:{tag}: {exc}") from None


def record_in_ecr(ecr_client: Any, repository: str, tag: str, manifest: str) -> None:
    """PutImage of a pushed manifest under tag; the same image recorded again is no change."""
    from botocore.exceptions import ClientError

    try:
        ecr_client.put_image(repositoryName=repository, imageManifest=manifest, imageManifestMediaType=MANIFEST_V2,
                             imageTag=tag)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ImageAlreadyExistsException":
            return
        raise EnvctlError(f"recording {repository}:{tag} in ECR failed: {error.response.get('Error', {}).get('Message', error)}") from None
