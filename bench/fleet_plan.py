"""The offline plan of a fleet change: N generated teams, one program change, `envctl plan --offline`.

Builds a temporary git project holding envctl's code (provisioner/, templates/, userdata/,
pyproject.toml) and N copies of the example request (networks from the pool) on main, changes the
Airflow containers' settings in the compose template on a branch, and times the whole
`envctl plan --changed --base main --offline --json` process: every team's offline run of the
change's code against the merge base's, both sides in worker processes. Prints JSON: the wall
time, and the CPU time of envctl and its workers (on a loaded machine the wall time is the CPU
time shared with others; on an idle 2-core machine it is about half the CPU time).

    .venv/bin/python bench/fleet_plan.py [--teams 200] [--out fleet.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENVCTL = str(Path(sys.executable).parent / "envctl")
EXAMPLE_TEAM = "fraud"
COMPOSE = Path("templates") / "docker-compose.yml.j2"
GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=GIT_ENV)


def make_project(root: Path, teams: int) -> Path:
    import yaml

    project = root / "project"
    (project / "stacks").mkdir(parents=True)
    for folder in ("provisioner", "templates", "userdata"):
        shutil.copytree(REPO / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    (project / "envctl.toml").write_text(f'target = "sandbox"\nregion = "eu-west-1"\nstate_dir = "{root / "state"}"\n')
    template = yaml.safe_load((REPO / "stacks" / f"{EXAMPLE_TEAM}.yaml").read_text())
    template.pop("network", None)
    for index in range(1, teams + 1):
        team = f"fleet-team-{index:03d}"
        (project / "stacks" / f"{team}.yaml").write_text(yaml.safe_dump({**template, "team": team}, sort_keys=False))
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the fleet")
    git(project, "checkout", "-q", "-b", "change")
    compose = project / COMPOSE
    text = compose.read_text()
    changed = re.sub(r"^(\s*)(AIRFLOW__CORE__LOAD_EXAMPLES:.*)$", r"\1\2\n\1AIRFLOW__CORE__DEFAULT_TIMEZONE: utc", text,
                     count=1, flags=re.M)
    if changed == text:
        raise SystemExit(f"bench/fleet_plan.py: found no AIRFLOW__CORE__LOAD_EXAMPLES line in {COMPOSE}")
    compose.write_text(changed)
    git(project, "commit", "-q", "-am", "Airflow: UTC")
    return project


def measure(teams: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="envctl-fleet-bench-") as folder:
        project = make_project(Path(folder), teams)
        env = {key: value for key, value in os.environ.items() if not key.startswith("ENVCTL_")}
        env.update(NO_COLOR="1", TERM="dumb")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([ENVCTL, "plan", "--changed", "--base", "main", "--offline", "--json"], cwd=project, env=env,
                              capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # envctl and its workers
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise SystemExit(f"envctl plan --offline exited with {done.returncode}: {tail}")
    plan = json.loads(done.stdout)
    fleet = plan["fleet"]
    return {"teams": teams, "seconds": round(seconds, 3), "per_team_s": round(seconds / teams, 4),
            "cpu_s": round(cpu_s, 3), "load1": round(os.getloadavg()[0], 2),
            "teams_total": fleet["teams_total"], "teams_affected": fleet["teams_affected"],
            "replacements": len(fleet["replacements"]), "cpus": len(os.sched_getaffinity(0))}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teams", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    report = measure(args.teams)
    if report["teams_affected"] != args.teams:
        raise SystemExit(f"the template change should affect every team: {report}")
    text = json.dumps(report)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
