"""A team's sandbox hosts as the engine's operations use them: launched for an apply with hosts on,
waited for once it is done, described by status, and used to run commands or to remove hosts.

The containers themselves: hosts.py (launching), host_inventory.py (the ones that exist).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from provisioner.engines.base import Progress, no_progress
from provisioner.engines.sandbox.host_records import hosts_dir
from provisioner.settings import Settings

if TYPE_CHECKING:
    from provisioner.engines.sandbox.host_inventory import HostInventory
    from provisioner.engines.sandbox.server_control import ServerInfo
    from provisioner.engines.sandbox.state import StackState
    from provisioner.spec import ResolvedSpec

INSTANCE_TYPE = "aws:ec2/instance:Instance"


class TeamHosts:
    def __init__(self, settings: Settings, account_id: str):
        self.settings = settings
        self.account_id = account_id

    def for_operation(self, info: ServerInfo, progress: Progress, spec: ResolvedSpec | None = None) -> Any:
        """The hosts handlers get (SandboxContext.hosts): for an apply with hosts on (spec given) ones that
        boot new hosts; otherwise, when hosts exist, ones that only remove them; else None."""
        from provisioner.engines.sandbox.hosts import SandboxHosts

        launching = spec is not None and self.settings.sandbox_hosts
        if not launching and not any(hosts_dir(self.settings.sandbox_dir).glob("i-*.json")):
            return None
        hosts = SandboxHosts(self.settings.sandbox_dir, moto_port=info.port, account_id=self.account_id,
                             boot_new_hosts=launching, airflow_versions={spec.spec.airflow.version} if spec else set(),
                             progress=progress, image_registry=self.settings.image_registry)
        if launching:
            # Here, not in a handler thread: Docker is found (or missing) before anything is created, and
            # docker/requests are first imported by one thread only (concurrent first imports fail).
            hosts.prepare()
        return hosts

    @staticmethod
    def wait_for_bootstrap(hosts: Any, progress: Progress) -> list[str]:
        """Wait for the hosts an apply booted to run their userdata; a failure becomes a warning."""
        warnings = []
        for instance_id in hosts.started if hosts is not None else ():
            progress(f"waiting for host {instance_id} to run its userdata")
            result = hosts.wait_for_bootstrap(instance_id)
            if result.get("exit_status") != 0:
                reason = result.get("error") or f"exit status {result.get('exit_status')}"
                tail = " | ".join(result.get("log_tail", [])[-3:])
                warnings.append(f"host {instance_id}: the userdata failed ({reason}): {tail}")
        return warnings

    def hostless_instances(self, state: StackState) -> list[str]:
        """With hosts on, instances made before hosts were: a host boots only when its instance is created."""
        if not self.settings.sandbox_hosts:
            return []
        records = hosts_dir(self.settings.sandbox_dir)
        return [f"instance {instance_id} was created without sandbox hosts and has none; destroy and create "
                f"{state.team} again to boot it" for instance_id in _instances(state)
                if not (records / f"{instance_id}.json").exists()]

    def describe(self, state: StackState) -> dict[str, Any] | None:
        """The host of the team's (first) instance, None without one."""
        instances = _instances(state)
        return self.existing().describe(instances[0]) if instances else None

    def existing(self, progress: Progress = no_progress) -> HostInventory:
        """The hosts that exist, to describe or run commands in (boots none)."""
        from provisioner.engines.sandbox.host_inventory import HostInventory

        return HostInventory(self.settings.sandbox_dir, progress=progress)


def _instances(state: StackState) -> list[str]:
    return [r.id for r in state.ordered() if r.type == INSTANCE_TYPE and r.materialised]
