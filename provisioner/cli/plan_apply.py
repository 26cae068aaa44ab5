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
    from rich.table import Table

    if not result.teams:
        output.out.print("no request changed")
    else:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("team", "action", "create", "update", "replace", "delete", "USD/month", "status"):
            table.add_column(column, justify="left" if column in ("team", "action", "status") else "right")
        if result.fleet is not None:
            output.out.print(f"fleet change ({', '.join(result.fleet.program_paths)}): "
                             f"{result.fleet.teams_affected} of {result.fleet.teams_total} teams affected", markup=False)
        for team in result.teams:
            counts = [str(team.summary[a]) if team.summary else "-" for a in ("create", "update", "replace", "delete")]
            table.add_row(team.team, team.action, *counts, _monthly(team), _styled_status(team))
        output.out.print(table)
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


def apply(
    paths: Paths = None,
    changed: Changed = False,
    base: Base = None,
    allow_destroy: AllowDestroy = False,
    parallel: Parallel = 4,
    target: opt.Target = None,
    as_json: opt.Json = False,
    stacks_dir: opt.StacksDir = None,
) -> None:
    """Create or update the requests a change adds or modifies; destroy removed ones only with --allow-destroy."""
    from provisioner.pull_requests.apply import apply_requests

    settings, engine, change_set = _start("apply", paths, changed, base, target, stacks_dir)
    rerun = shlex.join(["envctl", "apply", *(["--changed", "--base", base] if changed else [str(p) for p in paths or []])])
    try:
        with output.progress(f"applying {len(change_set.changes)} team(s), {parallel} at a time") as report:
            results = apply_requests(settings, change_set, engine, allow_destroy=allow_destroy, parallel=parallel,
                                     progress=report, rerun=rerun)
    except InvalidInput as exc:
        if as_json:
            output.print_json({"target": settings.target, "base": change_set.base, "ok": False, "errors": exc.errors,
                               "results": []})
        raise
    not_ok = [r for r in results if r.outcome != "ok"]
    if as_json:
        output.print_json({"target": settings.target, "base": change_set.base, "ok": not not_ok,
                           "results": [r.to_json() for r in results]})
    else:
        _print_results(results)
    if not_ok:
        raise EnvctlError(f"{len(not_ok)} of {len(results)} team(s) did not apply: "
                          + ", ".join(f"{r.team} ({r.outcome})" for r in not_ok))


def _print_results(results) -> None:
    from rich.table import Table

    if not results:
        output.out.print("no request changed: nothing to apply")
        return
    style = {"ok": "green", "failed": "red", "refused": "yellow"}
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("team", "action", "result", "created", "updated", "replaced", "deleted", "time"):
        table.add_column(column, justify="right" if column not in ("team", "action", "result") else "left")
    for result in results:
        counts = [str(result.summary[a]) if result.summary else "-" for a in ("create", "update", "replace", "delete")]
        table.add_row(result.team, result.action, f"[{style[result.outcome]}]{result.outcome}[/]", *counts,
                      f"{result.duration_s:.1f}s")
    output.out.print(table)
    for result in results:
        if result.outcome != "ok":
            output.out.print(f"[{style[result.outcome]}]{result.team}:[/] {result.message}", highlight=False)
        for warning in result.warnings:
            output.warn(f"{result.team}: {warning}")
