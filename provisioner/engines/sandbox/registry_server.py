"""The sandbox's container registry: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1.

It stands in for Docker Hub and the team's ECR repository: sandbox hosts pull the images their
userdata names through it (their dockerd lists it as a registry mirror). envctl starts it as its
own process and records it in `<state_dir>/sandbox/registry.json`. Its storage is shared by
every sandbox of this machine (`$XDG_CACHE_HOME/envctl/registry`): like Docker Hub, it holds the
same content-tagged images for all of them, and a fresh state dir need not push 1.5 GB again.
It listens on 127.0.0.1 only (dockerd may push there without TLS);
the host gateway forwards a docker-bridge port to it for the hosts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from provisioner.engines.base import Progress, no_progress
from provisioner.engines.sandbox.processes import free_port, pid_alive, terminate, wait_until_ready
from provisioner.errors import MissingTool

START_TIMEOUT_S = 15.0


@dataclass
class RegistryInfo:
    pid: int
    port: int

    @property
    def address(self) -> str:
        """host:port as docker names a registry."""
        return f"127.0.0.1:{self.port}"


def shared_storage() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "envctl" / "registry"


def _answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class RegistryServer:
    def __init__(self, sandbox_dir: Path):
        self.dir = sandbox_dir
        self.info_path = sandbox_dir / "registry.json"
        self.storage = shared_storage()
        self.config_path = sandbox_dir / "registry.yml"
        self.log_path = sandbox_dir / "registry.log"

    def running(self) -> RegistryInfo | None:
        try:
            info = RegistryInfo(**json.loads(self.info_path.read_text()))
        except (OSError, json.JSONDecodeError, TypeError):
            return None
        return info if pid_alive(info.pid) and _answers(info.address) else None

    def ensure_started(self, progress: Progress = no_progress) -> RegistryInfo:
        return self.running() or self.start(progress)

    def start(self, progress: Progress = no_progress) -> RegistryInfo:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise MissingTool("sandbox hosts need Debian's docker-registry: apt-get install docker-registry")
        self.storage.mkdir(parents=True, exist_ok=True)
        port = free_port("127.0.0.1")
        self.config_path.write_text(self._config(port))
        progress(f"starting the sandbox registry on 127.0.0.1:{port}")
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen([binary, "serve", str(self.config_path)], stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=log, start_new_session=True, close_fds=True)
        info = RegistryInfo(pid=process.pid, port=port)
        wait_until_ready(process, lambda: _answers(info.address), log_path=self.log_path,
                         failure=f"the sandbox registry did not start on {info.address}", timeout_s=START_TIMEOUT_S)
        self.info_path.write_text(json.dumps(asdict(info)))
        return info

    def _config(self, port: int) -> str:
        return json.dumps({  # YAML is a superset of JSON
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(self.storage.resolve())}},
            "http": {"addr": f"127.0.0.1:{port}"},
        }, indent=1)

    def stop(self) -> RegistryInfo | None:
        try:
            info = RegistryInfo(**json.loads(self.info_path.read_text()))
        except (OSError, json.JSONDecodeError, TypeError):
            return None
        terminate(info.pid)
        self.info_path.unlink(missing_ok=True)
        return info
