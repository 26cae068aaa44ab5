"""`envctl plan` and `envctl apply`: the requests a change touches, previewed or applied (CI's commands)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.cli.common import engine_for, load_settings, start
from provisioner.errors import EnvctlError, InvalidInput

Paths = Annotated[
    Optional[list[Path]],
    typer.Argument(help="Request files to act on (a named file that no longer exists is a removal). "
                        "Default: every request, or with --changed the ones the change touches.", show_default=False),
]
Changed = Annotated[bool, typer.Option("--changed", help="Only the requests that differ from the merge base of --base (git).")]
Base = Annotated[
    Optional[str],
    typer.Option("--base", show_default=False,
                 help="Git ref the change is compared with, e.g. origin/main on a pull request."),
]
Parallel = Annotated[int, typer.Option("--parallel", min=1, max=16, help="Teams worked on at once (1 to 16).")]
Markdown = Annotated[
    Optional[Path],
    typer.Option("--markdown", show_default=False, help="Also write the plan as Markdown (a pull-request comment) to this file."),
]
AllowDestroy = Annotated[
    bool,
    typer.Option("--allow-destroy", help="Destroy the environments of removed requests (their data bucket and key are kept). "
                                         "Without it a removed request fails its team and touches nothing."),
]


def _change_set(settings, paths: Optional[list[Path]], changed: bool, base: Optional[str], engine):
    from provisioner.pull_requests.batch import existing_stacks
    from provisioner.pull_requests.changes import changed_requests, requests_at
    from provisioner.spec import request_files

    if changed and paths:
        raise InvalidInput("give either --changed --base <ref> or request files, not both")
    if changed:
        if not base:
            raise InvalidInput("--changed needs --base <git-ref>, e.g. --base origin/main")
        return changed_requests(settings, base)
    if base:
        raise InvalidInput("--base only applies with --changed; add --changed")
    files = list(paths) if paths else request_files(settings.stacks_dir)
    return requests_at(settings, files, set(existing_stacks(engine)))


def _scope(paths: Optional[list[Path]], changed: bool, base: Optional[str]) -> str:
    if changed:
        return f"the requests changed since the merge base of {base}"
    return f"{len(paths)} request file(s)" if paths else "every request"


def _start(action: str, paths, changed: bool, base: str | None, target: str | None, stacks_dir):
    """Settings, engine and the change set of a plan or apply, after the command's first line."""

    settings = load_settings(target=target, stacks_dir=stacks_dir)
    start(settings, f"{action} {_scope(paths, changed, base)}")
    engine = engine_for(settings)
    return settings, engine, _change_set(settings, paths, changed, base, engine)


# ------------------------------------------------------------------ plan

Offline = Annotated[
    bool,
    typer.Option("--offline", help="Compare every team's offline run of this code with the merge base's code; "
                                   "no target, no credentials (CI runs a pull request's program change this way)."),
]


def _start_offline(paths, changed: bool, base: str | None, stacks_dir):
    from provisioner.pull_requests.changes import changed_requests, requests_at
    from provisioner.spec import request_files

    settings = load_settings(stacks_dir=stacks_dir)
    start(settings, f"plan offline {_scope(paths, changed, base)}")
    if changed and paths:
        raise InvalidInput("give either --changed --base <ref> or request files, not both")
    if changed:
        if not base:
            raise InvalidInput("--changed needs --base <git-ref>, e.g. --base origin/main")
        return settings, changed_requests(settings, base)
    if base:
        raise InvalidInput("--base only applies with --changed; add --changed")
    return settings, requests_at(settings, list(paths) if paths else request_files(settings.stacks_dir), set())


def plan(
    paths: Paths = None,
    changed: Changed = False,
    base: Base = None,
    markdown: Markdown = None,
    parallel: Parallel = 4,
    target: opt.Target = None,
    as_json: opt.Json = False,
    stacks_dir: opt.StacksDir = None,
    offline: Offline = False,
) -> None:
    """Validate every request, preview the ones a change touches, and summarise (exit 2 on invalid requests)."""
    from provisioner.pull_requests.markdown import render_markdown
    from provisioner.pull_requests.plan import plan_requests

    if offline:  # the target (--target, ENVCTL_TARGET) is not used
        (settings, change_set), engine = _start_offline(paths, changed, base, stacks_dir), None
    else:
        settings, engine, change_set = _start("plan", paths, changed, base, target, stacks_dir)
    with output.progress(f"previewing {len(change_set.changes)} request(s), {parallel} at a time") as report:
        result = plan_requests(settings, change_set, engine, parallel=parallel, progress=report, offline=offline)
    if markdown:
        markdown.write_text(render_markdown(result))
        output.err.print(f"wrote {markdown}")
    if as_json:
        output.print_json(result.to_json())
    else:
        _print_plan(result)
    if result.exit_code == InvalidInput.exit_code:
        raise InvalidInput(f"{len(result.errors)} problem(s) in the requests (each is listed with its file and field); "
                           "nothing can be applied until they are fixed")
    if result.exit_code:
        failed = [t.team for t in result.teams if t.failure]
        raise EnvctlError(f"the preview failed for {', '.join(failed)} (see above)")


def _print_plan(result) -> None:
    if not result.teams:
        output.out.print("no request changed")
    else:
        if result.fleet is not None:
            output.out.print(f"fleet change ({', '.join(result.fleet.program_paths)}): "
                             f"{result.fleet.teams_affected} of {result.fleet.teams_total} teams affected", markup=False)
        rows = []
        for team in result.teams:
            counts = [str(team.summary[a]) if team.summary else "-" for a in ("create", "update", "replace", "delete")]
            rows.append([team.team, team.action, *counts, _monthly(team), _styled_status(team)])
        print_table(("team", "action", "create", "update", "replace", "delete", "USD/month", "status"), rows,
                    left=("team", "action", "status"))
    for team in result.teams:
        details = team.notable + ([team.note] if team.note else []) + ([team.failure] if team.failure else [])
        details += [f"cost: {team.cost_note}"] if team.cost_note else []
        if details or team.errors:
            output.out.print(f"[bold]{team.team}[/] ({team.action}, {team.request})")
        for line in details:
            output.out.print(f"  {line}", markup=False)
        for line in team.errors:
            output.out.print(f"  [red]✗[/] {line}", highlight=False)
    for line in result.other_errors:
        output.out.print(f"[red]✗[/] {line}", highlight=False)


def _monthly(team) -> str:
    if team.monthly_usd is None:
        return "-"
    delta = team.monthly_usd_delta
    return f"{team.monthly_usd:,.2f}" + ("" if delta is None else f" ({delta:+,.2f})" if delta else " (0)")


def _styled_status(team) -> str:
    if not team.affected:
        return "not affected"
    if team.status == "invalid":
        return "[red]invalid[/]"
    if team.status == "failed":
        return "[red]preview failed[/]"
    if team.action == "remove" and team.summary.get("delete"):
        return "[yellow]needs --allow-destroy[/]"
    return "[green]ready[/]"


# ------------------------------------------------------------------ apply


Team = Annotated[
    Optional[list[str]],
    typer.Option("--team", show_default=False,
                 help="Only this team of the change (repeatable): one job of the workflow's matrix."),
]


def apply(
    paths: Paths = None,
    changed: Changed = False,
    base: Base = None,
    allow_destroy: AllowDestroy = False,
    parallel: Parallel = 4,
    team: Team = None,
    target: opt.Target = None,
    as_json: opt.Json = False,
    stacks_dir: opt.StacksDir = None,
) -> None:
    """Create or update the requests a change adds or modifies; destroy removed ones only with --allow-destroy.

    A program change rolls out in waves, dev teams first, then prod, --parallel at a time, and stops at
    the first failure; re-running resumes (teams already applied are up to date)."""
    from provisioner.pull_requests.apply import only_teams, rollout

    settings, engine, change_set = _start("apply", paths, changed, base, target, stacks_dir)
    if team:
        change_set = only_teams(change_set, team)
    rerun = shlex.join(["envctl", "apply", *(["--changed", "--base", base] if changed else [str(p) for p in paths or []]),
                        *[arg for name in team or [] for arg in ("--team", name)]])

    def wave_header(wave, count: int) -> None:
        output.err.print(f"[bold]{wave.title(count)}[/]", highlight=False)

    try:
        with output.progress(f"applying {len(change_set.changes)} team(s), {parallel} at a time") as report:
            done = rollout(settings, change_set, engine, allow_destroy=allow_destroy, parallel=parallel,
                           progress=report, rerun=rerun, on_wave=wave_header)
    except InvalidInput as exc:
        if as_json:
            output.print_json({"target": settings.target, "base": change_set.base, "ok": False, "errors": exc.errors,
                               "results": []})
        raise
    results = done.results
    not_ok = [r for r in results if r.outcome != "ok"]
    if as_json:
        output.print_json({"target": settings.target, "base": change_set.base, "ok": not not_ok, **done.to_json()})
    else:
        _print_results(results)
    if not_ok:
        resume = " (the rollout stopped; re-run to resume: teams already applied are up to date)" if done.stopped_by else ""
        raise EnvctlError(f"{len(not_ok)} of {len(results)} team(s) did not apply: "
                          + ", ".join(f"{r.team} ({r.outcome})" for r in not_ok) + resume)


def print_table(columns: tuple[str, ...], rows: list[list[str]], *, left: tuple[str, ...]) -> None:
    """The one table of plan, apply and drift: bold header, no box, the columns in `left` flush left."""
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, justify="left" if column in left else "right")
    for row in rows:
        table.add_row(*row)
    output.out.print(table)


def _print_results(results) -> None:
    if not results:
        output.out.print("no request changed: nothing to apply")
        return
    style = {"ok": "green", "failed": "red", "refused": "yellow", "not started": "yellow"}
    rows = []
    for result in results:
        counts = [str(result.summary[a]) if result.summary else "-" for a in ("create", "update", "replace", "delete")]
        rows.append([result.team, result.action, f"[{style[result.outcome]}]{result.outcome}[/]", *counts,
                     f"{result.duration_s:.1f}s"])
    print_table(("team", "action", "result", "created", "updated", "replaced", "deleted", "time"), rows,
                left=("team", "action", "result"))
    for result in results:
        if result.outcome != "ok":
            output.out.print(f"[{style[result.outcome]}]{result.team}:[/] {result.message}", highlight=False)
        for warning in result.warnings:
            output.warn(f"{result.team}: {warning}")


# ------------------------------------------------------------------ waves


def waves(
    paths: Paths = None,
    changed: Changed = False,
    base: Base = None,
    target: opt.Target = None,
    as_json: opt.Json = False,
    stacks_dir: opt.StacksDir = None,
) -> None:
    """The rollout plan of a change: its waves, each as a GitHub Actions matrix (the apply workflow's planner)."""
    from provisioner.pull_requests.apply import rollout_plan

    settings, engine, change_set = _start("waves of", paths, changed, base, target, stacks_dir)
    plan = rollout_plan(settings, change_set, engine)
    if as_json:
        output.print_json(plan)
        return
    if not plan["waves"]:
        output.out.print("no team to roll out")
    for wave in plan["waves"]:
        output.out.print(f"wave {wave['wave']} ({wave['environment']}): {', '.join(wave['teams'])}")
        output.out.print(f"  matrix: {wave['matrix']}", markup=False, highlight=False)
    for team in plan["settled"]:
        output.out.print(f"not rolled out: {team['team']} ({team['action']}): {team['message']}", markup=False)
