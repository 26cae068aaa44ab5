"""The sandbox's background processes (moto server, host gateway, registry): find a port, check, stop."""

from __future__ import annotations

import os
import signal
import socket
import time


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
