"""envctl logs: a team's container, bootstrap and job logs from its CloudWatch log group (provisioner/logs.py)."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Optional

import typer

from provisioner.cli import options as opt
from provisioner.cli.common import engine_for, load_settings, resolve_team, start

Component = Annotated[
    Optional[str],
    typer.Argument(help="One component: scheduler, webserver (Airflow 2) or api-server and dag-processor (Airflow 3), "
                        "postgres, init, bootstrap, job-daily, job-dag-sync, job-metrics, job-backup. Default: all.",
                  show_default=False),
]
Since = Annotated[str, typer.Option("--since", help="How far back: 45s, 30m, 2h, 7d.")]
Follow = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")]


def logs(team: opt.Team, component: Component = None, since: Since = "1h", follow: Follow = False,
         target: opt.Target = None) -> None:
    """Print a team's logs as `<time> <component> <message>` lines, oldest first (times in UTC)."""
    from provisioner import logs as team_logs

    window = team_logs.parse_since(since)
    settings = load_settings(target=target)
    resolve_team(settings, team)
    start(settings, f"logs {team}")
    engine = engine_for(settings)
    outputs = engine.outputs(team)
    group = outputs["log_group"]
    client = engine.aws_client("logs", outputs["region"])
    streams = team_logs.streams_for(team_logs.streams_by_component(client, group), component)
    start_ms = int((time.time() - window.total_seconds()) * 1000)
    if not follow:
        for line in team_logs.read_lines(client, group, streams, start_ms):
            sys.stdout.write(line.render() + "\n")
        return
    try:
        for line in team_logs.follow(client, group, lambda: team_logs.streams_for(
                team_logs.streams_by_component(client, group), component), start_ms):
            sys.stdout.write(line.render() + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return  # Ctrl-C is how --follow ends
