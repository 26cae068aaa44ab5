"""The apply of a change: new and changed teams created or updated, removed ones destroyed only
when allowed. A change of requests runs each team to its own end (side by side); a fleet change
(the program changed) rolls out in waves, dev teams first, then prod, and stops at the first
failure (provisioner/pull_requests/waves.py)."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

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
from provisioner.pull_requests.waves import Wave, rollout_waves
from provisioner.settings import Settings
from provisioner.spec import ResolvedSpec, display_path


OK, FAILED, REFUSED, NOT_STARTED = "ok", "failed", "refused", "not started"
UP_TO_DATE = "up to date"


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
    report("destroying" if change.action == REMOVE else f"applying ({change.action})")
    try:
        if change.action == REMOVE:
            result: OperationResult = engine.destroy(change.team, delete_data=False, progress=report)
        else:
            result = engine.up(spec, report)
    except Exception as exc:  # noqa: BLE001 - one team's failure is reported, the others go on
        failed = TeamResult(change.team, change.action, FAILED, message=failure_text(exc),
                            duration_s=time.monotonic() - started)
        report(f"failed: {failed.message}")
        return failed
    verb = "destroyed" if change.action == REMOVE else "applied" if result.changed else UP_TO_DATE
    counts = ", ".join(f"{n} {a}" for a, n in result.summary.items() if n and a != "same")
    report(verb + (f" ({counts})" if counts and verb != UP_TO_DATE else ""))
    return TeamResult(change.team, change.action, OK, message=verb, summary=result.summary,
                      duration_s=time.monotonic() - started, warnings=result.warnings)


@dataclass
class ApplyReport:
    """What an apply did: every team's result (in team order) and the waves it rolled out in."""

    results: list[TeamResult]
    waves: list[Wave] = field(default_factory=list)
    fleet: bool = False
    stopped_by: list[str] = field(default_factory=list)  # the failures that stopped a fleet rollout

    @property
    def ok(self) -> bool:
        return all(r.outcome == OK for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {"fleet": self.fleet, "stopped": bool(self.stopped_by), "stopped_by": self.stopped_by,
                "waves": [w.to_json() for w in self.waves], "results": [r.to_json() for r in self.results]}


def _not_started(change: RequestChange, reason: str) -> TeamResult:
    return TeamResult(change.team, change.action, NOT_STARTED, message=reason)


def _run_wave(wave: Wave, work: Callable[[RequestChange], TeamResult], parallel: int, stop: threading.Event,
              stopped_by: list[str]) -> list[TeamResult]:
    """The wave's teams, at most `parallel` at once; in a fleet wave no team starts after a failure."""

    def one(change: RequestChange) -> TeamResult:
        if stop.is_set():
            return _not_started(change, f"not started: {', '.join(stopped_by)} failed first; re-run to resume")
        result = work(change)
        if result.outcome == FAILED and wave.stop_at_first_failure:
            stopped_by.append(change.team)
            stop.set()
        return result

    return run_bounded(wave.changes, one, parallel)


def apply_requests(settings: Settings, change_set: ChangeSet, engine: Engine, *, allow_destroy: bool = False,
                   parallel: int = DEFAULT_PARALLEL, progress: Progress = no_progress,
                   rerun: str = "envctl apply") -> list[TeamResult]:
    """`rollout`'s results only."""
    return rollout(settings, change_set, engine, allow_destroy=allow_destroy, parallel=parallel, progress=progress,
                   rerun=rerun).results


def only_teams(change_set: ChangeSet, teams: list[str]) -> ChangeSet:
    """The change set narrowed to `teams` (a matrix job's one team); a team not in it is invalid input."""
    named = {c.team for c in change_set.changes}
    unknown = [team for team in teams if team not in named]
    if unknown:
        raise InvalidInput(f"--team: {', '.join(unknown)} is not in this change; the teams it touches are: "
                           + (", ".join(sorted(named)) or "none"))
    return replace(change_set, changes=[c for c in change_set.changes if c.team in teams])


def rollout(settings: Settings, change_set: ChangeSet, engine: Engine, *, allow_destroy: bool = False,
            parallel: int = DEFAULT_PARALLEL, progress: Progress = no_progress, rerun: str = "envctl apply",
            on_wave: Callable[[Wave, int], None] | None = None) -> ApplyReport:
    """Create or update the new and changed teams and destroy removed ones (only with allow_destroy).

    Nothing is touched when any request in stacks/ is invalid. A change of requests runs every team
    to its own end; a fleet change goes out in waves (dev, then prod) and stops at the first failure,
    leaving the rest "not started". The results come back in team order.
    """
    resolved, errors = validate_stacks(settings)
    if errors:
        raise InvalidInput(f"{len(errors)} problem(s) in the requests; nothing was applied", errors=errors)
    missing = [c for c in change_set.changes if c.action != REMOVE and c.team not in resolved]
    if missing:
        raise InvalidInput("no valid request for " + ", ".join(c.team for c in missing) + "; nothing was applied")
    results, work = plan_work(settings, change_set, engine, allow_destroy=allow_destroy, rerun=rerun)
    waves = rollout_waves(change_set, work, resolved)
    report = ApplyReport(results, waves, fleet=change_set.is_fleet)
    if waves:
        prepare_for_threads(engine, progress)
        stop = threading.Event()
        for wave in waves:
            if stop.is_set():
                report.results += [_not_started(c, f"not started: the rollout stopped in an earlier wave "
                                                   f"({', '.join(report.stopped_by)} failed); re-run to resume")
                                   for c in wave.changes]
                continue
            if on_wave:
                on_wave(wave, len(waves))
            report.results += _run_wave(wave, lambda c: _apply_one(engine, c, resolved.get(c.team), progress),
                                        parallel, stop, report.stopped_by)
    report.results.sort(key=lambda r: r.team)
    return report


def plan_work(settings: Settings, change_set: ChangeSet, engine: Engine, *, allow_destroy: bool,
              rerun: str = "envctl apply") -> tuple[list[TeamResult], list[RequestChange]]:
    """The teams settled without work (a program change with no environment to change, a removal of
    nothing, a refused removal) and the changes that have work to do."""
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
    return results, work


def rollout_plan(settings: Settings, change_set: ChangeSet, engine: Engine) -> dict[str, Any]:
    """The waves an apply of `change_set` would roll out in, each with its GitHub Actions matrix; the
    teams settled without work (no environment to change, a refused removal) are listed apart.
    Removals are in their wave: the apply job refuses them unless the run allows destroying."""
    resolved, errors = validate_stacks(settings)
    if errors:
        raise InvalidInput(f"{len(errors)} problem(s) in the requests; nothing can be rolled out", errors=errors)
    settled, work = plan_work(settings, change_set, engine, allow_destroy=True)
    waves = rollout_waves(change_set, work, resolved)
    return {"base": change_set.base, "fleet": change_set.is_fleet,
            "waves": [{**w.to_json(), "matrix": w.matrix()} for w in waves],
            "settled": [{"team": r.team, "action": r.action, "message": r.message} for r in settled]}
