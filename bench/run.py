"""envctl's benchmarks: what users wait for, measured on this machine.

    .venv/bin/python bench/run.py [--quick] [--skip-make-test] [--out bench/results/latest.json]
        [--no-doc | --render-only]

Runs every measurement (several runs each: median and min, against its target), writes the
results as JSON (--out) and the table between `<!-- bench:begin -->` and `<!-- bench:end -->` in
docs/performance.md; what is outside the markers (profiles, notes) is kept. These are benchmarks,
not tests: they report. bench/check.py fails only on a figure that got more than 2x worse.

Nothing in the repository's .envctl is touched: every measurement works in a temporary copy of
stacks/ and envctl.toml with its own ENVCTL_STATE_DIR, and stops every sandbox it starts.
Whole-process figures are wall times of a subprocess (time.perf_counter around it); peak memory
is the child's maximum resident set (wait4).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENVCTL = str(BIN / "envctl")
PYTHON = sys.executable
BASELINE_SCRIPT = REPO / "bench" / "baseline_boto3.py"
INFERENCE_SCRIPT = REPO / "bench" / "inference_bench.py"
FLEET_PLAN_SCRIPT = REPO / "bench" / "fleet_plan.py"
DEFAULT_OUT = REPO / "bench" / "results" / "latest.json"
DEFAULT_DOC = REPO / "docs" / "performance.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

EXAMPLE_TEAM = "fraud"  # the example request every one-team figure uses; synthetic teams copy it
PROCESS_TIMEOUT_S = 900


# --- what a run measures ---------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How many repetitions of what: the full run stays within about ten minutes on two cores."""

    name: str = "full"
    cli_runs: int = 5
    preview_runs: int = 3
    create_runs: int = 4
    rerun_runs: int = 5
    validate_runs: int = 3
    scale_sizes: tuple[int, ...] = (10, 50, 200)
    scale_create_teams: int = 20
    parallel: int = 4
    inference_requests: int = 2000
    inference_concurrency: int = 16
    fleet_teams: int = 200
    make_test: bool = True

    @classmethod
    def quick(cls) -> "Plan":
        return cls(name="quick", cli_runs=3, preview_runs=2, create_runs=2, rerun_runs=2, validate_runs=1, scale_sizes=(5, 10),
                   scale_create_teams=4, inference_requests=300, fleet_teams=10)


@dataclass
class Figure:
    """One reported number: its runs, the value compared with the target (median, or max), and how it reads."""

    key: str
    label: str
    unit: str
    runs: list[float]
    target: float | None = None
    better: str = "lower"  # or "higher"
    aggregate: str = "median"  # "max" where a single bad run is a failure (e.g. writes on a no-change run)
    note: str = ""

    @property
    def value(self) -> float | None:
        if not self.runs:
            return None
        return max(self.runs) if self.aggregate == "max" else statistics.median(self.runs)

    @property
    def best(self) -> float | None:
        if not self.runs:
            return None
        return max(self.runs) if self.better == "higher" else min(self.runs)

    @property
    def met(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        return self.value >= self.target if self.better == "higher" else self.value <= self.target

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "value": _round(self.value), "best": _round(self.best), "met": self.met,
                "runs": [_round(run) for run in self.runs]}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass
class Results:
    figures: dict[str, Figure] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)  # extra rows for the Markdown (scale, sandbox detail)
    load: list[dict[str, Any]] = field(default_factory=list)  # load average as each section starts and ends
    problems: list[str] = field(default_factory=list)  # a measurement that could not be taken, and why

    def add(self, figure: Figure) -> Figure:
        self.figures[figure.key] = figure
        return figure

    def note_load(self, section: str, moment: str) -> None:
        one, five, fifteen = os.getloadavg()
        self.load.append({"section": section, "at": moment, "load1": round(one, 2), "load5": round(five, 2),
                          "load15": round(fifteen, 2)})


# --- processes -------------------------------------------------------------------------------


@dataclass
class ProcessRun:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float

    def json(self) -> Any:
        return json.loads(self.stdout)

    def check(self, what: str) -> "ProcessRun":
        if self.returncode != 0:
            tail = " | ".join(self.stderr.strip().splitlines()[-3:])
            raise BenchError(f"{what} exited with {self.returncode}: {tail}")
        return self


class BenchError(Exception):
    """A measurement could not be taken (a command failed); the run records it and goes on."""


def run_process(argv: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float = PROCESS_TIMEOUT_S) -> ProcessRun:
    """Wall time, exit code, output and peak memory of one child process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        killer = threading.Timer(timeout_s, process.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)  # wait4, unlike wait, gives this child's own peak RSS
        finally:
            killer.cancel()
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ProcessRun(seconds=seconds, returncode=process.returncode, stdout=out.read().decode(errors="replace"),
                          stderr=err.read().decode(errors="replace"), peak_rss_mb=usage.ru_maxrss / 1024)


def envctl_env(state_dir: Path) -> dict[str, str]:
    """The caller's environment without ENVCTL_* settings, with a private state dir and plain output."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ENVCTL_")}
    env.update(ENVCTL_STATE_DIR=str(state_dir), NO_COLOR="1", TERM="dumb", COLUMNS="120")
    return env


# --- temporary projects ----------------------------------------------------------------------


@dataclass
class Workspace:
    """A temporary copy of the project's requests and settings, with its own state dir."""

    project: Path
    state_dir: Path

    @property
    def stacks(self) -> Path:
        return self.project / "stacks"

    @property
    def env(self) -> dict[str, str]:
        return envctl_env(self.state_dir)

    def envctl(self, *args: str) -> ProcessRun:
        return run_process([ENVCTL, *args], cwd=self.project, env=self.env)


def make_workspace(root: Path, name: str, *, examples: bool = True, synthetic: list[str] = ()) -> Workspace:
    project = root / name / "project"
    (project / "stacks").mkdir(parents=True)
    shutil.copy(REPO / "envctl.toml", project / "envctl.toml")
    if examples:
        for request in sorted((REPO / "stacks").glob("*.yaml")):
            shutil.copy(request, project / "stacks" / request.name)
    write_synthetic_teams(project / "stacks", synthetic)
    return Workspace(project=project, state_dir=root / name / "state")


def write_synthetic_teams(stacks_dir: Path, teams: list[str]) -> None:
    """Copies of the example request under other team names, networks allocated from the pool."""
    import yaml

    template = yaml.safe_load((REPO / "stacks" / f"{EXAMPLE_TEAM}.yaml").read_text())
    template.pop("network", None)
    for team in teams:
        (stacks_dir / f"{team}.yaml").write_text(yaml.safe_dump({**template, "team": team}, sort_keys=False))


def synthetic_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{index:03d}" for index in range(1, count + 1)]


def stop_sandbox(workspace: Workspace) -> None:
    """`envctl sandbox stop`, then make sure: no server may outlive the benchmark."""
    from provisioner.engines.sandbox.server_control import SandboxServer

    workspace.envctl("sandbox", "stop")
    SandboxServer(workspace.state_dir / "sandbox").stop()


def sandbox_endpoint(workspace: Workspace) -> tuple[str, dict[str, str]]:
    from provisioner.engines.sandbox.server_control import SandboxServer

    info = SandboxServer(workspace.state_dir / "sandbox").running()
    if info is None:
        raise BenchError("the sandbox server is not running")
    return info.endpoint, info.credentials


def server_memory_mb(workspace: Workspace) -> dict[str, float]:
    """The sandbox server's current and peak resident memory (it is not our child: read /proc)."""
    from provisioner.engines.sandbox.server_control import SandboxServer

    info = SandboxServer(workspace.state_dir / "sandbox").recorded()
    try:
        status = Path(f"/proc/{info.pid}/status").read_text() if info else ""
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {name: int(fields[key].split()[0]) / 1024 for name, key in (("rss_mb", "VmRSS"), ("peak_mb", "VmHWM"))
            if key in fields}


# --- 1. CLI cold start -----------------------------------------------------------------------


COLD_START_COMMANDS = {
    "help": ("`envctl --help`", ["--help"]),
    "validate": ("`envctl validate` (example stacks)", ["validate"]),
    "list": ("`envctl list`", ["list"]),
}


def measure_cold_start(results: Results, workspace: Workspace, plan: Plan) -> None:
    for key, (label, args) in COLD_START_COMMANDS.items():
        workspace.envctl(*args).check(f"envctl {' '.join(args)}")  # not counted: warms the file cache
        runs = [workspace.envctl(*args).check(f"envctl {' '.join(args)}").seconds for _ in range(plan.cli_runs)]
        results.add(Figure(f"cold_start.{key}", f"Cold start: {label}", "s", runs, target=0.3))


# --- 2. offline preview ----------------------------------------------------------------------


def measure_offline_preview(results: Results, workspace: Workspace, plan: Plan) -> None:
    args = ["preview", EXAMPLE_TEAM, "--offline", "--json"]
    runs = [workspace.envctl(*args).check("envctl preview --offline") for _ in range(plan.preview_runs)]
    resources = len(runs[-1].json().get("resources", []))
    results.add(Figure("preview.offline", f"Offline preview of one team (`envctl preview {EXAMPLE_TEAM} --offline`, "
                       f"{resources} resources)", "s", [run.seconds for run in runs], target=2.5))
    results.add(Figure("preview.offline_peak_mb", "Offline preview of one team: peak memory", "MB",
                       [run.peak_rss_mb for run in runs]))


# --- 3 and 4. sandbox create versus raw boto3, and the no-change re-run ------------------------


def baseline_args(endpoint: str, team: str) -> list[str]:
    return [PYTHON, str(BASELINE_SCRIPT), "--endpoint", endpoint, "--team", team]


def baseline_env(workspace: Workspace, credentials: dict[str, str]) -> dict[str, str]:
    return {**workspace.env, "AWS_ACCESS_KEY_ID": credentials["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": credentials["aws_secret_access_key"]}


def measure_sandbox(results: Results, workspace: Workspace, teams: list[str], plan: Plan) -> None:
    """One sandbox server: a warm-up, then engine and baseline creates alternately, then re-runs."""
    try:
        start = workspace.envctl("sandbox", "start").check("envctl sandbox start")
        results.add(Figure("sandbox.start", "Sandbox server start (`envctl sandbox start`)", "s", [start.seconds]))
        endpoint, credentials = sandbox_endpoint(workspace)
        env = baseline_env(workspace, credentials)
        # moto loads each service's backend on first use: the first team pays it, whoever makes it.
        warmup = run_process(baseline_args(endpoint, "bench-warmup"), cwd=workspace.project, env=env).check("baseline")
        results.add(Figure("sandbox.baseline_first_team", "Raw boto3 baseline, first team on a fresh server "
                           "(moto's lazy start-up)", "s", [warmup.seconds]))
        engine_runs, baseline_runs = [], []
        for index, team in enumerate(teams[:plan.create_runs]):
            engine_runs.append(workspace.envctl("create", team, "--json", "--yes").check(f"envctl create {team}"))
            baseline_team = f"bench-base-{index:03d}"
            baseline_runs.append(run_process(baseline_args(endpoint, baseline_team), cwd=workspace.project,
                                             env=env).check("baseline"))
        record_create_figures(results, engine_runs, baseline_runs)
        rerun_runs = [workspace.envctl("create", teams[0], "--json", "--yes").check("envctl create (no change)")
                      for _ in range(plan.rerun_runs)]
        record_rerun_figures(results, rerun_runs)
        memory = server_memory_mb(workspace)
        if memory:
            results.tables["sandbox_server_memory"] = memory
    finally:
        stop_sandbox(workspace)


def record_create_figures(results: Results, engine_runs: list[ProcessRun], baseline_runs: list[ProcessRun]) -> None:
    engine = [run.json() for run in engine_runs]
    baseline = [run.json() for run in baseline_runs]
    created = {item["summary"]["create"] for item in engine}
    engine_wall = results.add(Figure("sandbox.create", f"Sandbox `envctl create` of one team ({'/'.join(map(str, created))} "
                                     "resources), whole process", "s", [run.seconds for run in engine_runs]))
    baseline_wall = results.add(Figure("sandbox.baseline", "Raw boto3 baseline, same resources, same server, "
                                       "whole process", "s", [run.seconds for run in baseline_runs]))
    engine_work = results.add(Figure("sandbox.create_in_process", "Sandbox create of one team, engine time "
                                     "(`duration_s`)", "s", [item["duration_s"] for item in engine]))
    baseline_work = results.add(Figure("sandbox.baseline_in_process", "Raw boto3 baseline, time of its calls", "s",
                                       [item["seconds"] for item in baseline]))
    results.add(Figure("sandbox.ratio", "Sandbox create / raw boto3 ratio, whole process", "x",
                       [engine_wall.value / baseline_wall.value], target=1.5))
    results.add(Figure("sandbox.ratio_in_process", "Sandbox create / raw boto3 ratio, engine time / call time", "x",
                       [engine_work.value / baseline_work.value], target=1.5))
    results.add(Figure("sandbox.engine_writes", "Sandbox create: AWS write calls made by the engine", "calls",
                       [writes_of(item) for item in engine]))
    results.add(Figure("sandbox.baseline_calls", "Raw boto3 baseline: calls (all of them, reads included)", "calls",
                       [item["calls"] for item in baseline]))


def writes_of(operation: dict[str, Any]) -> int:
    if operation.get("api_writes") is None:
        raise BenchError("the engine did not count its AWS write calls")
    return operation["api_writes"]


def record_rerun_figures(results: Results, runs: list[ProcessRun]) -> None:
    outputs = [run.json() for run in runs]
    changed = [item["summary"] for item in outputs if any(item["summary"][a] for a in ("create", "update", "replace", "delete"))]
    note = f"{len(changed)} of {len(outputs)} re-runs reported changes" if changed else ""
    results.add(Figure("rerun.no_change", "No-change re-run of one team (`envctl create` again), whole process", "s",
                       [run.seconds for run in runs], target=0.5, note=note))
    results.add(Figure("rerun.no_change_in_process", "No-change re-run, engine time (`duration_s`)", "s",
                       [item["duration_s"] for item in outputs]))
    results.add(Figure("rerun.writes", "No-change re-run: AWS write calls (worst run)", "calls",
                       [writes_of(item) for item in outputs],
                       target=0, aggregate="max"))


# --- 5. scale --------------------------------------------------------------------------------


def worker_argv(*args: str) -> list[str]:
    return [PYTHON, str(Path(__file__).resolve()), "worker", *args]


def measure_scale_preview(results: Results, root: Path, plan: Plan) -> None:
    rows = []
    for count in plan.scale_sizes:
        workspace = make_workspace(root, f"scale-{count}", examples=False, synthetic=synthetic_names("bench-team", count))
        validate = [workspace.envctl("validate").check(f"envctl validate ({count} teams)").seconds
                    for _ in range(plan.validate_runs)]
        run = run_process(worker_argv("preview-all", str(workspace.project)), cwd=workspace.project, env=workspace.env)
        report = run.check(f"offline preview of {count} teams").json()
        if report["errors"]:
            raise BenchError(f"synthetic requests are invalid: {report['errors'][0]}")
        target = 30.0 if count == 50 else None
        results.add(Figure(f"scale.validate.{count}", f"`envctl validate` of {count} teams, whole process", "s", validate))
        results.add(Figure(f"scale.preview.{count}", f"Validate + offline preview of {count} teams, whole process", "s",
                           [run.seconds], target=target))
        results.add(Figure(f"scale.preview_peak_mb.{count}", f"Validate + offline preview of {count} teams: peak memory",
                           "MB", [run.peak_rss_mb]))
        rows.append({"teams": count, "validate_s": statistics.median(validate), "preview_all_s": run.seconds,
                     "preview_in_process_s": report["preview_s"], "per_team_s": report["preview_s"] / count,
                     "first_team_s": report["first_team_s"], "other_teams_s": report["other_teams_s"],
                     "resources": report["resources"], "peak_mb": run.peak_rss_mb})
    results.tables["scale_preview"] = rows
    if len(rows) >= 2:
        results.add(growth_figure(rows))


def growth_figure(rows: list[dict[str, Any]]) -> Figure:
    """The exponent k in time ~ N^k between the smallest and largest N (1: linear; below 1: better).

    Taken over the teams after the first, whose preview also loads pulumi_aws's modules: with
    that fixed cost included, any growth would look better than linear at small N.
    """
    small, large = rows[0], rows[-1]
    exponent = (math.log(large["other_teams_s"] / small["other_teams_s"])
                / math.log((large["teams"] - 1) / (small["teams"] - 1)))
    return Figure("scale.preview_growth", f"Offline preview time growth exponent, N={small['teams']}..{large['teams']} "
                  "(time ~ N^k, first team left out; 1 = linear)", "k", [exponent], target=1.1)


def measure_scale_create(results: Results, root: Path, plan: Plan) -> None:
    teams = synthetic_names("bench-team", plan.scale_create_teams)
    rows = []
    for mode, parallel in (("sequential", 1), ("parallel", plan.parallel)):
        workspace = make_workspace(root, f"create-{mode}", examples=False, synthetic=teams)
        try:
            run = run_process(worker_argv("create-all", str(workspace.project), str(workspace.state_dir), str(parallel)),
                              cwd=workspace.project, env=workspace.env)
            report = run.check(f"sandbox create of {len(teams)} teams ({mode})").json()
        finally:
            stop_sandbox(workspace)
        label = f"Sandbox create of {len(teams)} teams, {mode}" + (f" (--parallel {parallel})" if parallel > 1 else "")
        results.add(Figure(f"scale.create.{mode}", label, "s", [report["seconds"]],
                           target=12.0 if mode == "parallel" else None))
        results.add(Figure(f"scale.create_peak_mb.{mode}", f"{label}: peak memory of envctl", "MB", [run.peak_rss_mb]))
        rows.append({"mode": mode, "parallel": parallel, "teams": len(teams), "seconds": report["seconds"],
                     "per_team_s": report["seconds"] / len(teams), "api_writes": report["api_writes"],
                     "envctl_peak_mb": run.peak_rss_mb, "server_peak_mb": report.get("server_peak_mb")})
    results.tables["scale_create"] = rows


# --- 6. make test, and the inference server ---------------------------------------------------


SLOWEST_TESTS = 8


def measure_make_test(results: Results) -> None:
    env = {**os.environ, "NO_COLOR": "1", "PYTEST_ADDOPTS": f"--durations={SLOWEST_TESTS}"}
    run = run_process(["make", "test"], cwd=REPO, env=env)
    lines = run.stdout.splitlines()
    summary = next((line for line in reversed(lines) if " in " in line and ("passed" in line or "failed" in line)), "")
    note = summary.strip("= ") + ("" if run.returncode == 0 else f" (exit {run.returncode})")
    results.add(Figure("make_test", "`make test` wall time", "s", [run.seconds], target=180.0, note=note))
    results.tables["make_test_slowest"] = slowest_tests(lines)


def slowest_tests(pytest_lines: list[str]) -> list[dict[str, Any]]:
    """pytest's --durations report: lines like `41.20s call     tests/engines/test_x.py::test_y`."""
    slowest = []
    for line in pytest_lines:
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].endswith("s") and parts[1] in ("call", "setup", "teardown"):
            try:
                seconds = float(parts[0][:-1])
            except ValueError:
                continue
            slowest.append({"seconds": seconds, "phase": parts[1], "test": parts[2]})
    return slowest[:SLOWEST_TESTS]


def measure_inference(results: Results, root: Path, plan: Plan) -> None:
    out = root / "inference.json"
    run = run_process([PYTHON, str(INFERENCE_SCRIPT), "--requests", str(plan.inference_requests),
                       "--concurrency", str(plan.inference_concurrency), "--out", str(out)], cwd=REPO, env=dict(os.environ))
    report = run.check("bench/inference_bench.py").json()
    shape = f"{report['requests']} requests, {report['concurrency']} clients, {report['workers']} workers"
    errors = f"; {report['errors']} errors" if report["errors"] else ""
    results.add(Figure("inference.requests_per_s", f"Inference server throughput ({shape})", "req/s",
                       [report["requests_per_s"]], better="higher", note=errors.lstrip("; ")))
    results.add(Figure("inference.p50_ms", "Inference server latency p50", "ms", [report["p50_ms"]]))
    results.add(Figure("inference.p99_ms", "Inference server latency p99", "ms", [report["p99_ms"]]))


def measure_fleet_plan(results: Results, root: Path, plan: Plan) -> None:
    """`envctl plan --changed --offline` of a template change across N generated teams (bench/fleet_plan.py)."""
    run = run_process([PYTHON, str(FLEET_PLAN_SCRIPT), "--teams", str(plan.fleet_teams)], cwd=REPO, env=dict(os.environ))
    report = run.check("bench/fleet_plan.py").json()
    count = report["teams"]
    results.add(Figure(f"fleet.plan_offline.{count}", f"Fleet plan offline of a template change, {count} teams "
                       "(`envctl plan --changed --offline`, both code versions), whole process", "s", [report["seconds"]],
                       target=60.0 if count == 200 else None, note=f"load average {report['load1']} at the end"))
    results.add(Figure(f"fleet.plan_offline_cpu.{count}", f"Fleet plan offline, {count} teams: CPU time of envctl and its "
                       "workers (wall time on an idle 2-core machine is about half)", "s", [report["cpu_s"]]))


# --- workers: run in their own process, so that time and peak memory are theirs alone ---------


def worker_preview_all(project: Path) -> dict[str, Any]:
    """Validate every request in the project, then run each team's program offline."""
    started = time.perf_counter()
    from provisioner.engines.offline import offline_registrations
    from provisioner.settings import load_settings
    from provisioner.spec import request_files, validate_files

    settings = load_settings(cwd=project)
    imported = time.perf_counter()
    resolved, errors = validate_files(request_files(project / "stacks"), default_region=settings.region,
                                      pool=settings.cidr_pool, prefix=settings.team_prefix)
    validated = time.perf_counter()
    resources = len(offline_registrations(resolved[0]))
    first_done = time.perf_counter()  # the first team also pays for loading pulumi_aws's modules
    resources += sum(len(offline_registrations(spec)) for spec in resolved[1:])
    finished = time.perf_counter()
    return {"teams": len(resolved), "errors": errors, "resources": resources, "import_s": imported - started,
            "validate_s": validated - imported, "preview_s": finished - validated,
            "first_team_s": first_done - validated, "other_teams_s": finished - first_done}


def worker_create_all(project: Path, state_dir: Path, parallel: int) -> dict[str, Any]:
    """Create every team of the project in a fresh sandbox, `parallel` at a time; the server is stopped after."""
    from concurrent.futures import ThreadPoolExecutor

    from provisioner.engines.sandbox.engine import SandboxEngine
    from provisioner.settings import load_settings
    from provisioner.spec import request_files, validate_files

    settings = load_settings({"state_dir": str(state_dir), "target": "sandbox"}, cwd=project)
    resolved, errors = validate_files(request_files(project / "stacks"), default_region=settings.region,
                                      pool=settings.cidr_pool, prefix=settings.team_prefix)
    if errors:
        raise BenchError("; ".join(errors))
    engine = SandboxEngine(settings)
    load_provider_modules()  # needed before threads; done in both modes so that they compare
    engine.server.ensure_started()
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            outcomes = list(pool.map(engine.up, resolved))
        seconds = time.perf_counter() - started
        server = engine.server.running()
        server_peak = _proc_peak_mb(server.pid) if server else None
    finally:
        engine.server.stop()
    return {"teams": len(outcomes), "seconds": seconds, "api_writes": sum(o.api_writes or 0 for o in outcomes),
            "created": sum(o.summary["create"] for o in outcomes), "server_peak_mb": server_peak}


def load_provider_modules() -> None:
    """Load the pulumi_aws submodules the program uses, for real, before threads start.

    preload_provider_modules() only creates pulumi's lazy module objects; the first attribute
    access loads each one, and two threads doing that at once fail ("module 'pulumi_aws.ec2' has
    no attribute 'Vpc'"). Touching an attribute of each here loads it while one thread runs.
    """
    import pulumi_aws

    from provisioner.program import PROVIDER_MODULES, preload_provider_modules

    preload_provider_modules()
    for name in PROVIDER_MODULES:
        hasattr(getattr(pulumi_aws, name), "__all__")


def _proc_peak_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_worker(argv: list[str]) -> int:
    kind, *rest = argv
    if kind == "preview-all":
        report = worker_preview_all(Path(rest[0]))
    elif kind == "create-all":
        report = worker_create_all(Path(rest[0]), Path(rest[1]), int(rest[2]))
    else:
        raise SystemExit(f"unknown worker {kind}")
    print(json.dumps(report))
    return 0


# --- machine facts ---------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    cpu_model = next((line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo") if line.startswith("model name")), "")
    memory_kb = next((int(line.split()[1]) for line in _read_lines("/proc/meminfo") if line.startswith("MemTotal:")), 0)
    return {
        "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "cpu_model": cpu_model,
        "memory_gb": round(memory_kb / 1024 / 1024, 1), "python": platform.python_version(),
        "platform": platform.platform(), "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


# --- reporting -------------------------------------------------------------------------------


def results_json(results: Results, plan: Plan, started: dt.datetime, elapsed_s: float) -> dict[str, Any]:
    return {
        "schema": 1,
        "generated_at": started.isoformat(timespec="seconds"),
        "mode": plan.name + ("" if plan.make_test else ", without make test"),
        "elapsed_s": round(elapsed_s, 1),
        "machine": machine_facts(),
        "load": results.load,
        "figures": {key: figure.to_json() for key, figure in results.figures.items()},
        "tables": results.tables,
        "problems": results.problems,
    }


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit in ("calls", "req/s", "MB"):
        return f"{value:,.0f} {unit}"
    if unit in ("x", "k"):
        return f"{value:.2f}{'×' if unit == 'x' else ''}"
    if unit == "s" and value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} {unit}"


def format_target(figure: Figure) -> str:
    if figure.target is None:
        return ""
    sign = "≥" if figure.better == "higher" else "≤"
    return f"{sign} {format_value(figure.target, figure.unit)}"


def format_met(figure: Figure) -> str:
    return {True: "met", False: "**missed**", None: ""}[figure.met]


def figures_table(results: dict[str, Any]) -> list[str]:
    lines = ["| Measurement | Median | Best | Runs | Target | Met |", "|---|---:|---:|---:|---|---|"]
    for data in results["figures"].values():
        figure = Figure(**{k: data[k] for k in ("key", "label", "unit", "runs", "target", "better", "aggregate", "note")})
        label = figure.label + (f" — {figure.note}" if figure.note else "")
        value = format_value(figure.value, figure.unit) + (" (worst)" if figure.aggregate == "max" else "")
        lines.append(f"| {label} | {value} | {format_value(figure.best, figure.unit)} | {len(figure.runs)} | "
                     f"{format_target(figure)} | {format_met(figure)} |")
    return lines


def scale_tables(tables: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if rows := tables.get("scale_preview"):
        lines += ["", "Scale, offline: N synthetic teams (copies of the example request, networks from the pool).", "",
                  "| Teams | `envctl validate` | validate + preview all (process) | preview in-process | per team | peak memory |",
                  "|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['teams']} | {format_value(r['validate_s'], 's')} | {format_value(r['preview_all_s'], 's')} | "
                  f"{format_value(r['preview_in_process_s'], 's')} | {format_value(r['per_team_s'], 's')} | "
                  f"{format_value(r['peak_mb'], 'MB')} |" for r in rows]
    if rows := tables.get("scale_create"):
        lines += ["", "Scale, sandbox: create of many teams in one fresh sandbox (in-process engine, one server).", "",
                  "| Mode | Teams | Time | Per team | Write calls | envctl peak memory | moto server peak memory |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['mode']} ({r['parallel']} at once) | {r['teams']} | {format_value(r['seconds'], 's')} | "
                  f"{format_value(r['per_team_s'], 's')} | {format_value(r['api_writes'], 'calls')} | "
                  f"{format_value(r['envctl_peak_mb'], 'MB')} | {format_value(r['server_peak_mb'], 'MB')} |" for r in rows]
    if rows := tables.get("make_test_slowest"):
        lines += ["", "Slowest tests of `make test` (pytest --durations):", ""]
        lines += [f"- {format_value(r['seconds'], 's')} {r['phase']} `{r['test']}`" for r in rows]
    return lines


def machine_line(data: dict[str, Any]) -> str:
    machine = data["machine"]
    loads = [entry["load1"] for entry in data["load"]]
    load = f"load average (1 min) during the run {min(loads):.1f}–{max(loads):.1f}" if loads else ""
    return (f"_{data['mode'].capitalize()} run of `make bench` on {data['generated_at'][:16].replace('T', ' ')} UTC, "
            f"{data['elapsed_s']:.0f} s: {machine['usable_cores']} cores ({machine['cpu_model'] or 'unknown CPU'}), "
            f"{machine['memory_gb']} GB, Python {machine['python']}, {machine['platform']}, commit {machine['commit']}"
            f"{' with uncommitted changes' if machine['uncommitted_changes'] else ''}; {load}._")


def markdown_block(data: dict[str, Any]) -> str:
    lines = [BEGIN, "", machine_line(data), "", *figures_table(data), *scale_tables(data["tables"])]
    if data["problems"]:
        lines += ["", "Not measured in this run:", ""] + [f"- {problem}" for problem in data["problems"]]
    return "\n".join(lines + ["", END])


DOC_SKELETON = """# Performance

How fast envctl is where users wait, measured with `make bench` (bench/run.py) on the machine
named below. The block between the markers is regenerated by every run; everything else in this
file is written by hand and kept. `make bench-check` re-measures and fails when a figure got more
than 2× worse than the committed bench/results/latest.json.

## Benchmarks

{block}
"""


def update_doc(doc: Path, block: str) -> None:
    """Replace only the generated block; create the file, or append the block, when it is missing."""
    if not doc.exists():
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(DOC_SKELETON.format(block=block))
        return
    text = doc.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        doc.write_text(head + block + tail)
    else:
        doc.write_text(text.rstrip("\n") + "\n\n## Benchmarks\n\n" + block + "\n")


# --- the run ---------------------------------------------------------------------------------


def section(results: Results, name: str, measure: Callable[[], None]) -> None:
    """Run one measurement; a failure is recorded and the run goes on with the next."""
    print(f"bench: {name} …", file=sys.stderr, flush=True)
    results.note_load(name, "start")
    started = time.perf_counter()
    try:
        measure()
    except Exception as exc:  # noqa: BLE001 - a failed measurement is reported; the others still run
        results.problems.append(f"{name}: {exc}")
        print(f"bench: {name} failed: {exc}", file=sys.stderr)
    results.note_load(name, "end")
    print(f"bench: {name} took {time.perf_counter() - started:.0f} s", file=sys.stderr)


def run_all(plan: Plan, root: Path) -> Results:
    results = Results()
    examples = make_workspace(root, "examples")
    ratio_teams = synthetic_names("bench-ratio", plan.create_runs)
    sandbox = make_workspace(root, "sandbox", examples=False, synthetic=ratio_teams)
    section(results, "CLI cold start", lambda: measure_cold_start(results, examples, plan))
    section(results, "offline preview", lambda: measure_offline_preview(results, examples, plan))
    section(results, "sandbox create vs raw boto3, no-change re-run",
            lambda: measure_sandbox(results, sandbox, ratio_teams, plan))
    section(results, "scale: offline preview", lambda: measure_scale_preview(results, root, plan))
    section(results, "scale: sandbox create", lambda: measure_scale_create(results, root, plan))
    section(results, "inference server", lambda: measure_inference(results, root, plan))
    section(results, "fleet plan offline", lambda: measure_fleet_plan(results, root, plan))
    if plan.make_test:
        section(results, "make test", lambda: measure_make_test(results))
    return results


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and smaller N: a smoke run of a minute or two")
    parser.add_argument("--skip-make-test", action="store_true", help="do not time `make test`")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the results JSON (default: bench/results/latest.json)")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="the Markdown whose generated block is rewritten")
    parser.add_argument("--no-doc", action="store_true", help="write the JSON only")
    parser.add_argument("--render-only", action="store_true",
                        help="measure nothing: rewrite the doc's generated block from the results JSON (--out)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    if argv[:1] == ["worker"]:
        return run_worker(argv[1:])
    args = parse_args(argv)
    if args.render_only:
        update_doc(args.doc, markdown_block(json.loads(args.out.read_text())))
        return 0
    plan = Plan.quick() if args.quick else Plan()
    if args.skip_make_test:
        plan = replace(plan, make_test=False)
    started_at = dt.datetime.now(dt.timezone.utc)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="envctl-bench-") as root:
        results = run_all(plan, Path(root))
    data = results_json(results, plan, started_at, time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"bench: wrote {args.out}", file=sys.stderr)
    if not args.no_doc:
        update_doc(args.doc, markdown_block(data))
        print(f"bench: updated {args.doc}", file=sys.stderr)
    print("\n".join(figures_table(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
