"""The apply of a change: new and changed teams created or updated, removed ones destroyed only
when allowed, each team to its own end (side by side)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from provisioner.engines.base import Engine, OperationResult, Progress, no_progress
from provisioner.errors import InvalidInput
from provisioner.pull_requests.batch import (
    DEFAULT_PARALLEL,
    existing_stacks,
    failure_text,
    prepare_for_threads,
    run_bounded,
    team_progress,
    validate_stacks,
)
from provisioner.pull_requests.changes import PROGRAM_CHANGE, REMOVE, ChangeSet, RequestChange
from provisioner.settings import Settings
from provisioner.spec import ResolvedSpec, display_path


OK, FAILED, REFUSED = "ok", "failed", "refused"


@dataclass
class TeamResult:
    team: str
    action: str
    outcome: str  # ok | failed | refused
    message: str = ""
    summary: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "duration_s": round(self.duration_s, 3)}


def _refusal(change: RequestChange, settings: Settings, resources: int, rerun: str) -> TeamResult:
    request = display_path(change.path, settings.root)
    return TeamResult(change.team, REMOVE, REFUSED, message=(
        f"{request} was removed, which would destroy the environment of {change.team} ({resources} resources); "
        f"nothing was touched. To destroy it, run `{rerun} --allow-destroy` (the data bucket and its key are kept); "
        f"to keep it, restore {request}"))


def _apply_one(engine: Engine, change: RequestChange, spec: ResolvedSpec | None, progress: Progress) -> TeamResult:
    started = time.monotonic()
    report = team_progress(progress, change.team)
    try:
        if change.action == REMOVE:
            result: OperationResult = engine.destroy(change.team, delete_data=False, progress=report)
        else:
            result = engine.up(spec, report)
    except Exception as exc:  # noqa: BLE001 - one team's failure is reported, the others go on
        return TeamResult(change.team, change.action, FAILED, message=failure_text(exc),
                          duration_s=time.monotonic() - started)
    verb = "destroyed" if change.action == REMOVE else "applied"
    return TeamResult(change.team, change.action, OK, message=verb, summary=result.summary,
                      duration_s=time.monotonic() - started, warnings=result.warnings)


def apply_requests(settings: Settings, change_set: ChangeSet, engine: Engine, *, allow_destroy: bool = False,
                   parallel: int = DEFAULT_PARALLEL, progress: Progress = no_progress,
                   rerun: str = "envctl apply") -> list[TeamResult]:
    """Create or update the new and changed teams and destroy removed ones (only with allow_destroy).

    Nothing is touched when any request in stacks/ is invalid. Every team runs to its own end;
    the results come back in team order.
    """
    resolved, errors = validate_stacks(settings)
    if errors:
        raise InvalidInput(f"{len(errors)} problem(s) in the requests; nothing was applied", errors=errors)
    missing = [c for c in change_set.changes if c.action != REMOVE and c.team not in resolved]
    if missing:
        raise InvalidInput("no valid request for " + ", ".join(c.team for c in missing) + "; nothing was applied")
    results: list[TeamResult] = []
    work: list[RequestChange] = []
    needs_stacks = any(c.action in (REMOVE, PROGRAM_CHANGE) for c in change_set.changes)
    stacks = existing_stacks(engine) if needs_stacks else {}
    for change in change_set.changes:
        if change.action == PROGRAM_CHANGE and change.team not in stacks:
            results.append(TeamResult(change.team, PROGRAM_CHANGE, OK,
                                      message="no environment on this target: the program change waits for its create"))
        elif change.action != REMOVE:
            work.append(change)
        elif change.team not in stacks:
            results.append(TeamResult(change.team, REMOVE, OK, message="no environment on this target: nothing to destroy"))
        elif not allow_destroy:
            results.append(_refusal(change, settings, stacks[change.team], rerun))
        else:
            work.append(change)
    if work:
        prepare_for_threads(engine, progress)
        results += run_bounded(work, lambda c: _apply_one(engine, c, resolved.get(c.team), progress), parallel)
    return sorted(results, key=lambda r: r.team)
