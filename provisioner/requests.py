"""Requests by pull request: which request files a change touches, their plan, and their apply.

A request (`stacks/<team>.yaml`) is data. It is read with `yaml.safe_load` and validated by
the pydantic model in spec.py; nothing in it, nor anything else from the change, is executed.
Git is asked only for names and blobs (`merge-base`, `diff --name-status`, `cat-file blob`).

Removing a request file never destroys a team's environment on its own: apply refuses that
team unless it is given `allow_destroy`.
"""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from pydantic import ValidationError

from provisioner.engines.base import ACTIONS, Engine, OperationResult, Progress, ResourceChange, no_progress
from provisioner.errors import EnvctlError, InvalidInput
from provisioner.settings import Settings
from provisioner.spec import (
    ResolvedSpec,
    TeamSpec,
    UnreadableRequest,
    display_path,
    load_request_text,
    request_files,
    validate_files,
)

NEW, CHANGE, REMOVE = "new", "change", "remove"
REQUEST_SUFFIXES = (".yaml", ".yml")
DEFAULT_PARALLEL = 4
MAX_PARALLEL = 16
MARKDOWN_MARKER = "<!-- envctl-plan -->"  # lets CI find and update its own PR comment
MAX_COMMENT_CHARS = 60_000  # GitHub refuses comments over 65,536 characters


# ---------------------------------------------------------------- what changed


@dataclass(frozen=True)
class RequestChange:
    """One team whose request a change adds, modifies or removes."""

    team: str
    action: str  # new | change | remove
    path: Path  # the request now; for a removal, the file that was removed
    old_path: Path | None = None  # the file at the base (modified, renamed or removed)
    old_text: str | None = None  # its content at the base


@dataclass(frozen=True)
class ChangeSet:
    changes: list[RequestChange]
    base: str | None = None  # the ref as given; None for explicit paths
    merge_base: str | None = None  # the commit the change is compared with


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise InvalidInput("git is not installed; --changed needs git (or pass the request files as arguments)") from None
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1].removeprefix("fatal: ")
        raise InvalidInput(f"git {args[0]} failed in {repo}: {detail}")
    return done.stdout


def git_toplevel(folder: Path) -> Path:
    try:
        return Path(_git(folder, "rev-parse", "--show-toplevel").strip()).resolve()
    except InvalidInput:
        raise InvalidInput(f"{folder} is not inside a git repository; --changed needs one "
                           "(or pass the request files as arguments)") from None


def merge_base(repo: Path, base: str) -> str:
    """The commit where HEAD left `base`: what a pull request is compared with."""
    if not base or base.startswith("-"):
        raise InvalidInput(f"--base: {base!r} is not a git ref; give a branch, tag or commit, e.g. --base origin/main")
    try:
        _git(repo, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    except InvalidInput:
        raise InvalidInput(f"--base: {base!r} is not a commit in {repo}; fetch it first "
                           f"(e.g. `git fetch origin {base.removeprefix('origin/')}`) or check the name") from None
    try:
        return _git(repo, "merge-base", base, "HEAD").strip()
    except InvalidInput:
        raise InvalidInput(f"--base: {base} and HEAD have no common commit; in CI fetch the whole history "
                           "(actions/checkout with fetch-depth: 0)") from None


def _is_request(relative: str, stacks_rel: str) -> bool:
    path = Path(relative)
    return path.parent.as_posix() == stacks_rel and path.suffix in REQUEST_SUFFIXES


def _name_status(repo: Path, commit: str, stacks_rel: str) -> list[tuple[str, list[str]]]:
    """`git diff --name-status` of the working tree against `commit`, as (letter, paths)."""
    fields = _git(repo, "diff", "--name-status", "-z", "-M", "--no-ext-diff", commit, "--", stacks_rel).split("\0")
    entries, index = [], 0
    while index < len(fields) and fields[index]:
        letter = fields[index][0]
        count = 2 if letter in "RC" else 1
        entries.append((letter, fields[index + 1:index + 1 + count]))
        index += 1 + count
    return entries


def _untracked(repo: Path, stacks_rel: str) -> list[str]:
    return [p for p in _git(repo, "ls-files", "--others", "--exclude-standard", "-z", "--", stacks_rel).split("\0") if p]


def changed_requests(settings: Settings, base: str) -> ChangeSet:
    """The teams whose request differs between the merge base of `base` and the working tree.

    A rename removes the old team and adds the new one, unless both files name the same team
    (e.g. `fraud.yaml` to `fraud.yml`): then it is a change of that team.
    """
    repo = git_toplevel(settings.root)
    try:
        stacks_rel = settings.stacks_dir.resolve().relative_to(repo).as_posix()
    except ValueError:
        raise InvalidInput(f"stacks_dir: {settings.stacks_dir} is not inside the git repository {repo}") from None
    commit = merge_base(repo, base)
    removed: dict[str, str] = {}
    added: dict[str, str] = {}
    modified: dict[str, str] = {}
    for letter, paths in _name_status(repo, commit, stacks_rel):
        old, new = paths[0], paths[-1]
        if letter in "MT" and _is_request(new, stacks_rel):
            modified[Path(new).stem] = new
            continue
        if letter in "DR" and _is_request(old, stacks_rel):
            removed[Path(old).stem] = old
        if letter in "ACR" and _is_request(new, stacks_rel):
            added[Path(new).stem] = new
    for path in _untracked(repo, stacks_rel):
        if _is_request(path, stacks_rel):
            added.setdefault(Path(path).stem, path)

    def old_text(relative: str) -> str:
        return _git(repo, "cat-file", "blob", f"{commit}:{relative}")

    changes = [RequestChange(team, CHANGE, repo / path, repo / path, old_text(path)) for team, path in modified.items()]
    for team, path in added.items():
        if team in removed:
            old = removed.pop(team)
            changes.append(RequestChange(team, CHANGE, repo / path, repo / old, old_text(old)))
        else:
            changes.append(RequestChange(team, NEW, repo / path))
    changes += [RequestChange(team, REMOVE, repo / path, repo / path, old_text(path)) for team, path in removed.items()]
    return ChangeSet(sorted(changes, key=lambda c: c.team), base=base, merge_base=commit)


def requests_at(settings: Settings, paths: Iterable[Path], existing_teams: set[str]) -> ChangeSet:
    """Explicit request files: a file that exists is new or a change (by whether the team has an
    environment on the target); a named file that no longer exists is a removal."""
    stacks = settings.stacks_dir.resolve()
    changes = []
    for given in paths:
        path = given if given.is_absolute() else Path.cwd() / given
        if path.resolve().parent != stacks or path.suffix not in REQUEST_SUFFIXES:
            raise InvalidInput(f"{given}: not a request file; requests are {display_path(stacks, settings.root)}/<team>.yaml")
        team = path.stem
        if not path.exists():
            changes.append(RequestChange(team, REMOVE, path))
        else:
            changes.append(RequestChange(team, CHANGE if team in existing_teams else NEW, path))
    return ChangeSet(sorted({c.team: c for c in changes}.values(), key=lambda c: c.team))


# ---------------------------------------------------------------- notable changes


def _inference(spec: TeamSpec) -> str:
    inference = spec.sagemaker.inference
    if not inference.enabled:
        return "off"
    if inference.serverless is not None:
        text = f"serverless {inference.serverless.memory_mb} MB, max concurrency {inference.serverless.max_concurrency}"
    else:
        instance = inference.instance
        text = f"{instance.type} x{instance.count}"
        if instance.autoscaling is not None:
            text += f", autoscaling {instance.autoscaling.min}-{instance.autoscaling.max}"
    if inference.image != "default":
        text += f", image {inference.image}"
    if inference.model_data:
        text += f", model {inference.model_data}"
    return text


# (label, the spec fields it covers, how it reads)
NOTABLE_SETTINGS: tuple[tuple[str, tuple[str, ...], Callable[[TeamSpec], str]], ...] = (
    ("region", ("region",), lambda s: s.region or "organisation default"),
    ("network.cidr", ("network.cidr",), lambda s: s.network.cidr or "allocated from the pool"),
    ("airflow.version", ("airflow.version",), lambda s: s.airflow.version),
    ("airflow.instance_type", ("airflow.instance_type",), lambda s: s.airflow.instance_type),
    ("airflow.volume_gb", ("airflow.volume_gb",), lambda s: f"{s.airflow.volume_gb} GiB"),
    ("sagemaker.notebook", ("sagemaker.notebook",),
     lambda s: s.sagemaker.notebook.instance_type if s.sagemaker.notebook.enabled else "off"),
    ("sagemaker.inference", ("sagemaker.inference",), _inference),
)
COVERED_FIELDS = tuple(covered for _, fields_, _ in NOTABLE_SETTINGS for covered in fields_) + ("secrets",)


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_leaves(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def requested_settings(spec: TeamSpec) -> list[str]:
    """What a new request asks for, in reviewer terms."""
    lines = [f"{label}: {read(spec)}" for label, _, read in NOTABLE_SETTINGS]
    if spec.secrets:
        lines.append("secrets: " + ", ".join(spec.secrets))
    return lines


def notable_changes(old: TeamSpec, new: TeamSpec) -> list[str]:
    """The differences a reviewer cares about, old -> new, then the names of any other changed fields."""
    lines = [f"{label}: {read(old)} -> {read(new)}" for label, _, read in NOTABLE_SETTINGS if read(old) != read(new)]
    added = [name for name in new.secrets if name not in old.secrets]
    dropped = [name for name in old.secrets if name not in new.secrets]
    if added:
        lines.append("secrets added: " + ", ".join(added))
    if dropped:
        lines.append("secrets removed: " + ", ".join(dropped))
    before, after = _leaves(old.model_dump(by_alias=True)), _leaves(new.model_dump(by_alias=True))
    others = sorted(key for key in before.keys() | after.keys()
                    if before.get(key) != after.get(key)
                    and not any(key == c or key.startswith(c + ".") for c in COVERED_FIELDS))
    if others:
        lines.append("other fields changed: " + ", ".join(others))
    return lines


def parse_old_request(text: str | None) -> TeamSpec | None:
    """The request as it was at the base, or None when there was none or it was not valid."""
    if text is None:
        return None
    try:  # data only: the same bounded safe loader and model as spec.parse_file
        return TeamSpec.model_validate(load_request_text(text))
    except (UnreadableRequest, ValidationError):
        return None


# ---------------------------------------------------------------- running per team


def _prepare_for_threads(engine: Engine, progress: Progress) -> None:
    from provisioner.program import preload_provider_modules

    preload_provider_modules()
    engine.prepare(progress)  # e.g. the sandbox's one server, before the teams race to start it


def run_bounded(items: list[Any], work: Callable[[Any], Any], parallel: int) -> list[Any]:
    """`work` on every item, at most `parallel` at once; `work` must report its own failures."""
    if not items:
        return []
    if not 1 <= parallel <= MAX_PARALLEL:
        raise InvalidInput(f"--parallel: {parallel} is not allowed; use 1 to {MAX_PARALLEL}")
    with ThreadPoolExecutor(max_workers=min(parallel, len(items)), thread_name_prefix="envctl-team") as pool:
        return list(pool.map(work, items))


def _team_progress(progress: Progress, team: str) -> Progress:
    return lambda message: progress(f"{team}: {message}")


def _failure_text(exc: Exception) -> str:
    if isinstance(exc, EnvctlError):
        return exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    return f"unexpected {type(exc).__name__}: {exc}"


def validate_stacks(settings: Settings) -> tuple[dict[str, ResolvedSpec], list[str]]:
    """Every request in stacks/, alone and together (team CIDRs depend on all of them)."""
    resolved, errors = validate_files(request_files(settings.stacks_dir), default_region=settings.region,
                                      pool=settings.cidr_pool, prefix=settings.team_prefix, root=settings.root)
    return {item.team: item for item in resolved}, errors


def existing_stacks(engine: Engine) -> dict[str, int]:
    """Team -> number of resources, for every environment on the target."""
    return {stack.team: stack.resources for stack in engine.list_stacks()}


# ---------------------------------------------------------------- plan


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

    @property
    def status(self) -> str:
        return "invalid" if self.errors else "failed" if self.failure else "ok"

    def to_json(self) -> dict[str, Any]:
        data = {key: value for key, value in asdict(self).items() if key != "changes"}
        data["status"] = self.status
        data["changes"] = [asdict(c) for c in self.changes if c.action != "same"]
        return data


@dataclass
class Plan:
    target: str
    teams: list[TeamPlan]
    errors: list[str]  # every validation error in stacks/
    other_errors: list[str]  # those that belong to no team of this change
    base: str | None = None
    merge_base: str | None = None

    @property
    def exit_code(self) -> int:
        if self.errors:
            return InvalidInput.exit_code
        return EnvctlError.exit_code if any(t.failure for t in self.teams) else 0

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "base": self.base, "merge_base": self.merge_base, "valid": not self.errors,
                "exit_code": self.exit_code, "errors": self.errors, "teams": [t.to_json() for t in self.teams]}


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
    plan.region, plan.cidr = spec.region, spec.cidr
    old = parse_old_request(change.old_text)
    plan.notable = notable_changes(old, spec.spec) if old is not None else requested_settings(spec.spec)
    if change.action == CHANGE and old is None and change.old_text is not None:
        plan.note = "the previous version of this request was not valid; showing what it asks for now"
    return plan


def _cost_into(settings: Settings, plan: TeamPlan, change: RequestChange, resolved: dict[str, ResolvedSpec]) -> None:
    """The team's monthly estimate and its change against the request at the base (offline, from the price table)."""
    from provisioner.cost import estimate, load_prices

    if plan.errors:
        return
    old = parse_old_request(change.old_text)
    try:
        prices = load_prices()
        new = None if change.action == REMOVE else estimate(resolved[change.team], prices)
        before = None if old is None else estimate(
            ResolvedSpec(spec=old, region=old.region or settings.region, cidr=""), prices).monthly_usd
    except InvalidInput as exc:
        plan.cost_note = f"not estimated: {exc.message}"
        return
    plan.monthly_usd = 0.0 if new is None else new.monthly_usd
    if change.action == NEW:
        plan.monthly_usd_delta = plan.monthly_usd
    elif before is not None:
        plan.monthly_usd_delta = round(plan.monthly_usd - before, 2)
    if new is not None:
        plan.budget_usd_month = new.budget_usd_month
        if new.over_budget:
            plan.cost_note = (f"the estimate ${new.monthly_usd:,.2f}/month is over budget_usd_month "
                              f"${new.budget_usd_month:,}")


def _preview_into(engine: Engine, plan: TeamPlan, spec: ResolvedSpec, progress: Progress) -> TeamPlan:
    try:
        result = engine.preview(spec, _team_progress(progress, plan.team))
    except Exception as exc:  # noqa: BLE001 - one team's failure is reported, the others go on
        plan.failure = f"preview failed: {_failure_text(exc)}"
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


def plan_requests(settings: Settings, change_set: ChangeSet, engine: Engine, *,
                  parallel: int = DEFAULT_PARALLEL, progress: Progress = no_progress) -> Plan:
    """Validate all of stacks/, then preview every valid new or changed team and size every removal."""
    resolved, errors = validate_stacks(settings)
    teams = [_team_plan(settings, change, resolved, errors) for change in change_set.changes]
    for team, change in zip(teams, change_set.changes, strict=True):
        _cost_into(settings, team, change, resolved)
    claimed = {e for team in teams for e in team.errors}
    to_preview = [t for t in teams if t.action != REMOVE and t.status == "ok"]
    if to_preview:
        _prepare_for_threads(engine, progress)
        run_bounded(to_preview, lambda t: _preview_into(engine, t, resolved[t.team], progress), parallel)
    removals = [t for t in teams if t.action == REMOVE]
    if removals:
        stacks = existing_stacks(engine)
        for team in removals:
            _removal_into(team, stacks)
    return Plan(target=settings.target, teams=teams, errors=errors, other_errors=[e for e in errors if e not in claimed],
                base=change_set.base, merge_base=change_set.merge_base)


# ---------------------------------------------------------------- apply


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
    report = _team_progress(progress, change.team)
    try:
        if change.action == REMOVE:
            result: OperationResult = engine.destroy(change.team, delete_data=False, progress=report)
        else:
            result = engine.up(spec, report)
    except Exception as exc:  # noqa: BLE001 - one team's failure is reported, the others go on
        return TeamResult(change.team, change.action, FAILED, message=_failure_text(exc),
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
    removals = [c for c in change_set.changes if c.action == REMOVE]
    stacks = existing_stacks(engine) if removals else {}
    for change in change_set.changes:
        if change.action != REMOVE:
            work.append(change)
        elif change.team not in stacks:
            results.append(TeamResult(change.team, REMOVE, OK, message="no environment on this target: nothing to destroy"))
        elif not allow_destroy:
            results.append(_refusal(change, settings, stacks[change.team], rerun))
        else:
            work.append(change)
    if work:
        _prepare_for_threads(engine, progress)
        results += run_bounded(work, lambda c: _apply_one(engine, c, resolved.get(c.team), progress), parallel)
    return sorted(results, key=lambda r: r.team)


# ---------------------------------------------------------------- Markdown for the pull request


STATUS_TEXT = {"ok": "ready", "invalid": "invalid request", "failed": "preview failed"}
ACTION_VERB = {"create": "create", "update": "update", "replace": "replace", "delete": "delete"}


def _escape(text: str) -> str:
    for char in "\\`*[]<|":
        text = text.replace(char, "\\" + char)
    return text


def _setting_item(line: str) -> str:
    label, _, value = line.partition(": ")
    return f"- `{label}`: {_escape(value)}" if value else f"- {_escape(line)}"


def _error_item(error: str) -> str:
    parts = error.split(": ", 2)
    if len(parts) == 3:
        where, what, message = parts
        return f"- `{where}` · `{what}`: {_escape(message)}"
    return f"- {_escape(error)}"


def _team_status(team: TeamPlan) -> str:
    if team.status == "ok" and team.action == REMOVE and team.summary.get("delete"):
        return "needs --allow-destroy"
    return STATUS_TEXT[team.status]


def _count(team: TeamPlan, action: str) -> str:
    return str(team.summary[action]) if team.summary else "-"


def _summary_table(teams: list[TeamPlan]) -> list[str]:
    lines = ["| team | action | request | create | update | replace | delete | USD/month | change | status |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for team in teams:
        counts = " | ".join(_count(team, a) for a in ("create", "update", "replace", "delete"))
        cost = f"{_money(team.monthly_usd)} | {_money(team.monthly_usd_delta, signed=True)}"
        lines.append(f"| {team.team} | {team.action} | `{team.request}` | {counts} | {cost} | {_team_status(team)} |")
    return lines


def _money(amount: float | None, *, signed: bool = False) -> str:
    if amount is None:
        return "-"
    return f"{amount:+,.2f}" if signed and amount else f"{amount:,.2f}"


def _cost_line(team: TeamPlan) -> list[str]:
    if team.monthly_usd is None:
        return [f"**Cost**: {_escape(team.cost_note)}", ""] if team.cost_note else []
    text = f"**Cost**: ${_money(team.monthly_usd)}/month"
    if team.monthly_usd_delta is not None:
        delta = team.monthly_usd_delta
        text += f" ({'+' if delta > 0 else '-' if delta < 0 else ''}${_money(abs(delta))} against the base)"
    if team.budget_usd_month is not None:
        text += f" · budget ${team.budget_usd_month:,}/month"
    if team.cost_note:
        text += f" · **{_escape(team.cost_note)}**"
    return [text, ""]


def _counts_sentence(summary: dict[str, int]) -> str:
    parts = [f"{summary[a]} to {ACTION_VERB[a]}" for a in ("create", "update", "replace", "delete") if summary.get(a)]
    return ", ".join(parts) if parts else "no changes"


def _team_section(team: TeamPlan, *, resource_lists: bool) -> list[str]:
    lines = [f"### {team.team} · {team.action}", ""]
    where = f"`{team.request}`" + (f" (renamed from `{team.old_request}`)" if team.old_request else "")
    if team.region:
        where += f" · region `{team.region}` · network `{team.cidr}`"
    lines += [where, ""]
    if team.errors:
        lines += ["**Invalid request**: fix these and push again; nothing can be applied until then.", ""]
        lines += [_error_item(e) for e in team.errors] + [""]
    if team.notable:
        heading = "Requested" if team.action == NEW or team.note.startswith("the previous") else "Notable changes"
        lines += [f"**{heading}**", ""] + [_setting_item(item) for item in team.notable] + [""]
    elif team.action == CHANGE and not team.errors:
        lines += ["**Notable changes**: none", ""]
    if team.failure:
        lines += [f"**Preview failed**: {_escape(team.failure)}", ""]
    if team.summary:
        lines += [f"**Resources**: {_counts_sentence(team.summary)}", ""]
    lines += _cost_line(team)
    if team.note:
        lines += [f"> {_escape(team.note)}", ""]
    order = {action: index for index, action in enumerate(ACTIONS)}
    changed = sorted((c for c in team.changes if c.action != "same"), key=lambda c: (order[c.action], c.type, c.name))
    if changed and resource_lists:
        lines += [f"<details><summary>{len(changed)} resource change(s)</summary>", "",
                  "| action | type | name | detail |", "| --- | --- | --- | --- |"]
        lines += [f"| {c.action} | `{c.type}` | {_escape(c.name)} | {_escape(c.detail)} |" for c in changed]
        lines += ["", "</details>", ""]
    return lines


def render_markdown(plan: Plan) -> str:
    """The plan as a pull-request comment: stable (no times, no commit ids), one section per team.

    When the resource lists would make it longer than a GitHub comment allows, they are left out.
    """
    text = _markdown(plan, resource_lists=True)
    if len(text) <= MAX_COMMENT_CHARS:
        return text
    return _markdown(plan, resource_lists=False, note=(
        "Resource lists are left out to fit a pull-request comment; `envctl plan` in the job log shows them."))


def _markdown(plan: Plan, *, resource_lists: bool, note: str = "") -> str:
    lines = [MARKDOWN_MARKER, "## envctl plan", ""]
    scope = f"changes against `{plan.base}`" if plan.base else "the requests given"
    lines += [f"Target `{plan.target}` · {scope} · {len(plan.teams)} request(s)", ""]
    if not plan.teams:
        lines += ["No request file changed.", ""]
    else:
        lines += _summary_table(plan.teams) + [""]
        if note:
            lines += [f"> {note}", ""]
        for team in plan.teams:
            lines += _team_section(team, resource_lists=resource_lists)
    if plan.other_errors:
        lines += ["### Other requests", "",
                  "These requests are not part of this change but are invalid; nothing can be applied until they are fixed.", ""]
        lines += [_error_item(e) for e in plan.other_errors] + [""]
    lines += [f"**{_verdict(plan)}**", ""]
    return "\n".join(lines)


def _verdict(plan: Plan) -> str:
    if plan.exit_code == InvalidInput.exit_code:
        return "Invalid requests: nothing will be applied until they are fixed."
    if plan.exit_code:
        return "A preview failed: fix it before merging (the apply would fail the same way)."
    guarded = [t.team for t in plan.teams if _team_status(t) == "needs --allow-destroy"]
    refusal = (f"the removal of {', '.join(guarded)} is refused until a platform engineer "
               "applies it with --allow-destroy.")
    if guarded and len(guarded) == len(plan.teams):
        return f"Merging applies nothing by itself: {refusal}"
    if guarded:
        return f"Merging applies the other changes; {refusal}"
    return "Merging applies these changes." if plan.teams else "Nothing to apply."
