"""envctl report: each team's uptime (scheduler heartbeat) and failed DAG runs, as Markdown (provisioner/report.py)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from provisioner.cli import options as opt
from provisioner.cli.common import engine_for, load_settings, start

Since = Annotated[str, typer.Option("--since", help="The window: 12h, 7d, 30d (a number and s, m, h or d).")]


def report(since: Since = "30d", target: opt.Target = None) -> None:
    """Print every team's uptime and failed DAG runs over the window as a Markdown table (paste it into your notes)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from provisioner import report as reports
    from provisioner.errors import EnvctlError
    from provisioner.logs import parse_since

    window = parse_since(since)
    settings = load_settings(target=target)
    start(settings, f"report --since {since}")
    engine = engine_for(settings)
    rows = []
    for stack in engine.list_stacks():
        try:
            status = engine.status(stack.team)
            region = status.outputs.get("region")
            if not status.reachable:
                rows.append(reports.TeamReport(stack.team, None, note="the sandbox is stopped: its metrics are gone"))
                continue
            if not status.details.get("sandbox", {}).get("state_matches_server", True):
                rows.append(reports.TeamReport(stack.team, None, note="the sandbox server was restarted since it was made"))
                continue
            if not region:
                rows.append(reports.TeamReport(stack.team, None, note="no outputs yet (its last operation did not finish)"))
                continue
            rows.append(reports.team_report(engine.aws_client("cloudwatch", region), engine.aws_client("logs", region),
                                            stack.team, window))
        except (BotoCoreError, ClientError) as exc:
            rows.append(reports.TeamReport(stack.team, None, note=f"cannot read its metrics: {str(exc).splitlines()[0]}"))
        except EnvctlError as exc:
            rows.append(reports.TeamReport(stack.team, None, note=exc.message))
    sys.stdout.write(reports.markdown(rows, since))
