"""Run a SageMaker-contract container from an image URI of the sandbox, on the local Docker engine.

The sandbox's ECR (moto) records images but holds no layers: `envctl inference push` puts them in
the sandbox's registry (container_registry.py) under the repository's name and records the manifest
in moto's ECR. An ECR URI `<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>` therefore
resolves to `127.0.0.1:<port>/<repo>:<tag>` in that registry, which the local engine pulls
(dockerd allows plain HTTP to 127.0.0.0/8). Images of other registries or accounts do not run.

Used in the moto server process: endpoint_containers.py serves with it (`serve`); a training
job's runner can start `train` the same way. It knows nothing of endpoints or jobs: an image,
a command, files to put into the container before it starts, labels, a published port.
The Docker SDK is imported lazily.
"""

from __future__ import annotations

import io
import re
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import docker

ECR_IMAGE = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/([^:@]+)(?::([^@]+))?(?:@(sha256:[0-9a-f]{64}))?$")
MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
))
LOG_TAIL_LINES = 15


class ImageUnavailable(Exception):
    """The image cannot run here; the message says why and what to do."""


@dataclass(frozen=True)
class EcrImage:
    account: str
    region: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        """`:tag` or `@digest` as docker appends it to a repository."""
        return f"@{self.digest}" if self.digest else f":{self.tag or 'latest'}"


def parse_ecr_image(uri: str) -> EcrImage | None:
    """The parts of an ECR image URI, or None for an image of another registry."""
    match = ECR_IMAGE.match(uri or "")
    if not match:
        return None
    account, region, repository, tag, digest = match.groups()
    return EcrImage(account, region, repository, tag, digest)


def registry_holds(registry_address: str, repository: str, reference: str) -> bool:
    """Whether the sandbox registry has a manifest for repository:reference (a tag or a digest)."""
    request = urllib.request.Request(f"http://{registry_address}/v2/{repository}/manifests/{reference}",
                                     method="HEAD", headers={"Accept": MANIFEST_TYPES})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def local_image(uri: str, registry_address: str | None, account: str) -> str:
    """What the local engine pulls for a model's or a job's image URI in the sandbox account's ECR
    (ImageUnavailable when it cannot: not pushed, or an image of another registry or account,
    whose content the sandbox does not have and AWS may or may not pull)."""
    ecr = parse_ecr_image(uri)
    if ecr is None or ecr.account != account:
        raise ImageUnavailable(f"the image {uri} is not in the sandbox account's ECR, and the sandbox runs only images "
                               "pushed there (`envctl inference push <team>`, or `docker push` to the sandbox's registry)")
    if registry_address is None:
        raise ImageUnavailable(f"the image {uri} is in the sandbox's ECR, whose layers live in the sandbox's registry, "
                               "and that registry is not running: push the image with `envctl inference push <team>`")
    if not registry_holds(registry_address, ecr.repository, ecr.reference.lstrip(":@")):
        raise ImageUnavailable(f"the image {uri} is recorded in the sandbox's ECR but its layers are not in the sandbox's "
                               f"registry ({registry_address}): push it with `envctl inference push <team>` "
                               "(or `docker push` to that registry)")
    return f"{registry_address}/{ecr.repository}{ecr.reference}"


def docker_client() -> docker.DockerClient:
    """The local engine, or ImageUnavailable saying that the sandbox needs one to run containers."""
    from provisioner.errors import MissingTool
    from provisioner.local_images import connect_docker

    try:
        return connect_docker()
    except MissingTool as exc:
        raise ImageUnavailable(f"the sandbox needs a Docker engine to run SageMaker containers: {exc.message}") from None


@dataclass
class ContainerRequest:
    image: str  # as the local engine names it (local_image)
    command: list[str]
    name: str
    labels: dict[str, str]
    environment: dict[str, str] = field(default_factory=dict)
    files: bytes = b""  # a tar put at / before the container starts (model data, input channels ...)
    port: int | None = None  # a container port published on a random 127.0.0.1 port


@dataclass(frozen=True)
class StartedContainer:
    name: str
    host_port: int | None


def run_container(client: docker.DockerClient, wanted: ContainerRequest) -> StartedContainer:
    """Pull (when missing), create, copy the files in, start; ImageUnavailable when the engine refuses."""
    import docker

    try:
        _pull(client, wanted.image)
        remove_container(client, wanted.name)
        ports = {f"{wanted.port}/tcp": ("127.0.0.1", None)} if wanted.port else {}
        container = client.containers.create(wanted.image, wanted.command, name=wanted.name, labels=wanted.labels,
                                             environment=wanted.environment, ports=ports, detach=True)
        if wanted.files:
            container.put_archive("/", wanted.files)
        container.start()
        container.reload()
    except docker.errors.DockerException as exc:
        remove_container(client, wanted.name)
        raise ImageUnavailable(f"docker could not start {wanted.image}: {getattr(exc, 'explanation', None) or exc}") from None
    host_port = int(container.ports[f"{wanted.port}/tcp"][0]["HostPort"]) if wanted.port else None
    return StartedContainer(name=container.name, host_port=host_port)


def _pull(client: docker.DockerClient, image: str) -> None:
    from provisioner.errors import EnvctlError
    from provisioner.local_images import ensure_pulled

    reference = image if ("@" in image or ":" in image.rsplit("/", 1)[-1]) else f"{image}:latest"
    try:
        ensure_pulled(client, reference, lambda _: None)
    except EnvctlError as exc:
        raise ImageUnavailable(exc.message) from None


def container_state(client: docker.DockerClient, name: str) -> dict[str, Any] | None:
    """docker inspect's State of the container, or None when it is gone."""
    import docker

    try:
        return client.api.inspect_container(name)["State"]
    except docker.errors.NotFound:
        return None


def logs_tail(client: docker.DockerClient, name: str, lines: int = LOG_TAIL_LINES) -> str:
    import docker

    try:
        return client.containers.get(name).logs(tail=lines).decode(errors="replace").strip()
    except docker.errors.DockerException:
        return ""


def remove_container(client: docker.DockerClient, name: str) -> None:
    """Stop and remove at once (SIGKILL: nothing of a sandbox container is kept); gone already is fine."""
    import docker

    try:
        client.containers.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass


def remove_labelled(client: docker.DockerClient, label: str, value: str) -> list[str]:
    """Remove every container (running or not) whose label has value; their names."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": f"{label}={value}"}):
        remove_container(client, container.name)
        removed.append(container.name)
    return removed


def archive_folder(folder: Path, at: str) -> bytes:
    """A tar of folder's content rooted at `at` (e.g. opt/ml/model), for ContainerRequest.files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        parts = Path(at.strip("/")).parts
        for depth in range(1, len(parts)):  # the parents, so that any image gets them
            info = tarfile.TarInfo("/".join(parts[:depth]))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        archive.add(folder, arcname="/".join(parts), recursive=True, filter=_readable_by_anyone)
    return buffer.getvalue()


def _readable_by_anyone(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Owned by root and readable by every user: an image may serve as a user of its own."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode |= 0o555 if info.isdir() else 0o444
    return info
