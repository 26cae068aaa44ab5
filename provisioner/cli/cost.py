"""`envctl cost [team]`: the monthly estimate of one team's or every team's request, against its budget.

Offline: the requests and the price table are read, and each team's recorded outputs (the sandbox's
state file, the Pulumi stack's outputs) say whether `envctl pause` paused it; no AWS account, no sandbox.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.cli.common import load_settings, resolve_team, start
from provisioner.errors import InvalidInput

OptionalTeam = Annotated[
    Optional[str],
    typer.Argument(help="Team name (stacks/<team>.yaml). Default: every team.", show_default=False),
]


def cost(team: OptionalTeam = None, as_json: opt.Json = False, stacks_dir: opt.StacksDir = None) -> None:
    """Estimate the monthly cost of a team's request (or of every team's) from the price table; warn when over budget."""
    from provisioner.cost import estimate, load_prices

    settings = load_settings(stacks_dir=stacks_dir)
    start(settings, f"cost estimate of {team or 'every team'}")
    prices = load_prices()
    specs = [resolve_team(settings, team)] if team else _every_team(settings)
    paused = _paused_teams(settings, [spec.team for spec in specs])
    estimates = [estimate(spec, prices, paused=spec.team in paused) for spec in specs]
    if as_json:
        docs = [e.to_json() for e in estimates]
        output.print_json(docs[0] if team else {"teams": docs})
    else:
        for item in estimates:
            _print_estimate(item)
    for item in estimates:
        if item.over_budget:
            output.warn(f"{item.team}: the estimate ${item.monthly_usd:,.2f}/month is over its budget_usd_month "
                        f"(${item.budget_usd_month:,}); lower the request or raise the budget")


def _paused_teams(settings, teams: list[str]) -> set[str]:
    """The teams whose recorded outputs say they are paused (`paused_since`); a team without an environment
    (or whose record cannot be read) is estimated as running."""
    from provisioner.cli.common import engine_for
    from provisioner.errors import EnvctlError

    try:
        engine = engine_for(settings)
        created = {stack.team for stack in engine.list_stacks()}
        return {team for team in teams if team in created and engine.outputs(team).get("paused_since")}
    except EnvctlError:
        return set()


def _every_team(settings):
    from provisioner.spec import request_files, validate_files

    files = request_files(settings.stacks_dir)
    if not files:
        raise InvalidInput(f"{settings.stacks_dir}: no request files (*.yaml) to estimate")
    resolved, errors = validate_files(files, default_region=settings.region, pool=settings.cidr_pool,
                                      prefix=settings.team_prefix, root=settings.root)
    if errors:
        raise InvalidInput(f"{len(errors)} problem(s) in the requests; nothing was estimated", errors=errors)
    return sorted(resolved, key=lambda spec: spec.team)


def _print_estimate(item) -> None:
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False, title_justify="left",
                  title=f"{item.team} · {item.region}" + (" · paused" if item.paused else ""))
    for column in ("item", "detail", "USD/month", "note"):
        table.add_column(column, justify="right" if column == "USD/month" else "left")
    for line in item.items:
        table.add_row(line.item, line.detail, f"{line.monthly_usd:,.2f}", line.note)
    status = "[red]over budget[/]" if item.over_budget else "[green]within budget[/]"
    table.add_row("[bold]total[/]", f"budget ${item.budget_usd_month:,}/month", f"[bold]{item.monthly_usd:,.2f}[/]", status)
    output.out.print(table)
    output.out.print(f"[dim]prices: {item.prices_file}, {item.region} as of {item.prices_as_of}[/]\n")
