"""What sandbox hosts reach on the docker bridge: the IMDS, the AWS endpoint and the registry.

Containers cannot reach services bound to 127.0.0.1 of this machine, and the moto server and the
registry stay there (nothing is exposed beyond this machine). The gateway is one background
process, bound to the docker bridge's address only (172.17.0.1 usually), that serves the
emulated IMDS (imds.py) and forwards one port to the moto server and one to the registry. It is
recorded in `<state_dir>/sandbox/gateway.json`; a changed moto or registry port restarts it.
"""

from __future__ import annotations

import argparse
import select
import signal
import socket
import socketserver
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from provisioner.engines.base import Progress, no_progress
from provisioner.engines.sandbox.host_records import hosts_dir
from provisioner.engines.sandbox.imds import MetadataService, RoleCredentials, make_server
from provisioner.engines.sandbox.processes import ProcessRecord, free_port, pid_alive, wait_until_ready
from provisioner.errors import EnvctlError

START_TIMEOUT_S = 15.0


@dataclass
class GatewayInfo:
    pid: int
    bind: str  # the docker bridge's address
    imds_port: int
    aws_port: int
    registry_port: int
    moto_port: int  # forwarded to 127.0.0.1:<moto_port>
    registry_target_port: int  # forwarded to 127.0.0.1:<registry_target_port>

    @property
    def imds_endpoint(self) -> str:
        return f"http://{self.bind}:{self.imds_port}"

    @property
    def aws_endpoint(self) -> str:
        return f"http://{self.bind}:{self.aws_port}"

    @property
    def registry_mirror(self) -> str:
        return f"http://{self.bind}:{self.registry_port}"


def _connects(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


class HostGateway:
    def __init__(self, sandbox_dir: Path):
        self.dir = sandbox_dir
        self.record = ProcessRecord(sandbox_dir / "gateway.json", GatewayInfo)
        self.log_path = sandbox_dir / "gateway.log"

    def running(self) -> GatewayInfo | None:
        return self.record.running(lambda info: pid_alive(info.pid) and _connects(info.bind, info.imds_port))

    def ensure_started(self, bind: str, moto_port: int, registry_port: int, progress: Progress = no_progress) -> GatewayInfo:
        info = self.running()
        if info and (info.bind, info.moto_port, info.registry_target_port) == (bind, moto_port, registry_port):
            return info
        self.stop()
        return self.start(bind, moto_port, registry_port, progress)

    def start(self, bind: str, moto_port: int, registry_port: int, progress: Progress = no_progress) -> GatewayInfo:
        self.dir.mkdir(parents=True, exist_ok=True)
        imds_port, aws_port, registry_fwd_port = (free_port(bind) for _ in range(3))
        progress(f"starting the host gateway on {bind} (IMDS :{imds_port}, AWS :{aws_port}, registry :{registry_fwd_port})")
        command = [
            sys.executable, "-m", "provisioner.engines.sandbox.gateway", "--sandbox-dir", str(self.dir.resolve()),
            "--bind", bind, "--imds-port", str(imds_port),
            "--forward", f"{aws_port}={moto_port}", "--forward", f"{registry_fwd_port}={registry_port}",
        ]
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       start_new_session=True, close_fds=True)
        info = GatewayInfo(pid=process.pid, bind=bind, imds_port=imds_port, aws_port=aws_port,
                           registry_port=registry_fwd_port, moto_port=moto_port, registry_target_port=registry_port)
        wait_until_ready(process, lambda: all(_connects(bind, port) for port in (imds_port, aws_port, registry_fwd_port)),
                         log_path=self.log_path, failure=f"the sandbox host gateway did not start on {bind}",
                         timeout_s=START_TIMEOUT_S)
        self.record.write(info)
        return info

    def stop(self) -> GatewayInfo | None:
        return self.record.stop()


# ---- the gateway process ------------------------------------------------------------------


def _forwarder(bind: str, port: int, target_port: int) -> socketserver.ThreadingTCPServer:
    """A TCP forwarder from bind:port to 127.0.0.1:target_port."""

    class Pipe(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            try:
                upstream = socket.create_connection(("127.0.0.1", target_port), timeout=10)
            except OSError:
                return  # the client sees the connection close, as with a stopped server
            upstream.settimeout(None)
            with upstream:
                _pump(self.request, upstream)

    server = socketserver.ThreadingTCPServer((bind, port), Pipe, bind_and_activate=False)
    server.allow_reuse_address = True
    server.daemon_threads = True
    server.server_bind()
    server.server_activate()
    return server


def _pump(left: socket.socket, right: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    peers = {left: right, right: left}
    while True:
        readable, _, _ = select.select(list(peers), [], [], 300)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            peers[sock].sendall(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sandbox-dir", type=Path, required=True)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--imds-port", type=int, required=True)
    parser.add_argument("--forward", action="append", default=[], help="LISTEN_PORT=TARGET_PORT on 127.0.0.1")
    args = parser.parse_args()

    servers = [make_server(args.bind, args.imds_port, MetadataService(hosts_dir(args.sandbox_dir),
                                                                      RoleCredentials(_admin_clients(args.sandbox_dir))))]
    for forward in args.forward:
        listen, target = (int(part) for part in forward.split("="))
        servers.append(_forwarder(args.bind, listen, target))
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    for server in servers:
        server.shutdown()


def _admin_clients(sandbox_dir: Path):
    """boto3 clients for the sandbox's moto server as its admin (read from server.json at each call:
    the server may be restarted while the gateway runs)."""
    import boto3

    from provisioner.engines.sandbox.server_control import SandboxServer

    def client(service: str, region: str):
        info = SandboxServer(sandbox_dir).recorded()
        if info is None:
            raise EnvctlError("the sandbox's moto server is not running")
        return boto3.client(service, region_name=region, endpoint_url=info.endpoint, **info.credentials)

    return client


if __name__ == "__main__":
    main()
