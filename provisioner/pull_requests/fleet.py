"""Which teams a program change affects: each team's offline run of the change's code against the
offline run of the merge base's code (extracted with `git archive`), resource by resource.

A resource whose inputs (less its ignore_changes) differ is updated or replaced by the sandbox
planner's rules (engines/sandbox/planner.py: the handler's replace_on keys and the resource's
replace_on_changes force a replace, so does a type that cannot be updated); one only the change
registers is created, one only the base registers is deleted. A team whose runs are equal is not
affected. Nothing here contacts a target or needs credentials.

The runs happen in long-lived worker processes (fleet_worker.py), one code version each, all at
once: the two versions cannot share a process (each imports its own `provisioner`), and two cores
run the two sides side by side.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.engines.base import ResourceChange
from provisioner.errors import EnvctlError
from provisioner.settings import Settings

WORKER = Path(__file__).with_name("fleet_worker.py")
INSTALLED_ROOT = Path(__file__).resolve().parents[2]  # the code of the envctl that runs now

# What holds a team's data: a change to one of these is listed at the top of the plan.
DATA_TYPE_PREFIXES = ("aws:ebs/volume:", "aws:ec2/volumeAttachment:", "aws:s3/bucket", "aws:kms/", "aws:rds/",
                      "aws:dynamodb/", "aws:efs/")


def touches_data(change: ResourceChange) -> bool:
    return change.action in ("update", "replace", "delete") and change.type.startswith(DATA_TYPE_PREFIXES)


@dataclass
class TeamImpact:
    team: str
    environment: str = ""
    changes: list[ResourceChange] = field(default_factory=list)  # what differs; none when not affected
    error: str = ""  # a side's run failed: the team counts as affected, to be previewed

    @property
    def affected(self) -> bool:
        return bool(self.changes or self.error)


def _is_code_root(folder: Path) -> bool:
    return (folder / "provisioner" / "program.py").is_file()


def _git_archive(repo: Path, commit: str, into: Path) -> None:
    archive = subprocess.Popen(["git", "-C", str(repo), "archive", "--format=tar", commit], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout, capture_output=True, check=False)
    assert archive.stdout is not None
    archive.stdout.close()
    error = archive.stderr.read().decode() if archive.stderr else ""
    if archive.wait() != 0 or untar.returncode != 0:
        raise EnvctlError(f"could not extract the merge base {commit[:12]} with git archive: "
                          f"{(error or untar.stderr.decode()).strip()}")


@dataclass(frozen=True)
class _Side:
    code_root: Path
    project: Path
    stacks: Path


def _run_side(side: _Side, teams: list[str], answers: dict[str, dict], failures: list[str]) -> None:
    env = {key: value for key, value in os.environ.items() if key not in ("ENVCTL_CONFIG", "PYTHONPATH")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    process = subprocess.Popen([sys.executable, str(WORKER), str(side.code_root), str(side.project), str(side.stacks)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=str(side.project))
    out, err = process.communicate("".join(f"{team}\n" for team in teams))
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines or not lines[0].get("ready"):
        tail = " | ".join(err.strip().splitlines()[-3:]) or f"exit code {process.returncode}"
        failures.append(f"the offline run of {side.code_root} failed: {tail}")
        return
    for answer in lines[1:]:
        answers[answer["team"]] = answer


def _run_sides(sides: list[tuple[_Side, list[str], dict[str, dict]]]) -> list[str]:
    failures: list[str] = []
    threads = [threading.Thread(target=_run_side, args=(side, teams, answers, failures), daemon=True)
               for side, teams, answers in sides if teams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def _chunks(items: list[str], count: int) -> list[list[str]]:
    return [items[index::count] for index in range(count)]


def workers_per_side() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // 2)


def run_both(head: _Side, base: _Side | None, teams: list[str]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Every team's offline run under the change's code and under the base's, side by side."""
    head_answers: dict[str, dict] = {}
    base_answers: dict[str, dict] = {}
    per_side = workers_per_side()
    work = [(head, chunk, head_answers) for chunk in _chunks(teams, per_side)]
    if base is not None:
        work += [(base, chunk, base_answers) for chunk in _chunks(teams, per_side)]
    failures = _run_sides(work)
    if failures:
        raise EnvctlError("; ".join(failures), hint="run `envctl preview <team> --offline` to see the program fail")
    return head_answers, base_answers


def _registration(raw: dict[str, Any]):
    from provisioner.engines.mocked import Registration

    return Registration(urn=raw["urn"], type=raw["type"], name=raw["name"], parent="", custom=True,
                        inputs=raw["inputs"], dependencies=[], provider="", ignore_changes=raw["ignore_changes"],
                        replace_on_changes=raw["replace_on_changes"])


def compare_runs(head: list[dict[str, Any]], base: list[dict[str, Any]]) -> list[ResourceChange]:
    """The resources whose inputs differ between two runs, as the sandbox planner would act on them."""
    from provisioner.engines.sandbox.handlers import handler_for
    from provisioner.engines.sandbox.planner import SAME, UNHANDLED, plan
    from provisioner.engines.sandbox.state import StoredResource, inputs_hash

    before = {raw["urn"]: raw for raw in base}
    changes: list[ResourceChange] = []
    for raw in head:
        reg = _registration(raw)
        old = before.pop(raw["urn"], None)
        if old is None:
            changes.append(ResourceChange(urn=reg.urn, type=reg.type, name=reg.name, action="create"))
            continue
        prior = StoredResource(urn=old["urn"], type=old["type"], name=old["name"], id="", inputs=old["inputs"], outputs={},
                               inputs_hash=inputs_hash(old["inputs"], raw["ignore_changes"]))
        action = plan(reg, prior, handler_for(reg.type))
        if action.kind == SAME or (action.kind == UNHANDLED and action.change("").action == SAME):
            continue
        changes.append(action.change(""))
    changes += [ResourceChange(urn=raw["urn"], type=raw["type"], name=raw["name"], action="delete") for raw in before.values()]
    return changes


def _impact(team: str, head: dict | None, base: dict | None) -> TeamImpact:
    head, base = head or {"missing": True}, base or {"missing": True}
    impact = TeamImpact(team, environment=head.get("environment") or base.get("environment") or "")
    error = head.get("error") or base.get("error")
    if error:
        impact.error = f"offline run failed: {error}"
    elif not head.get("missing"):
        impact.changes = compare_runs(head["resources"], base.get("resources") or [])
    elif not base.get("missing"):
        impact.changes = compare_runs([], base["resources"])
    return impact


def fleet_impacts(settings: Settings, repo: Path | None, merge_base: str | None, teams: list[str]) -> dict[str, TeamImpact]:
    """Team -> what the change does to its resources, from offline runs of both versions of the code.

    Without a merge base (explicit request files) the base side is empty: everything is a create.
    """
    if not teams:
        return {}
    head_code = settings.root if _is_code_root(settings.root) else INSTALLED_ROOT
    head = _Side(head_code, settings.root, settings.stacks_dir)
    with tempfile.TemporaryDirectory(prefix="envctl-base-") as folder:
        base = None
        if repo is not None and merge_base:
            _git_archive(repo, merge_base, Path(folder))
            project = Path(folder) / settings.root.resolve().relative_to(repo)
            stacks = project / settings.stacks_dir.resolve().relative_to(settings.root.resolve())
            base = _Side(project if _is_code_root(project) else INSTALLED_ROOT, project, stacks)
        head_answers, base_answers = run_both(head, base, teams)
        shutil.rmtree(folder, ignore_errors=True)
    return {team: _impact(team, head_answers.get(team), base_answers.get(team)) for team in teams}
