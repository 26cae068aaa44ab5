"""The metrics the team's host publishes in its namespace `envctl/<team>` (TeamNames.metrics_namespace).

templates/envctl-metrics.py.j2 sends them every minute (issue 15, item 2); components/alerts.py
alarms on some of them and the health verdict reads them. A plain module (no Pulumi): the
userdata renderer takes the names and units from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TeamMetric:
    """A metric the host publishes in the team's namespace (no dimensions: the namespace is the team's)."""

    name: str
    unit: str
    meaning: str


TEAM_METRICS = {
    "scheduler-heartbeat": TeamMetric("SchedulerHeartbeat", "Count", "1 per minute while the scheduler's heartbeat is fresh"),
    "dag-run-failures": TeamMetric("DagRunFailed", "Count", "DAG runs that ended failed, per minute they ended in"),
    "dag-run-successes": TeamMetric("DagRunSucceeded", "Count", "DAG runs that ended successfully, per minute they ended in"),
    "task-failures": TeamMetric("TaskFailed", "Count", "task instances that ended failed (after their retries), per minute"),
    "data-volume-usage": TeamMetric("DataVolumeUsedPercent", "Percent", "used space of the data volume (/data)"),
    "backup-age": TeamMetric("NewestBackupAgeHours", "None",
                             "hours since the newest backup in the team bucket (sent once one exists)"),
}
