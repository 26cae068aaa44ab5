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

The data volume is a sparse file per EBS volume id, attached through a loop device when the
program attaches the volume (the userdata waits for /dev/sdf as on a Xen instance), so Postgres
data survives a replaced host as it does on AWS. The Airflow web port is published on 127.0.0.1.

Each host is recorded in `<state_dir>/sandbox/hosts/<instance id>.json` (the IMDS reads it to
know who asks). The Docker SDK is imported lazily.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import tarfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.engines.base import Progress, no_progress
from provisioner.errors import EnvctlError, MissingTool
from provisioner.userdata import WEB_PORT

if TYPE_CHECKING:
    import docker

HOST_LABEL = "envctl.sandbox-host"
RESULT_FILE = "/var/lib/cloud/instance/result.json"
OUTPUT_LOG = "/var/log/cloud-init-output.log"
BOOTSTRAP_TIMEOUT_S = 25 * 60  # the userdata's own health wait is 15 min
DEFAULT_VOLUME_GB = 20
LOOP_MAJOR = 7
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


@dataclass
class HostRecord:
    """A running sandbox host, as the IMDS and `envctl status` see it."""

    instance_id: str
    team: str
    region: str
    account_id: str
    container: str
    user_data_b64: str
    instance_profile: str = ""
    availability_zone: str = ""
    private_ip: str = ""
    instance_type: str = ""
    ami: str = ""
    container_ip: str = ""
    web_port: int = 0
    started_at: float = 0.0
    volumes: dict[str, list[str]] = field(default_factory=dict)  # volume id -> [loop device, device name]

    @property
    def user_data(self) -> bytes:
        return base64.b64decode(self.user_data_b64)

    @property
    def hostname(self) -> str:
        name = self.private_ip.replace(".", "-") if self.private_ip else self.instance_id
        return f"ip-{name}.{self.region}.compute.internal"

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}" if self.web_port else ""


def hosts_dir(sandbox_dir: Path) -> Path:
    return sandbox_dir / "hosts"


def load_host_record(directory: Path, instance_id: str) -> HostRecord | None:
    try:
        return HostRecord(**json.loads((directory / f"{instance_id}.json").read_text()))
    except (OSError, json.JSONDecodeError, TypeError):
        return None


def find_host_record(directory: Path, *, container_ip: str) -> HostRecord | None:
    for path in directory.glob("i-*.json"):
        record = load_host_record(directory, path.stem)
        if record is not None and record.container_ip == container_ip:
            return record
    return None


def _save_host_record(directory: Path, record: HostRecord) -> None:
    """Written whole (temporary file, then rename): the IMDS reads records while hosts change."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record.instance_id}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(record), indent=1))
    temporary.chmod(0o600)  # holds the user data
    temporary.replace(path)


def _docker_client() -> docker.DockerClient:
    from provisioner.local_images import connect_docker

    return connect_docker()


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


class SandboxHosts:
    """Starts, finds and removes the sandbox's container hosts (one per Airflow instance)."""

    def __init__(self, sandbox_dir: Path, *, moto_port: int, account_id: str, airflow_versions: set[str],
                 boot_new_hosts: bool = True, progress: Progress = no_progress, image_registry: str = "docker.io"):
        self.sandbox_dir = sandbox_dir
        self.records = hosts_dir(sandbox_dir)
        self.volumes_dir = sandbox_dir / "volumes"
        self.moto_port = moto_port
        self.account_id = account_id
        self.airflow_versions = airflow_versions
        self.boot_new_hosts = boot_new_hosts  # False: only remove and describe existing hosts (hosts are off)
        self.progress = progress
        self.image_registry = image_registry  # where the public base images come from (images.py)
        self.started: list[str] = []  # instance ids started by this object, to wait for
        self._client: docker.DockerClient | None = None
        self._host_image = ""
        self._gateway = None

    # ---- preparation (once, at the first host) ------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = _docker_client()
        return self._client

    def prepare(self) -> None:
        """Images built and pushed, the registry and the gateway running (idempotent, fast when warm)."""
        if self._gateway is not None:
            return
        from provisioner.engines.sandbox.gateway import HostGateway
        from provisioner.engines.sandbox.images import ensure_host_images, push_to_registry
        from provisioner.engines.sandbox.registry_server import RegistryServer

        images = ensure_host_images(self.airflow_versions, self.progress, registry=self.image_registry)
        self._host_image = images.host
        registry = RegistryServer(self.sandbox_dir, self.image_registry).ensure_started(self.progress)
        for image in images.pulled:
            push_to_registry(image, registry.address, self.progress)
        self._gateway = HostGateway(self.sandbox_dir).ensure_started(
            docker_bridge_address(self.client), self.moto_port, registry.port, self.progress)

    # ---- lifecycle ------------------------------------------------------------------------

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
        _save_host_record(self.records, record)
        self.started.append(launch.instance_id)
        return record

    def remove(self, instance_id: str) -> None:
        """Stop and remove the host of instance_id (terminate), its docker volume and loop devices."""
        record = load_host_record(self.records, instance_id)
        self._remove_container(container_name(instance_id))
        self._remove_docker_volume(docker_volume_name(instance_id))
        for loop_device, _ in (record.volumes.values() if record else ()):
            _detach_loop(loop_device)
        (self.records / f"{instance_id}.json").unlink(missing_ok=True)

    def _remove_container(self, name: str) -> None:
        import docker

        try:
            container = self.client.containers.get(name)
        except docker.errors.NotFound:
            return
        self.progress(f"removing sandbox host {name}")
        container.remove(force=True)

    def _remove_docker_volume(self, name: str) -> None:
        import docker

        try:
            self.client.volumes.get(name).remove(force=True)
        except docker.errors.NotFound:
            return

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

    # ---- data volumes ---------------------------------------------------------------------

    def attach_volume(self, instance_id: str, volume_id: str, device: str, size_gb: int = DEFAULT_VOLUME_GB) -> None:
        """Attach the volume's backing file to the host as `device` (and as its loop device, which
        blkid and mount scan), as EC2 attaches an EBS volume."""
        record = load_host_record(self.records, instance_id)
        if record is None:
            return  # no host for this instance (started without hosts)
        image = self.volumes_dir / f"{volume_id}.img"
        if not image.exists():
            self.volumes_dir.mkdir(parents=True, exist_ok=True)
            with open(image, "wb") as backing:
                backing.truncate(size_gb * 1024**3)  # sparse: costs only what is written
        loop_device = _attach_loop(image)
        minor = int(loop_device.removeprefix("/dev/loop"))
        container = self.client.containers.get(record.container)
        for node in (device, loop_device):
            script = f"[ -b {node} ] || mknod -m 0660 {node} b {LOOP_MAJOR} {minor}"
            exit_code, output = container.exec_run(["sh", "-c", script])
            if exit_code != 0:
                raise EnvctlError(f"could not attach {volume_id} to {record.container} as {node}: {output.decode().strip()}")
        record.volumes[volume_id] = [loop_device, device]
        _save_host_record(self.records, record)

    def detach_volume(self, instance_id: str, volume_id: str) -> None:
        """Stop what uses the volume and unmount it first (as `stopInstanceBeforeDetaching` would):
        a replaced host's successor attaches the same file, and two mounts would corrupt it."""
        import docker

        record = load_host_record(self.records, instance_id)
        if record is None or volume_id not in record.volumes:
            return
        loop_device, device = record.volumes.pop(volume_id)
        try:
            container = self.client.containers.get(record.container)
        except docker.errors.NotFound:
            container = None
        if container is not None and container.status == "running":
            mounts = f"awk '$1 == \"{loop_device}\" || $1 == \"{device}\" {{print $2}}' /proc/mounts"
            release = f"systemctl stop envctl-airflow.service; for target in $({mounts}); do umount \"$target\"; done"
            container.exec_run(["sh", "-c", release])
        _detach_loop(loop_device)
        _save_host_record(self.records, record)

    def delete_volume(self, volume_id: str) -> None:
        (self.volumes_dir / f"{volume_id}.img").unlink(missing_ok=True)

    # ---- bootstrap ------------------------------------------------------------------------

    def wait_for_bootstrap(self, instance_id: str, timeout_s: float = BOOTSTRAP_TIMEOUT_S) -> dict[str, Any]:
        """Wait until the host has run its user data; its exit status and the last lines of its output."""
        import docker

        record = load_host_record(self.records, instance_id)
        if record is None:
            raise EnvctlError(f"no sandbox host for {instance_id}")
        container = self.client.containers.get(record.container)
        deadline = time.monotonic() + timeout_s
        last_step = ""
        while time.monotonic() < deadline:
            try:
                container.reload()
            except docker.errors.NotFound:
                return {"exit_status": None, "error": f"host container {record.container} is gone"}
            if container.status != "running":
                return {"exit_status": None, "error": f"host container {record.container} is {container.status}"}
            result = _read_file(container, RESULT_FILE)
            if result:
                return {**json.loads(result), "log_tail": self.log_tail(instance_id)}
            step = _current_step(_read_file(container, OUTPUT_LOG))
            if step and step != last_step:
                self.progress(f"host {instance_id}: bootstrap step {step}")
                last_step = step
            time.sleep(2)
        return {"exit_status": None, "error": f"the userdata did not finish within {timeout_s:.0f}s",
                "log_tail": self.log_tail(instance_id)}

    def log_tail(self, instance_id: str, lines: int = 20) -> list[str]:
        record = load_host_record(self.records, instance_id)
        if record is None:
            return []
        import docker

        try:
            container = self.client.containers.get(record.container)
        except docker.errors.NotFound:
            return []
        return _read_file(container, OUTPUT_LOG).splitlines()[-lines:]

    def read_file(self, instance_id: str, path: str) -> str:
        """A file of the host's disk ('' when it does not exist); tmpfs paths (/run) need run_in_host."""
        record = load_host_record(self.records, instance_id)
        if record is None:
            raise EnvctlError(f"no sandbox host for {instance_id}")
        return _read_file(self.client.containers.get(record.container), path)

    def run_in_host(self, instance_id: str, script: str, *, timeout_s: float | None = None) -> tuple[int, str]:
        """Run a bash script as root in the host, with the environment its units get (exit code, output;
        124 when timeout_s ran out)."""
        import shlex

        import docker

        record = load_host_record(self.records, instance_id)
        if record is None:
            raise EnvctlError(f"no sandbox host for {instance_id}")
        try:
            container = self.client.containers.get(record.container)
        except docker.errors.NotFound:
            raise EnvctlError(f"the sandbox host {record.container} of {instance_id} is gone") from None
        if container.status != "running":
            raise EnvctlError(f"the sandbox host {record.container} of {instance_id} is {container.status}")
        # The output goes through a file: dockerd 20.10 now and then loses the output of a short exec.
        output_file = f"/var/tmp/envctl-run-{uuid.uuid4().hex}.out"
        command = f"timeout --kill-after=10 {int(timeout_s)} bash -c {shlex.quote(script)}" if timeout_s else f"( {script}\n)"
        wrapped = f"set -a; . /etc/envctl-sandbox.env; set +a\n{command} >{output_file} 2>&1"
        exit_code, _ = container.exec_run(["bash", "-c", wrapped])
        output = _read_file(container, output_file)
        container.exec_run(["rm", "-f", output_file])
        return exit_code, output

    # ---- status ---------------------------------------------------------------------------

    def describe(self, instance_id: str) -> dict[str, Any] | None:
        """The host as `envctl status` shows it; None when the instance has no host."""
        record = load_host_record(self.records, instance_id)
        if record is None:
            return None
        import docker

        described: dict[str, Any] = {"container": record.container, "instance_id": instance_id,
                                     "airflow_url": record.airflow_url, "address": record.container_ip}
        try:
            container = self.client.containers.get(record.container)
        except docker.errors.NotFound:
            return {**described, "state": "missing"}
        except MissingTool as exc:
            return {**described, "state": "unknown", "error": exc.message}
        described.update(id=container.short_id, state=container.status)
        if container.status == "running":
            result = _read_file(container, RESULT_FILE)
            described["userdata"] = json.loads(result) if result else {"exit_status": None, "state": "running"}
        return described


def container_name(instance_id: str) -> str:
    return f"envctl-host-{instance_id}"


def docker_volume_name(instance_id: str) -> str:
    return f"envctl-host-{instance_id}-docker"


def _current_step(log: str) -> str:
    steps = [line.rsplit("step ", 1)[1] for line in log.splitlines() if " envctl: step " in line]
    return steps[-1].strip() if steps else ""


def _read_file(container: Any, path: str) -> str:
    """A file of the host ('' when missing), copied out through the archive API rather than
    `docker exec cat`, whose output dockerd 20.10 now and then loses. Not for tmpfs paths (/run):
    the archive API sees only the container's own filesystem."""
    import docker

    try:
        chunks, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return ""
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        member = archive.extractfile(archive.getmembers()[0])
        return member.read().decode(errors="replace") if member else ""


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


def _attach_loop(image: Path) -> str:
    """The loop device backed by image (an existing one is reused)."""
    attached = _losetup("--associated", str(image)).split(":", 1)[0]
    return attached or _losetup("--find", "--show", str(image))


def _detach_loop(loop_device: str) -> None:
    _losetup("--detach", loop_device, missing_ok=True)


def _losetup(*args: str, missing_ok: bool = False) -> str:
    try:
        result = subprocess.run(["losetup", *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise MissingTool("sandbox hosts need losetup (util-linux) for their data volumes") from None
    if result.returncode != 0 and not missing_ok:
        raise EnvctlError(f"losetup {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()
