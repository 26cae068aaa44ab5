"""The record of each sandbox host: `<state_dir>/sandbox/hosts/<instance id>.json`.

hosts.py writes one when it boots a host, host_inventory.py updates it (attached volumes) and
removes it, and the IMDS (imds.py, in the gateway process) reads it to know which host asks.
Plain files, no Docker: the record is what every side agrees on about a host.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


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


def save_host_record(directory: Path, record: HostRecord) -> None:
    """Written whole (temporary file, then rename): the IMDS reads records while hosts change."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record.instance_id}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(record), indent=1))
    temporary.chmod(0o600)  # holds the user data
    temporary.replace(path)


def remove_host_record(directory: Path, instance_id: str) -> None:
    (directory / f"{instance_id}.json").unlink(missing_ok=True)
