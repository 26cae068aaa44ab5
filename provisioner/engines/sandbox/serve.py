"""The sandbox server process: moto behind the fidelity middleware on 127.0.0.1 until SIGTERM.

Run by `envctl sandbox start` as its own process (ThreadedMotoServers in one process share
state, and the sandbox must outlive the command that started it). Requests meet the fidelity
rules first (the sandbox refuses what AWS refuses), then any extra operation registered for
them (APIs moto lacks), then moto.

Extra operations: a module listed in EXTENSIONS is imported at start; it registers its
handlers with `@operation(service, action)` from provisioner.engines.sandbox.fidelity.registry
(the handler gets the parsed AwsRequest, with its JSON params, and returns a Reply or a
Refusal), and may register rules with `@rule(service, *actions)`.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import threading

# Modules that register extra operations (or rules) in the server process: add yours here. A module
# with an `install()` (sagemaker_api: UpdateEndpoint, added to moto's own SageMaker classes) has it called.
EXTENSIONS: tuple[str, ...] = (
    "provisioner.engines.sandbox.sagemaker_api",
    "provisioner.engines.sandbox.training_jobs",  # CreateTrainingJob runs the image in a local container
)


def load_extensions() -> None:
    for name in EXTENSIONS:
        module = importlib.import_module(name)
        install = getattr(module, "install", None)
        if install is not None:
            install()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    from provisioner.engines.sandbox.fidelity.middleware import FidelityServer
    load_extensions()
    server = FidelityServer(ip_address=args.host, port=args.port)
    server.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
