"""The sandbox server process: a moto server on 127.0.0.1 until SIGTERM.

Run by `envctl sandbox start` as its own process (ThreadedMotoServers in one process share
state, and the sandbox must outlive the command that started it).
"""

from __future__ import annotations

import argparse
import signal
import threading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    from provisioner.engines.sandbox.sagemaker_api import install as install_sagemaker_operations

    install_sagemaker_operations()  # UpdateEndpoint, which moto lacks
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
