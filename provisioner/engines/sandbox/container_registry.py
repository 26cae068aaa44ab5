"""The sandbox's container registry: distribution 2.8 on 127.0.0.1.

Debian's `docker-registry` binary where it is installed; elsewhere (a laptop with Docker
Desktop) the public `registry:2` image, the same program, as a container of the local engine
with its port published on 127.0.0.1 and the same shared storage mounted.

It stands in for Docker Hub and the team's ECR repository: sandbox hosts pull the images their
userdata names through it (their dockerd lists it as a registry mirror). envctl starts it as its
own process and records it in `<state_dir>/sandbox/registry.json`. Its storage is shared by
every sandbox of this machine that takes its images from the same registry
(`$XDG_CACHE_HOME/envctl/registry` for Docker Hub, `registry-<name>` for another `image_registry`): like
Docker Hub, it holds the same images for all of them, and a fresh state dir need not push 1.5 GB again.
It listens on 127.0.0.1 only (dockerd may push there without TLS);
the host gateway forwards a docker-bridge port to it for the hosts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.engines.base import Progress, no_progress
from provisioner.engines.sandbox.processes import ProcessRecord, free_port, pid_alive, terminate, wait_until_ready
from provisioner.errors import MissingTool

START_TIMEOUT_S = 15.0


REGISTRY_IMAGE = "registry:2"
CONTAINER_STORAGE = "/var/lib/registry"


@dataclass
class RegistryInfo:
    pid: int  # 0 when the registry runs as a container
    port: int
    container: str = ""

    @property
    def address(self) -> str:
        """host:port as docker names a registry."""
        return f"127.0.0.1:{self.port}"


def shared_storage(image_registry: str = "docker.io") -> Path:
    """One storage per image registry setting: the names hosts pull (`apache/airflow:<version>`) are not
    content-tagged, so sandboxes whose images come from different registries must not share them (one's
    push would replace what another's host pulls)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    if image_registry == "docker.io":
        return cache / "envctl" / "registry"
    return cache / "envctl" / ("registry-" + "".join(c if c.isalnum() or c in ".-" else "-" for c in image_registry))


def _answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class RegistryServer:
    def __init__(self, sandbox_dir: Path, image_registry: str = "docker.io"):
        self.dir = sandbox_dir
        self.image_registry = image_registry  # where registry:2 comes from when there is no binary
        self.record = ProcessRecord(sandbox_dir / "registry.json", RegistryInfo)
        self.storage = shared_storage(image_registry)
        self.config_path = sandbox_dir / "registry.yml"
        self.log_path = sandbox_dir / "registry.log"

    def running(self) -> RegistryInfo | None:
        return self.record.running(lambda info: _alive(info) and _answers(info.address))

    def ensure_started(self, progress: Progress = no_progress) -> RegistryInfo:
        return self.running() or self.start(progress)

    def start(self, progress: Progress = no_progress) -> RegistryInfo:
        binary = shutil.which("docker-registry")
        self.storage.mkdir(parents=True, exist_ok=True)
        port = free_port("127.0.0.1")
        if binary is None:
            return self._start_container(port, progress)
        self.config_path.write_text(self._config(port))
        progress(f"starting the sandbox registry on 127.0.0.1:{port}")
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen([binary, "serve", str(self.config_path)], stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=log, start_new_session=True, close_fds=True)
        info = RegistryInfo(pid=process.pid, port=port)
        wait_until_ready(process, lambda: _answers(info.address), log_path=self.log_path,
                         failure=f"the sandbox registry did not start on {info.address}", timeout_s=START_TIMEOUT_S)
        self.record.write(info)
        return info

    def _start_container(self, port: int, progress: Progress) -> RegistryInfo:
        from provisioner.image_source import public_ref

        image = public_ref(self.image_registry, REGISTRY_IMAGE)
        progress(f"starting the sandbox registry ({image}, no docker-registry binary here) on 127.0.0.1:{port}")
        client = _docker()
        try:
            client.images.get(image)
        except _docker_errors().ImageNotFound:
            try:
                client.images.pull(image)
            except _docker_errors().APIError as exc:
                raise MissingTool(
                    f"the sandbox registry needs Debian's docker-registry or the image {image}, and {image} "
                    f"could not be pulled ({exc.explanation or exc})",
                    hint="apt-get install docker-registry, or make the image registry reachable (ENVCTL_IMAGE_REGISTRY)",
                ) from None
        name = f"envctl-registry-{port}"
        container = client.containers.run(
            image, name=name, detach=True, remove=False, ports={"5000/tcp": ("127.0.0.1", port)},
            volumes={str(self.storage.resolve()): {"bind": CONTAINER_STORAGE, "mode": "rw"}},
            environment={"REGISTRY_LOG_LEVEL": "warn"}, labels={"envctl.sandbox-registry": str(self.dir)},
        )
        info = RegistryInfo(pid=0, port=port, container=container.name)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(info.address):
            container.reload()
            if container.status not in ("created", "running") or time.monotonic() > deadline:
                logs = container.logs(tail=20).decode(errors="replace")
                container.remove(force=True)
                raise MissingTool(f"the sandbox registry container did not start on {info.address}: {logs.strip()[-500:]}")
            time.sleep(0.2)
        self.record.write(info)
        return info

    def _config(self, port: int) -> str:
        return json.dumps({  # YAML is a superset of JSON
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(self.storage.resolve())}},
            "http": {"addr": f"127.0.0.1:{port}"},
        }, indent=1)

    def stop(self) -> RegistryInfo | None:
        return self.record.stop(lambda info: _remove_container(info.container) if info.container else terminate(info.pid))


def _alive(info: RegistryInfo) -> bool:
    return _container_running(info.container) if info.container else pid_alive(info.pid)


def _docker() -> Any:
    import docker

    return docker.from_env()


def _docker_errors() -> Any:
    import docker.errors

    return docker.errors


def _container_running(name: str) -> bool:
    try:
        return _docker().containers.get(name).status == "running"
    except _docker_errors().DockerException:  # no engine, or no such container: not running
        return False


def _remove_container(name: str) -> None:
    try:
        _docker().containers.get(name).remove(force=True)
    except _docker_errors().NotFound:
        pass  # already gone
