"""`envctl cost [team]`: the monthly estimate of one team's or every team's request, against its budget.

Offline: only the requests and the price table are read; no AWS account, no sandbox.
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
    if team:
        estimates = [estimate(resolve_team(settings, team), prices)]
    else:
        estimates = [estimate(spec, prices) for spec in _every_team(settings)]
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
