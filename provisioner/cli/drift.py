"""`envctl drift`: every team with an environment on the target refreshed, and which drifted and how
(the scheduled drift workflow keeps one issue up to date with it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.cli.common import engine_for, load_settings, start
from provisioner.cli.plan_apply import Parallel, print_table
from provisioner.errors import EnvctlError

Markdown = Annotated[
    Optional[Path],
    typer.Option("--markdown", show_default=False, help="Also write the report as Markdown (the drift issue body) to this file."),
]


def drift(
    markdown: Markdown = None,
    parallel: Parallel = 4,
    target: opt.Target = None,
    as_json: opt.Json = False,
    stacks_dir: opt.StacksDir = None,
) -> None:
    """Refresh every team with an environment and report which drifted from the last apply (exit 1 if a refresh failed)."""
    from provisioner.pull_requests.drift import check_drift, render_drift_markdown

    settings = load_settings(target=target, stacks_dir=stacks_dir)
    start(settings, "drift check of every team with an environment")
    engine = engine_for(settings)
    with output.progress(f"refreshing every environment, {parallel} at a time") as report:
        result = check_drift(settings, engine, parallel=parallel, progress=report)
    if markdown:
        markdown.write_text(render_drift_markdown(result))
        output.err.print(f"wrote {markdown}")
    if as_json:
        output.print_json(result.to_json())
    else:
        _print_drift(result)
    if result.failed:
        raise EnvctlError(f"the refresh failed for {', '.join(t.team for t in result.failed)} (see above)")


def _print_drift(result) -> None:
    if not result.teams:
        output.out.print(f"no environment on {result.target}: nothing to check")
        return
    style = {"in sync": "green", "drifted": "yellow", "no request": "yellow", "failed": "red"}
    print_table(("team", "status", "differ"),
                [[t.team, f"[{style[t.status]}]{t.status}[/]", str(len(t.changes)) if t.changes else "-"] for t in result.teams],
                left=("team", "status"))
    for team in result.teams:
        if team.status == "in sync":
            continue
        output.out.print(f"[bold]{team.team}[/]: {team.message}", highlight=False)
        for change in team.changes:
            detail = f" ({change['detail']})" if change["detail"] else ""
            output.out.print(f"  {change['type']} {change['name']}: {change['action']}{detail}", markup=False)
    output.out.print(f"{len(result.drifted)} of {len(result.teams)} team(s) drifted")
