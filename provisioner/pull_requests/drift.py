"""Drift: every team with an environment on the target refreshed (its engine reads the real
resources back and records them), and what differs from what envctl last applied reported per team:
the scheduled drift workflow keeps one issue up to date with it.

A refresh changes no resource; it updates the recorded state (Pulumi's refresh; the sandbox forgets
what vanished), so the next apply of a drifted team puts back what the request says.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from provisioner.engines.base import Engine, Progress, no_progress
from provisioner.pull_requests.batch import (
    DEFAULT_PARALLEL,
    existing_stacks,
    failure_text,
    prepare_for_threads,
    run_bounded,
    team_progress,
    validate_stacks,
)
from provisioner.settings import Settings
from provisioner.spec import ResolvedSpec

IN_SYNC, DRIFTED, FAILED, NO_REQUEST = "in sync", "drifted", "failed", "no request"


@dataclass
class TeamDrift:
    team: str
    status: str  # in sync | drifted | failed | no request
    changes: list[dict[str, str]] = field(default_factory=list)  # type, name, action, detail
    message: str = ""
    duration_s: float = 0.0

    @property
    def drifted(self) -> bool:
        return self.status in (DRIFTED, NO_REQUEST)

    def to_json(self) -> dict[str, Any]:
        return {"team": self.team, "status": self.status, "drifted": self.drifted, "changes": self.changes,
                "message": self.message, "duration_s": round(self.duration_s, 3)}


@dataclass
class DriftReport:
    target: str
    checked_at: str
    teams: list[TeamDrift]

    @property
    def drifted(self) -> list[TeamDrift]:
        return [t for t in self.teams if t.drifted]

    @property
    def failed(self) -> list[TeamDrift]:
        return [t for t in self.teams if t.status == FAILED]

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "checked_at": self.checked_at, "drifted": [t.team for t in self.drifted],
                "failed": [t.team for t in self.failed], "teams": [t.to_json() for t in self.teams]}


def _check(engine: Engine, team: str, spec: ResolvedSpec | None, progress: Progress) -> TeamDrift:
    report = team_progress(progress, team)
    if spec is None:
        report(NO_REQUEST)
        return TeamDrift(team, NO_REQUEST, message="an environment without a valid request in stacks/: "
                                                   "restore the request, or remove it and apply with --allow-destroy")
    started = time.monotonic()
    report("refreshing")
    try:
        result = engine.refresh(spec, report)
    except Exception as exc:  # noqa: BLE001 - one team's failure is reported, the others go on
        drift = TeamDrift(team, FAILED, message=failure_text(exc), duration_s=time.monotonic() - started)
        report(f"failed: {drift.message}")
        return drift
    changes = [{"type": c.type, "name": c.name, "action": c.action, "detail": c.detail}
               for c in result.changes if c.action != "same"]
    drift = TeamDrift(team, DRIFTED if changes else IN_SYNC, changes=changes, duration_s=time.monotonic() - started,
                      message=f"{len(changes)} resource(s) differ from the last apply" if changes else "")
    report(drift.status + (f": {drift.message}" if drift.message else ""))
    return drift


def check_drift(settings: Settings, engine: Engine, *, parallel: int = DEFAULT_PARALLEL,
                progress: Progress = no_progress) -> DriftReport:
    """Refresh every team with an environment on the target, at most `parallel` at once."""
    resolved, _errors = validate_stacks(settings)  # an invalid request's team is reported, not refreshed
    teams = sorted(existing_stacks(engine))
    checked_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if teams:
        prepare_for_threads(engine, progress)
    results = run_bounded(teams, lambda team: _check(engine, team, resolved.get(team), progress), parallel)
    return DriftReport(settings.target, checked_at, results)


def render_drift_markdown(report: DriftReport) -> str:
    """The drift issue's body."""
    lines = [f"## envctl drift on {report.target}", "",
             f"Checked {report.checked_at}: {len(report.drifted)} of {len(report.teams)} team(s) drifted"
             + (f", {len(report.failed)} could not be checked" if report.failed else "") + ".", ""]
    if report.teams:
        lines += ["| team | status | resources that differ |", "|---|---|---|"]
        lines += [f"| {t.team} | {t.status} | {len(t.changes) if t.changes else '-'} |" for t in report.teams]
        lines.append("")
    for team in report.teams:
        if not (team.changes or team.message) or team.status == IN_SYNC:
            continue
        lines += [f"### {team.team}", ""]
        if team.message:
            lines += [team.message, ""]
        lines += [f"- `{c['type']}` {c['name']}: {c['action']}" + (f" ({c['detail']})" if c["detail"] else "")
                  for c in team.changes]
        if team.changes:
            lines += ["", f"To put back what the request says: `envctl apply stacks/{team.team}.yaml` "
                          "(or the apply workflow with that team's next change)."]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
