"""Sandbox hosts: each Airflow host the sandbox creates also boots as a local container that runs
the exact rendered userdata.

A host is a container of the host image (images.py) with systemd as PID 1, started with the flags
that work on these machines (`--privileged` does not): all capabilities but SYS_RESOURCE, no
seccomp, unmasked system paths, any device, the machine's cgroups, /run on tmpfs, and a volume
for /var/lib/docker (overlay2 needs one). Before it boots, envctl writes into it what differs
from EC2, never the userdata:

- the user data, which a one-shot unit runs once as root like cloud-init (output in
  /var/log/cloud-init-output.log, the exit status in /var/lib/cloud/instance/result.json);
- systemd's DefaultEnvironment: AWS_ENDPOINT_URL (the sandbox's moto server) and
  AWS_EC2_METADATA_SERVICE_ENDPOINT (the emulated IMDS), both through the host gateway;
- /etc/docker/daemon.json: the sandbox registry as a registry mirror (so `postgres:16` and
  `apache/airflow:<version>` resolve locally) and the systemd cgroup driver.

The Airflow web port is published on 127.0.0.1. Each host is recorded in
`<state_dir>/sandbox/hosts/<instance id>.json` (host_records.py; the IMDS reads it to know who
asks). What is done to hosts that exist (describe, run, volumes, remove) is host_inventory.py's;
this module launches them: images, registry and gateway first (`prepare`), then `start`.
The Docker SDK is imported lazily.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from provisioner.engines.base import Progress, no_progress
from provisioner.engines.sandbox.gateway import GatewayInfo, HostGateway
from provisioner.engines.sandbox.host_inventory import HostInventory, container_name, docker_volume_name
from provisioner.engines.sandbox.host_records import HostRecord, save_host_record
from provisioner.engines.sandbox.images import ensure_host_images, push_to_registry
from provisioner.engines.sandbox.container_registry import RegistryServer
from provisioner.errors import EnvctlError
from provisioner.userdata import WEB_PORT

if TYPE_CHECKING:
    import docker

HOST_LABEL = "envctl.sandbox-host"
# What boots systemd as PID 1 here; --privileged fails ("unable to apply caps").
CONTAINER_SECURITY = {
    "cap_add": ["ALL"], "cap_drop": ["SYS_RESOURCE"], "security_opt": ["seccomp=unconfined"],
    "device_cgroup_rules": ["a *:* rwm"], "cgroupns": "host",
}
# `--security-opt systempaths=unconfined` is a CLI shorthand the API spells as empty path lists.
UNMASKED_SYSTEM_PATHS = {"MaskedPaths": [], "ReadonlyPaths": []}


@dataclass
class HostLaunch:
    """What the instance handler knows of an instance when it asks for its host."""

    instance_id: str
    team: str
    region: str
    user_data: bytes
    instance_profile: str = ""
    availability_zone: str = ""
    private_ip: str = ""
    instance_type: str = ""
    ami: str = ""


def docker_bridge_address(client: docker.DockerClient) -> str:
    """The address of the default bridge on this machine (the containers' way to it)."""
    import ipaddress

    for entry in client.networks.get("bridge").attrs["IPAM"]["Config"] or []:
        if entry.get("Gateway"):
            return entry["Gateway"]
        if entry.get("Subnet") and ":" not in entry["Subnet"]:
            # Without a configured gateway dockerd gives the bridge the subnet's first address.
            return str(next(ipaddress.ip_network(entry["Subnet"]).hosts()))
    raise EnvctlError("the docker bridge network has no IPv4 address; sandbox hosts cannot reach the sandbox")


class SandboxHosts(HostInventory):
    """Starts the sandbox's container hosts (one per Airflow instance), and does to them all that
    HostInventory does to hosts that exist."""

    def __init__(self, sandbox_dir: Path, *, moto_port: int, account_id: str, airflow_versions: set[str],
                 boot_new_hosts: bool = True, progress: Progress = no_progress, image_registry: str = "docker.io"):
        super().__init__(sandbox_dir, progress=progress)
        self.moto_port = moto_port
        self.account_id = account_id
        self.airflow_versions = airflow_versions
        self.boot_new_hosts = boot_new_hosts  # False: only remove existing hosts (an apply with hosts off)
        self.image_registry = image_registry  # where the public base images come from (images.py)
        self.started: list[str] = []  # instance ids started by this object, to wait for
        self._host_image = ""
        self._gateway: GatewayInfo | None = None

    def prepare(self) -> None:
        """Images built and pushed, the registry and the gateway running (idempotent, fast when warm)."""
        if self._gateway is not None:
            return
        images = ensure_host_images(self.airflow_versions, self.progress, registry=self.image_registry)
        self._host_image = images.host
        registry = RegistryServer(self.sandbox_dir, self.image_registry).ensure_started(self.progress)
        for image in images.pulled:
            push_to_registry(image, registry.address, self.progress)
        self._gateway = HostGateway(self.sandbox_dir).ensure_started(
            docker_bridge_address(self.client), self.moto_port, registry.port, self.progress)

    def start(self, launch: HostLaunch) -> HostRecord | None:
        """Create and boot the host of launch.instance_id; returns at once (the userdata runs on)."""
        if not self.boot_new_hosts:
            return None
        self.prepare()
        name = container_name(launch.instance_id)
        self._remove_container(name)
        self.progress(f"booting sandbox host {name}")
        host_config = self.client.api.create_host_config(
            binds=["/sys/fs/cgroup:/sys/fs/cgroup:rw", f"{docker_volume_name(launch.instance_id)}:/var/lib/docker:rw"],
            tmpfs={"/run": "", "/run/lock": ""}, port_bindings={WEB_PORT: ("127.0.0.1", None)}, **CONTAINER_SECURITY,
        )
        created = self.client.api.create_container(
            self._host_image, name=name, hostname=launch.instance_id, ports=[WEB_PORT],
            host_config={**host_config, **UNMASKED_SYSTEM_PATHS},
            labels={HOST_LABEL: "1", "envctl.instance-id": launch.instance_id, "envctl.team": launch.team,
                    "envctl.sandbox-dir": str(self.sandbox_dir.resolve())},
        )
        container = self.client.containers.get(created["Id"])
        container.put_archive("/", self._boot_files(launch))
        container.start()
        container.reload()
        record = HostRecord(
            instance_id=launch.instance_id, team=launch.team, region=launch.region, account_id=self.account_id,
            container=name, user_data_b64=base64.b64encode(launch.user_data).decode(),
            instance_profile=launch.instance_profile, availability_zone=launch.availability_zone,
            private_ip=launch.private_ip, instance_type=launch.instance_type, ami=launch.ami,
            container_ip=container.attrs["NetworkSettings"]["IPAddress"],
            web_port=int(container.ports[f"{WEB_PORT}/tcp"][0]["HostPort"]), started_at=time.time(),
        )
        save_host_record(self.records, record)
        self.started.append(launch.instance_id)
        return record

    def _boot_files(self, launch: HostLaunch) -> bytes:
        gateway = self._gateway
        environment = {"AWS_ENDPOINT_URL": gateway.aws_endpoint, "AWS_EC2_METADATA_SERVICE_ENDPOINT": gateway.imds_endpoint}
        mirror_host = gateway.registry_mirror.removeprefix("http://")
        daemon = {"registry-mirrors": [gateway.registry_mirror], "insecure-registries": [mirror_host],
                  "exec-opts": ["native.cgroupdriver=systemd"]}
        manager = "[Manager]\nDefaultEnvironment=" + " ".join(f'"{k}={v}"' for k, v in environment.items()) + "\n"
        return _tar({
            "var/lib/cloud/instance/user-data.txt": (launch.user_data, 0o600),
            "etc/systemd/system.conf.d/envctl-sandbox.conf": (manager.encode(), 0o644),
            "etc/envctl-sandbox.env": ("".join(f"{k}={v}\n" for k, v in environment.items()).encode(), 0o644),
            "etc/docker/daemon.json": (json.dumps(daemon, indent=1).encode(), 0o644),
        })


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directories = sorted({str(Path(p).parents[i]) for p in files for i in range(len(Path(p).parents) - 1)})
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for path, (content, mode) in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(content), mode
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()
