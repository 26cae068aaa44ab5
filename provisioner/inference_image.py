"""Builds envctl's default inference image (templates/inference) and pushes it to a team's ECR.

By default the image is built FROM PYTHON_IMAGE as the image registry (Docker Hub, or the
`image_registry` setting) serves it; when no registry answers, FROM a local Debian bookworm base
made with debootstrap + `docker import` (local_images.py, see image_source.py); `--base-image`
picks any other base. Images are tagged by content (`default-<hash of templates/inference>`)
because the teams' ECR tags are immutable; the `envctl.image-source` label says which base an
image was built FROM. The Docker engine is reached through local_images.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner import image_source
from provisioner.errors import EnvctlError, InvalidInput
from provisioner.image_source import ImageSource
from provisioner.local_images import (
    Progress,
    base_image_tag,
    build,
    connect_docker,
    copy_host_certificates,
    ensure_base_image,
    ensure_pulled,
    follow,
    image_exists,
)

if TYPE_CHECKING:
    import docker

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "inference"

PYTHON_IMAGE = "python:3.11-slim"  # the public base; Debian bookworm's Python is 3.11 too
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


def local_image_ref(team: str) -> str:
    if not TEAM_NAME.fullmatch(team):
        raise InvalidInput(f"team name {team!r} cannot name an image: use lowercase letters, digits and '-'")
    return f"envctl-{team}-inference:{default_image_tag()}"


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
        build(client, context, ref, {"BASE_IMAGE": base}, labels, progress)
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
    copy_host_certificates(context)


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
    follow(
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
    follow(lambda: client.api.push(target, tag=tag, stream=True, decode=True), progress,
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
        message = error.response.get("Error", {}).get("Message", error)
        raise EnvctlError(f"recording {repository}:{tag} in ECR failed: {message}") from None
