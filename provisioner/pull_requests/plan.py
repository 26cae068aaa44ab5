"""The plan of a change: every request in stacks/ validated, every valid new or changed team
previewed (side by side), every removal sized."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from provisioner.engines.base import ACTIONS, Engine, Progress, ResourceChange, no_progress
from provisioner.errors import EnvctlError, InvalidInput
from provisioner.pull_requests.batch import (
    DEFAULT_PARALLEL,
    existing_stacks,
    failure_text,
    prepare_for_threads,
    run_bounded,
    team_progress,
    validate_stacks,
)
from provisioner.pull_requests.changes import CHANGE, PROGRAM_CHANGE, REMOVE, ChangeSet, RequestChange
from provisioner.pull_requests.costs import planned_cost
from provisioner.pull_requests.fleet import TeamImpact, touches_data
from provisioner.pull_requests.notable import notable_changes, parse_old_request, requested_settings
from provisioner.settings import Settings
from provisioner.spec import ResolvedSpec, display_path


@dataclass
class TeamPlan:
    team: str
    action: str
    request: str  # display path of the request file (the removed file for a removal)
    old_request: str = ""  # display path at the base when the file was renamed
    region: str = ""
    cidr: str = ""
    errors: list[str] = field(default_factory=list)
    notable: list[str] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)
    changes: list[ResourceChange] = field(default_factory=list)
    failure: str = ""  # the preview failed
    note: str = ""
    monthly_usd: float | None = None  # the request's estimate (cost.py); 0 for a removal, None when invalid
    monthly_usd_delta: float | None = None  # minus the base's request's estimate; None without a base to compare
    budget_usd_month: int | None = None
    cost_note: str = ""  # why there is no estimate, or that it is over budget
    environment: str = ""  # dev | prod (the request's)
    affected: bool = True  # False: a fleet change that leaves this team's resources as they are

    @property
    def status(self) -> str:
        return "invalid" if self.errors else "failed" if self.failure else "ok"

    def to_json(self) -> dict[str, Any]:
        data = {key: value for key, value in asdict(self).items() if key != "changes"}
        data["status"] = self.status
        data["changes"] = [asdict(c) for c in self.changes if c.action != "same"]
        return data


@dataclass
class FleetSummary:
    """A program change across the fleet: how many teams it changes, and what a reviewer must see first."""

    program_paths: list[str]
    teams_total: int
    teams_affected: int
    replacements: list[dict[str, str]] = field(default_factory=list)  # {team, type, name, detail}
    data_touching: list[dict[str, str]] = field(default_factory=list)  # {team, type, name, action, detail}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    target: str
    teams: list[TeamPlan]
    errors: list[str]  # every validation error in stacks/
    other_errors: list[str]  # those that belong to no team of this change
    base: str | None = None
    merge_base: str | None = None
    fleet: FleetSummary | None = None  # the change touches the program
    offline: bool = False  # compared offline only: nothing was previewed on the target

    @property
    def exit_code(self) -> int:
        if self.errors:
            return InvalidInput.exit_code
        return EnvctlError.exit_code if any(t.failure for t in self.teams) else 0

    def to_json(self) -> dict[str, Any]:
        data = {"target": self.target, "base": self.base, "merge_base": self.merge_base, "valid": not self.errors,
                "exit_code": self.exit_code, "errors": self.errors, "offline": self.offline}
        if self.fleet is not None:
            data["fleet"] = self.fleet.to_json()
        return {**data, "teams": [t.to_json() for t in self.teams]}


def _errors_about(display: str, errors: list[str]) -> list[str]:
    # cross-team errors name both files, so they show under both teams
    return [e for e in errors if e.startswith(display + ":") or f"({display})" in e or f" {display};" in e]


def _team_plan(settings: Settings, change: RequestChange, resolved: dict[str, ResolvedSpec], errors: list[str]) -> TeamPlan:
    request = display_path(change.path, settings.root)
    renamed = change.old_path is not None and change.old_path != change.path
    plan = TeamPlan(team=change.team, action=change.action, request=request,
                    old_request=display_path(change.old_path, settings.root) if renamed else "")
    if change.action == REMOVE:
        return plan
    plan.errors = _errors_about(request, errors)
    spec = resolved.get(change.team)
    if spec is None or spec.path is None or spec.path.resolve() != change.path.resolve():
        if not plan.errors:
            plan.errors = [f"{request}: (file): the request is not valid; run `envctl validate {request}`"]
        return plan
    plan.region, plan.cidr, plan.environment = spec.region, spec.cidr, spec.spec.environment
    old = parse_old_request(change.old_text)
    plan.notable = notable_changes(old, spec.spec) if old is not None else requested_settings(spec.spec)
    if change.action == CHANGE and old is None and change.old_text is not None:
        plan.note = "the previous version of this request was not valid; showing what it asks for now"
    return plan


def _preview_into(engine: Engine, plan: TeamPlan, spec: ResolvedSpec, progress: Progress) -> TeamPlan:
    try:
        result = engine.preview(spec, team_progress(progress, plan.team))
    except Exception as exc:  # noqa: BLE001 - one team's failure is reported, the others go on
        plan.failure = f"preview failed: {failure_text(exc)}"
        return plan
    plan.summary, plan.changes = result.summary, result.changes
    return plan


def _removal_into(plan: TeamPlan, stacks: dict[str, int]) -> None:
    if plan.team not in stacks:
        plan.note = "no environment on this target: nothing to destroy"
        plan.summary = {action: 0 for action in ACTIONS}
        return
    plan.summary = {**{action: 0 for action in ACTIONS}, "delete": stacks[plan.team]}
    plan.note = (f"merging destroys the environment of {plan.team} ({stacks[plan.team]} resources) only when "
                 "applied with --allow-destroy; the data bucket and its key are kept")


def _impact_into(plan: TeamPlan, impact: TeamImpact, *, offline: bool) -> None:
    """What the offline comparison says; on a target, only whether a program-changed team is previewed."""
    plan.environment = plan.environment or impact.environment
    if plan.action == PROGRAM_CHANGE:
        plan.affected = impact.affected
        if not impact.affected:
            plan.note = "not affected: the change's code registers the same resources with the same inputs"
            plan.summary = {action: 0 for action in ACTIONS}
    if offline:
        if impact.error:
            plan.failure = impact.error
            return
        plan.changes = impact.changes
        plan.summary = {action: sum(1 for c in impact.changes if c.action == action) for action in ACTIONS}


def _fleet_summary(change_set: ChangeSet, teams: list[TeamPlan]) -> FleetSummary:
    affected = [t for t in teams if t.action != REMOVE and t.affected]
    changed = [(t.team, c) for t in affected for c in t.changes]
    return FleetSummary(
        program_paths=list(change_set.program_paths), teams_total=len([t for t in teams if t.action != REMOVE]),
        teams_affected=len(affected),
        replacements=[{"team": team, "type": c.type, "name": c.name, "detail": c.detail}
                      for team, c in changed if c.action == "replace"],
        data_touching=[{"team": team, "type": c.type, "name": c.name, "action": c.action, "detail": c.detail}
                       for team, c in changed if touches_data(c)],
    )


def _compare_offline(settings: Settings, change_set: ChangeSet, teams: list[TeamPlan], *, offline: bool,
                     progress: Progress) -> None:
    from provisioner.pull_requests.changes import git_toplevel
    from provisioner.pull_requests.fleet import fleet_impacts

    wanted = [t for t in teams if t.status == "ok" and t.action != REMOVE and (offline or t.action == PROGRAM_CHANGE)]
    if not wanted:
        return
    progress(f"comparing {len(wanted)} team(s) offline: the change's code against the merge base's")
    repo = git_toplevel(settings.root) if change_set.merge_base else None
    impacts = fleet_impacts(settings, repo, change_set.merge_base, [t.team for t in wanted])
    for team in wanted:
        _impact_into(team, impacts[team.team], offline=offline)


def _without_absent_program_teams(engine: Engine, teams: list[TeamPlan]) -> list[TeamPlan]:
    """A program change to a team with no environment on the target waits for its create (apply skips it too)."""
    if not any(t.action == PROGRAM_CHANGE for t in teams):
        return teams
    stacks = existing_stacks(engine)
    for team in teams:
        if team.action == PROGRAM_CHANGE and team.team not in stacks:
            team.note = "no environment on this target: the program change waits for its create"
            team.summary = {action: 0 for action in ACTIONS}
    return [t for t in teams if t.action != PROGRAM_CHANGE or t.team in stacks]


def plan_requests(settings: Settings, change_set: ChangeSet, engine: Engine | None, *,
                  parallel: int = DEFAULT_PARALLEL, progress: Progress = no_progress, offline: bool = False) -> Plan:
    """Validate all of stacks/, then preview every valid new or changed team and size every removal.

    A fleet change (the program changed) first compares every team offline and previews only the
    affected ones. `offline`: the comparison alone, for every team; the target (`engine`) is not used.
    """
    resolved, errors = validate_stacks(settings)
    teams = [_team_plan(settings, change, resolved, errors) for change in change_set.changes]
    for team, change in zip(teams, change_set.changes, strict=True):
        if not team.errors:
            cost = planned_cost(settings, change, resolved)
            team.monthly_usd, team.monthly_usd_delta = cost.monthly_usd, cost.monthly_usd_delta
            team.budget_usd_month, team.cost_note = cost.budget_usd_month, cost.note
    claimed = {e for team in teams for e in team.errors}
    if offline or change_set.is_fleet:
        _compare_offline(settings, change_set, teams, offline=offline, progress=progress)
    to_preview = [t for t in teams if t.action != REMOVE and t.status == "ok" and t.affected]
    if to_preview and not offline:
        assert engine is not None, "a plan on a target needs its engine"
        to_preview = _without_absent_program_teams(engine, to_preview)
    if to_preview and not offline:
        prepare_for_threads(engine, progress)
        run_bounded(to_preview, lambda t: _preview_into(engine, t, resolved[t.team], progress), parallel)
    removals = [t for t in teams if t.action == REMOVE]
    for team in removals:
        if offline:
            team.note = "removed: the environment on the target is not looked at offline (apply needs --allow-destroy)"
            team.summary = {action: 0 for action in ACTIONS}
    if removals and not offline:
        stacks = existing_stacks(engine)
        for team in removals:
            _removal_into(team, stacks)
    fleet = _fleet_summary(change_set, teams) if change_set.is_fleet else None
    return Plan(target="offline" if offline else settings.target, teams=teams, errors=errors,
                other_errors=[e for e in errors if e not in claimed], base=change_set.base,
                merge_base=change_set.merge_base, fleet=fleet, offline=offline)
