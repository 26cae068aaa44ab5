"""Throughput and latency of the default inference server (templates/inference/serve) on 127.0.0.1.

Starts the server as a local process (the command the image runs), sends a fixed number of
POST /invocations from a fixed number of threads (one keep-alive connection each), stops the
server and prints JSON: requests/s, p50/p99/max latency in ms, errors.

    .venv/bin/python bench/inference_bench.py [--requests 2000] [--concurrency 16] [--out results.json]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SERVE = Path(__file__).resolve().parents[1] / "templates" / "inference" / "serve"
PAYLOAD = json.dumps({"instances": [[1.0, 2.0, 3.0]] * 10}).encode()
HEADERS = {"Content-Type": "application/json"}
START_TIMEOUT_S = 20
REQUEST_TIMEOUT_S = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, workers: int | None, model_dir: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "SM_MODEL_DIR": model_dir,
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "ENVCTL_BIND_HOST": "127.0.0.1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if workers:
        env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
    return subprocess.Popen(
        [sys.executable, str(SERVE), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def wait_until_ready(port: int, server: subprocess.Popen) -> float:
    started = time.monotonic()
    while time.monotonic() - started < START_TIMEOUT_S:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode} before answering /ping")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return time.monotonic() - started
        except OSError:
            time.sleep(0.02)
        finally:
            connection.close()
    sys.exit(f"no answer from /ping within {START_TIMEOUT_S} s")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


class Load:
    """Hands out request numbers up to a total to several threads; collects latencies and errors."""

    def __init__(self, total: int):
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self.total = total
        self.latencies_s: list[float] = []
        self.errors: list[str] = []

    def take(self) -> bool:
        with self._lock:
            return next(self._numbers) < self.total

    def record(self, latency_s: float | None, error: str | None) -> None:
        with self._lock:
            if error is None:
                self.latencies_s.append(latency_s)
            else:
                self.errors.append(error)


def drive(port: int, load: Load) -> None:
    """One client thread: a keep-alive connection, reopened after a failure."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    while load.take():
        started = time.perf_counter()
        try:
            connection.request("POST", "/invocations", PAYLOAD, HEADERS)
            response = connection.getresponse()
            response.read()
            error = None if response.status == 200 else f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            error = type(exc).__name__
            connection.close()
        load.record(time.perf_counter() - started, error)
    connection.close()


def run_load(port: int, requests: int, concurrency: int) -> tuple[Load, float]:
    load = Load(requests)
    threads = [threading.Thread(target=drive, args=(port, load)) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return load, time.perf_counter() - started


def summary(load: Load, elapsed_s: float, args: argparse.Namespace, startup_s: float) -> dict:
    latencies_ms = sorted(latency * 1000 for latency in load.latencies_s)
    percentiles = statistics.quantiles(latencies_ms, n=100, method="inclusive") if len(latencies_ms) > 1 else []
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "workers": args.workers or len(os.sched_getaffinity(0)),
        "instances_per_request": 10,
        "server_start_to_ping_s": round(startup_s, 3),
        "elapsed_s": round(elapsed_s, 3),
        "requests_per_s": round(len(latencies_ms) / elapsed_s, 1),
        "p50_ms": round(percentiles[49], 2) if percentiles else None,
        "p99_ms": round(percentiles[98], 2) if percentiles else None,
        "max_ms": round(latencies_ms[-1], 2) if latencies_ms else None,
        "errors": len(load.errors),
        "error_kinds": sorted(set(load.errors)),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: one per CPU)")
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    args = parser.parse_args(argv)
    if not (1 <= args.requests <= 1_000_000 and 1 <= args.concurrency <= 256):
        parser.error("--requests must be 1..1000000 and --concurrency 1..256")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    port = free_port()
    with tempfile.TemporaryDirectory() as model_dir:  # empty: the built-in default model
        server = start_server(port, args.workers, model_dir)
        try:
            startup_s = wait_until_ready(port, server)
            run_load(port, min(100, args.requests), args.concurrency)  # warm-up: connections, workers
            load, elapsed_s = run_load(port, args.requests, args.concurrency)
        finally:
            stop_server(server)
    result = summary(load, elapsed_s, args, startup_s)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
