"""The sandbox server process: moto behind the fidelity middleware on 127.0.0.1 until SIGTERM.

Run by `envctl sandbox start` as its own process (ThreadedMotoServers in one process share
state, and the sandbox must outlive the command that started it). Requests meet the fidelity
rules first (the sandbox refuses what AWS refuses), then any extra operation registered for
them (APIs moto lacks), then moto.

Extra operations: a module listed in EXTENSIONS is imported at start; it registers its
handlers with `@operation(service, action)` from provisioner.engines.sandbox.fidelity.registry
(the handler gets the parsed AwsRequest, with its JSON params, and returns a Reply or a
Refusal), and may register rules with `@rule(service, *actions)`. Its `install()` is called at
start (with the ServerProcess when it takes an argument), its `shutdown()` when the server stops.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

# Modules that register extra operations (or rules) in the server process: add yours here. A module
# with an `install()` (sagemaker_api: UpdateEndpoint, added to moto's own SageMaker classes) has it called.
# Order matters: endpoint_containers wraps the UpdateEndpoint that sagemaker_api adds.
EXTENSIONS: tuple[str, ...] = (
    "provisioner.engines.sandbox.sagemaker_api",
    "provisioner.engines.sandbox.endpoint_containers",
    "provisioner.engines.sandbox.training_jobs",  # CreateTrainingJob runs the image in a local container
    "provisioner.engines.sandbox.alarm_evaluation",  # moto stores alarms; this evaluates them every 15 s
    "provisioner.engines.sandbox.moto_fixes",  # moto bugs that would fail what AWS accepts
)


@dataclass(frozen=True)
class ServerProcess:
    """What extensions may need to know of the server process they run in."""

    sandbox_dir: Path | None = None  # <state_dir>/sandbox (the registry's record ...); None in tests' in-process servers
    server_id: str = ""  # labels what the process starts (containers), so that its stop finds them


def load_extensions(process: ServerProcess | None = None) -> None:
    for name in EXTENSIONS:
        module = importlib.import_module(name)
        install = getattr(module, "install", None)
        if install is None:
            continue
        if process is not None and inspect.signature(install).parameters:
            install(process)
        else:
            install()


def stop_extensions() -> None:
    """Each extension's `shutdown()` (what they started goes); one failing does not keep the others."""
    for name in EXTENSIONS:
        shutdown = getattr(importlib.import_module(name), "shutdown", None)
        if shutdown is None:
            continue
        try:
            shutdown()
        except Exception as exc:  # noqa: BLE001 - the server stops anyway; say what was left
            print(f"envctl sandbox: {name}.shutdown failed: {exc}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sandbox-dir", type=Path, default=None)
    parser.add_argument("--server-id", default="")
    args = parser.parse_args()

    from provisioner.engines.sandbox.fidelity.middleware import FidelityServer
    load_extensions(ServerProcess(sandbox_dir=args.sandbox_dir, server_id=args.server_id))
    server = FidelityServer(ip_address=args.host, port=args.port)
    server.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    stop_extensions()  # first: `envctl sandbox stop` kills the process after a few seconds
    server.stop()


if __name__ == "__main__":
    main()
