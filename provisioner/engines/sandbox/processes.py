"""The sandbox's background processes (moto server, host gateway, registry): find a port, check, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

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
