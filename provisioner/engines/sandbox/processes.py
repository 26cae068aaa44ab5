"""The sandbox's background processes (moto server, host gateway, registry): find a port, check, stop,
and the JSON file each is recorded in (`ProcessRecord`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from provisioner.errors import EnvctlError


def pid_alive(pid: int) -> bool:
    try:  # reap it first if it is our own exited child (a zombie still answers kill 0)
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: kill 0 below tells
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate(pid: int, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after `grace_s`."""
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until_ready(process: subprocess.Popen, ready: Callable[[], bool], *, log_path: Path, failure: str,
                     timeout_s: float, poll_s: float = 0.1) -> None:
    """Wait for a process just started to answer; if it exits or the time runs out, kill it and fail
    with `failure` and the last lines of its log."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise EnvctlError(f"{failure}: " + " | ".join(tail))
        time.sleep(poll_s)


Info = TypeVar("Info")


class ProcessRecord(Generic[Info]):
    """What envctl knows of one background process it started: a dataclass (`kind`, with a `pid`)
    kept as JSON in `path`, read back by later commands to find, check and stop the process."""

    def __init__(self, path: Path, kind: type[Info]):
        self.path = path
        self.kind = kind

    def read(self) -> Info | None:
        """The recorded process, whether or not it still runs; None when there is no (readable) record."""
        try:
            return self.kind(**json.loads(self.path.read_text()))
        except (OSError, json.JSONDecodeError, TypeError):
            return None

    def running(self, answers: Callable[[Info], bool]) -> Info | None:
        """The recorded process, if `answers` finds it alive and serving."""
        info = self.read()
        return info if info is not None and answers(info) else None

    def write(self, info: Info, *, private: bool = False) -> None:
        """Record info; `private` (it holds keys): readable by this user only."""
        self.path.write_text(json.dumps(asdict(info), indent=1))
        if private:
            os.chmod(self.path, 0o600)

    def stop(self, end: Callable[[Info], None] | None = None) -> Info | None:
        """End the recorded process (`terminate` of its pid, unless `end` says how) and drop the record;
        what was recorded, or None when nothing was."""
        info = self.read()
        if info is None:
            return None
        (end or _terminate)(info)
        self.path.unlink(missing_ok=True)
        return info


def _terminate(info: Any) -> None:
    terminate(info.pid)
