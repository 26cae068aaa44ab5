"""`envctl report`: each team's uptime and failed DAG runs over a window, as a Markdown table.

Uptime is the share of the window's minutes in which the team's host sent a scheduler heartbeat of 1
(SchedulerHeartbeat in `envctl/<team>`: 1 each minute while the scheduler's heartbeat is fresh, 0
when it is not). A minute without any heartbeat counts as down, as the heartbeat alarm treats missing
data as breaching: a host that is off, or a publisher that stopped, is not up. The window starts at
`--since` ago or when the environment was made (its log group's creation time), whichever is later,
so a team made yesterday is not charged for the month before it existed.

The heartbeats are summed per hour (GetMetricStatistics, Sum, period 3600; each hour capped at its
minutes): CloudWatch keeps one-minute data for 15 days only, five-minute data for 63 days and hourly
data for 455 days, and one call returns at most 1,440 datapoints, so hours (in calls of 1,440) are
what a 30-day (or a year's) window can be read at
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricStatistics.html).
Failed DAG runs are the Sum of DagRunFailed over the same window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from provisioner.components.metrics import TEAM_METRICS
from provisioner.components.names import TeamNames

HOUR_S = 3600
MAX_DATAPOINTS = 1440  # per GetMetricStatistics call
HEARTBEAT, DAG_RUN_FAILED = TEAM_METRICS["scheduler-heartbeat"].name, TEAM_METRICS["dag-run-failures"].name


@dataclass(frozen=True)
class TeamReport:
    team: str
    since: datetime | None  # where the team's window starts; None: nothing could be read
    minutes: int = 0  # in the window
    minutes_up: int = 0
    failed_runs: int = 0
    note: str = ""  # why there are no numbers, or what to know about them

    @property
    def uptime(self) -> float | None:
        return 100 * self.minutes_up / self.minutes if self.minutes else None


def _sums(cloudwatch: Any, namespace: str, metric: str, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    """(hour start, Sum) for every hour of [start, end) with data, in calls of at most 1,440 hours."""
    found = []
    chunk = timedelta(seconds=HOUR_S * MAX_DATAPOINTS)
    at = start
    while at < end:
        until = min(end, at + chunk)
        points = cloudwatch.get_metric_statistics(Namespace=namespace, MetricName=metric, StartTime=at, EndTime=until,
                                                  Period=HOUR_S, Statistics=["Sum"])["Datapoints"]
        found += [(p["Timestamp"], float(p["Sum"])) for p in points]
        at = until
    return found


def created_at(logs: Any, team: str) -> datetime | None:
    """When the environment was made: its log group's creation time (the program makes it with the team)."""
    group = TeamNames(team).log_group
    for found in logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups", []):
        if found["logGroupName"] == group:
            return datetime.fromtimestamp(found["creationTime"] / 1000, tz=timezone.utc)
    return None


def team_report(cloudwatch: Any, logs: Any, team: str, window: timedelta, now: datetime | None = None) -> TeamReport:
    end = (now or datetime.now(timezone.utc)).replace(second=0, microsecond=0)
    start = end - window
    created = created_at(logs, team)
    if created is not None and created > start:
        start = created.replace(second=0, microsecond=0) + (timedelta(minutes=1) if created.second else timedelta())
    minutes = max(0, int((end - start).total_seconds() // 60))
    if not minutes:
        return TeamReport(team, start, note="made less than a minute ago")
    namespace = TeamNames(team).metrics_namespace
    up = sum(min(60.0, value) for _, value in _sums(cloudwatch, namespace, HEARTBEAT, start, end))
    failed = sum(value for _, value in _sums(cloudwatch, namespace, DAG_RUN_FAILED, start, end))
    return TeamReport(team, start, minutes=minutes, minutes_up=min(minutes, int(up)), failed_runs=int(failed))


def markdown(reports: list[TeamReport], window: str, now: datetime | None = None) -> str:
    """The table a platform team pastes into its weekly notes (every line of it starts with `|`)."""
    now = now or datetime.now(timezone.utc)
    lines = [f"Uptime over the last {window} (to {now:%Y-%m-%d %H:%M} UTC), from each team's scheduler heartbeat: "
             "a minute without a heartbeat of 1 counts as down.", "",
             "| team | uptime | minutes up | failed DAG runs | since | note |",
             "| --- | ---: | ---: | ---: | --- | --- |"]
    for report in reports:
        uptime = f"{report.uptime:.2f} %" if report.uptime is not None else "n/a"
        counted = f"{report.minutes_up} / {report.minutes}" if report.minutes else "n/a"
        since = f"{report.since:%Y-%m-%d %H:%M}" if report.since else ""
        note = report.note.replace("|", "\\|")
        failed = str(report.failed_runs) if report.since and report.minutes else "n/a"
        lines.append(f"| {report.team} | {uptime} | {counted} | {failed} | {since} | {note} |")
    return "\n".join(lines) + "\n"
