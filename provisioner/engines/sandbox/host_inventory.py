"""The sandbox hosts that exist: describe them, run commands in them, attach and detach their data
volumes, and remove them (boots none: launching is hosts.py's).

A host is a container named after its instance (`envctl-host-<instance id>`) with a docker volume
for /var/lib/docker, and its record (host_records.py). The data volume is a sparse file per EBS
volume id, attached through a loop device when the program attaches the volume (the userdata
waits for /dev/sdf as on a Xen instance), so Postgres data survives a replaced host as it does
on AWS. Files are read out of a host through the archive API (`read_host_file`). The Docker SDK
is imported lazily.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.engines.base import Progress, no_progress
from provisioner.engines.sandbox.host_records import hosts_dir, load_host_record, remove_host_record, save_host_record
from provisioner.errors import EnvctlError, MissingTool
from provisioner.userdata import WEB_PORT

if TYPE_CHECKING:
    import docker

RESULT_FILE = "/var/lib/cloud/instance/result.json"
OUTPUT_LOG = "/var/log/cloud-init-output.log"
BOOTSTRAP_TIMEOUT_S = 25 * 60  # the userdata's own health wait is 15 min
DEFAULT_VOLUME_GB = 20
LOOP_MAJOR = 7
STOP_TIMEOUT_S = 120  # what systemd gets to stop Airflow (compose down) before the container is killed


class HostInventory:
    """Finds, describes, runs commands in and removes the sandbox's container hosts."""

    def __init__(self, sandbox_dir: Path, *, progress: Progress = no_progress):
        self.sandbox_dir = sandbox_dir
        self.records = hosts_dir(sandbox_dir)
        self.volumes_dir = sandbox_dir / "volumes"
        self.progress = progress
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            from provisioner.local_images import connect_docker

            self._client = connect_docker()
        return self._client

    def remove(self, instance_id: str) -> None:
        """Stop and remove the host of instance_id (terminate), its docker volume and loop devices."""
        record = load_host_record(self.records, instance_id)
        self._remove_container(container_name(instance_id))
        self._remove_docker_volume(docker_volume_name(instance_id))
        for loop_device, _ in (record.volumes.values() if record else ()):
            _detach_loop(loop_device)
        remove_host_record(self.records, instance_id)

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
        _make_device_nodes(self.client.containers.get(record.container), record.container, volume_id, loop_device, device)
        record.volumes[volume_id] = [loop_device, device]
        save_host_record(self.records, record)

    def detach_volume(self, instance_id: str, volume_id: str) -> None:
        """Stop the host first, as `stopInstanceBeforeDetaching` does (systemd shuts Airflow down and
        unmounts the volume): a replaced host's successor attaches the same file, and two mounts would
        corrupt it. Stopping what uses the volume from inside could miss a unit still starting (a host
        just started again by `envctl resume`), and the volume would stay mounted."""
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
            self.progress(f"stopping sandbox host {record.container} before detaching {volume_id}")
            container.stop(timeout=STOP_TIMEOUT_S)
        _detach_loop(loop_device)
        save_host_record(self.records, record)

    def delete_volume(self, volume_id: str) -> None:
        (self.volumes_dir / f"{volume_id}.img").unlink(missing_ok=True)

    # ---- stopping and starting (the instance's StopInstances / StartInstances) ------------------

    def stop_host(self, instance_id: str, timeout_s: int = STOP_TIMEOUT_S) -> None:
        """Shut the host down as EC2 stops an instance: systemd stops its units (Airflow's compose down),
        the container stops; its disks (the docker volume, the data volume's file) stay."""
        container = self._container_of(instance_id)
        if container is None or container.status != "running":
            return
        self.progress(f"stopping sandbox host {container.name}")
        container.stop(timeout=timeout_s)

    def start_host(self, instance_id: str) -> None:
        """Boot a stopped host again as EC2 starts an instance: the userdata does not run again; the data
        volume's device comes back (a container's /dev is new at each start) and is mounted, then Airflow's
        unit starts. Its address and published port may change: the record follows them."""
        container = self._container_of(instance_id)
        record = load_host_record(self.records, instance_id)
        if container is None or record is None or container.status == "running":
            return
        self.progress(f"starting sandbox host {container.name}")
        container.start()
        container.reload()
        for volume_id, (loop_device, device) in record.volumes.items():
            _make_device_nodes(container, record.container, volume_id, loop_device, device)
        record.container_ip = container.attrs["NetworkSettings"]["IPAddress"]
        record.web_port = int(container.ports[f"{WEB_PORT}/tcp"][0]["HostPort"])
        record.started_at = time.time()
        save_host_record(self.records, record)
        # systemd waits for the mount's device, which no udev announces in a container: mount it by hand
        # (as the userdata did), then start Airflow's unit, which requires the mount.
        script = ("for _ in $(seq 60); do systemctl list-units --no-pager >/dev/null 2>&1 && break; sleep 1; done; "
                  "if grep -q '[[:space:]]/data[[:space:]]' /etc/fstab; then mountpoint -q /data || mount /data; fi; "
                  "systemctl reset-failed; systemctl start --no-block envctl-airflow.service")
        exit_code, output = container.exec_run(["bash", "-c", script])
        if exit_code != 0:
            raise EnvctlError(f"sandbox host {record.container} started, but its data volume or Airflow did not: "
                              f"{output.decode(errors='replace').strip()[-400:]}")

    def _container_of(self, instance_id: str) -> Any:
        import docker

        try:
            return self.client.containers.get(container_name(instance_id))
        except docker.errors.NotFound:
            return None

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
            result = read_host_file(container, RESULT_FILE)
            if result:
                return {**json.loads(result), "log_tail": self.log_tail(instance_id)}
            step = _current_step(read_host_file(container, OUTPUT_LOG))
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
        return read_host_file(container, OUTPUT_LOG).splitlines()[-lines:]

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
        output = read_host_file(container, output_file)
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
            result = read_host_file(container, RESULT_FILE)
            described["userdata"] = json.loads(result) if result else {"exit_status": None, "state": "running"}
        return described



def container_name(instance_id: str) -> str:
    return f"envctl-host-{instance_id}"


def docker_volume_name(instance_id: str) -> str:
    return f"envctl-host-{instance_id}-docker"


def _current_step(log: str) -> str:
    steps = [line.rsplit("step ", 1)[1] for line in log.splitlines() if " envctl: step " in line]
    return steps[-1].strip() if steps else ""


def read_host_file(container: Any, path: str) -> str:
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


def _make_device_nodes(container: Any, name: str, volume_id: str, loop_device: str, device: str) -> None:
    """The volume's block device in the host, under its EC2 name and as its loop device (which blkid scans)."""
    minor = int(loop_device.removeprefix("/dev/loop"))
    for node in (device, loop_device):
        script = f"[ -b {node} ] || mknod -m 0660 {node} b {LOOP_MAJOR} {minor}"
        exit_code, output = container.exec_run(["sh", "-c", script])
        if exit_code != 0:
            raise EnvctlError(f"could not attach {volume_id} to {name} as {node}: {output.decode().strip()}")


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
