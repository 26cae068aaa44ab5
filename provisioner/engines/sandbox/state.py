"""Per-team sandbox state: what was made, with which inputs, against which sandbox server.

One JSON file per team (`<state_dir>/sandbox/stacks/<team>.json`), rewritten atomically
(temporary file, fsync, rename) after every change, so an interrupted run leaves a readable
file that names every resource it made, and `pending` ones whose create may have happened.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from provisioner.errors import EnvctlError, LockConflict

STATE_VERSION = 1


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def inputs_hash(inputs: dict[str, Any], ignore: list[str] | tuple[str, ...] = ()) -> str:
    kept = {k: v for k, v in inputs.items() if k not in ignore}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class StoredResource:
    """What the sandbox remembers of a resource it made; handlers get it as `old`."""

    urn: str
    type: str
    name: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    inputs_hash: str
    parent: str = ""
    dependencies: list[str] = field(default_factory=list)
    provider: str = ""
    retain_on_delete: bool = False
    materialised: bool = True
    seq: int = 0


@dataclass
class StackState:
    team: str
    server_id: str = ""
    region: str = ""
    resources: dict[str, StoredResource] = field(default_factory=dict)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # urn -> {type, name, inputs} of creates in flight
    outputs: dict[str, Any] = field(default_factory=dict)
    last_operation: str = ""
    last_updated: str = ""
    status: str = ""  # ok | failed | interrupted
    error: str = ""
    next_seq: int = 0
    fingerprint: str = ""  # of the last successful apply (see provisioner/fingerprint.py)

    def ordered(self) -> list[StoredResource]:
        return sorted(self.resources.values(), key=lambda r: r.seq)

    def note_pending(self, urn: str, create: dict[str, Any]) -> None:
        """Before a create: note it, so that a run killed mid-call can find what it made."""
        self.pending[urn] = create

    def record(self, resource: StoredResource) -> None:
        """Remember a resource last in order (registration order is a dependency order); its create is done."""
        resource.seq = self.next_seq
        self.next_seq += 1
        self.resources[resource.urn] = resource
        self.pending.pop(resource.urn, None)

    def forget(self, urn: str) -> None:
        self.resources.pop(urn, None)

    def to_json(self) -> dict[str, Any]:
        """Shallow (it runs on every save); outputs are stored without what repeats the inputs."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "resources"}
        data["version"] = STATE_VERSION
        data["resources"] = [_resource_json(r) for r in self.ordered()]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StackState":
        resources = {r["urn"]: _resource_from_json(r) for r in data.get("resources", [])}
        fields_ = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "resources"}
        return cls(**fields_, resources=resources)


def _resource_json(resource: StoredResource) -> dict[str, Any]:
    data = {f.name: getattr(resource, f.name) for f in fields(resource)}
    data["outputs"] = {k: v for k, v in resource.outputs.items() if k not in resource.inputs or resource.inputs[k] != v}
    return data


def _resource_from_json(data: dict[str, Any]) -> StoredResource:
    resource = StoredResource(**data)
    resource.outputs = {**resource.inputs, **resource.outputs}  # handlers' outputs always include the inputs
    return resource


class StateStore:
    """Reads and writes stack states; one writer at a time per team (see `lock`)."""

    def __init__(self, sandbox_dir: Path):
        self.dir = sandbox_dir / "stacks"
        self._write_lock = threading.Lock()

    def path(self, team: str) -> Path:
        return self.dir / f"{team}.json"

    @contextmanager
    def changing(self, state: StackState, *, save: bool = True) -> Iterator[StackState]:
        """Change a state in memory, then (unless `save=False`) write it. Handlers run in several threads:
        the change and the write hold one lock, so no save ever writes a half-made change."""
        with self._write_lock:
            yield state
            if save:
                self._write(state)

    def teams(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.json")) if self.dir.is_dir() else []

    def load(self, team: str) -> StackState | None:
        path = self.path(team)
        if not path.exists():
            return None
        try:
            return StackState.from_json(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise EnvctlError(f"{path}: the sandbox state of {team} is unreadable ({exc})",
                              hint="move it aside and run `envctl sandbox reset` to start the sandbox afresh") from None

    def save(self, state: StackState) -> None:
        with self._write_lock:
            self._write(state)

    def _write(self, state: StackState) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(state.to_json(), indent=1, sort_keys=True, default=str)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{state.team}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path(state.team))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def remove(self, team: str) -> None:
        self.path(team).unlink(missing_ok=True)

    def archive(self, team: str, reason: str) -> Path | None:
        """Keep a state that can no longer be trusted, instead of deleting it."""
        path = self.path(team)
        if not path.exists():
            return None
        target = self.dir / "stale" / f"{team}.{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.{reason}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        return target

    def lock(self, team: str) -> "TeamLock":
        return TeamLock(self.dir / f"{team}.lock", team)


class TeamLock:
    """An exclusive, non-blocking lock per team; the kernel releases it if the process dies."""

    def __init__(self, path: Path, team: str):
        self.path = path
        self.team = team
        self._fd: int | None = None

    def __enter__(self) -> "TeamLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise LockConflict(
                    f"another envctl run (pid {holder}) is working on team {self.team} in the sandbox; wait for it to finish",
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

