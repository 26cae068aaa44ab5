"""A team's health verdict (`envctl status`, `envctl list`): healthy, degraded or down, with the reasons.

From what both targets have: the states of the team's alarms (components/alerts.py; CloudWatch
evaluates them on AWS, the sandbox's server does in the sandbox: engines/sandbox/alarm_evaluation.py),
the host's bootstrap result (the SSM parameter the userdata writes), the team's backups (as
`envctl status` lists them) and the last DAG run (DagRunFailed / DagRunSucceeded in the team's
namespace); on the sandbox also whether its server runs and the host container's state.

- **down**: nothing of the team's Airflow can be relied on: the scheduler's heartbeat alarm or the
  host status check alarm is in ALARM, the bootstrap failed, the host container is not running, or
  the sandbox is stopped (or was restarted and lost the environment).
- **degraded**: Airflow runs but something needs a look: any other alarm in ALARM (DAG run failures,
  data volume, backup age, the endpoint's 5XX rate or latency), a bootstrap that has not finished,
  the newest backup older than 26 h (or none a day after the host booted), the last DAG run failed.
- A paused environment (`envctl pause`) is down on purpose: its one reason says so and how to
  resume; the stopped host and its silent heartbeat are not reported as failures.
- **healthy**: none of these. A new environment with no backup and no DAG run yet is healthy, and
  an alarm in INSUFFICIENT_DATA (every new alarm starts so) counts as nothing. The heartbeat alarm
  treats missing data as breaching, so it is in ALARM until the host's first heartbeats arrive: for
  HEARTBEAT_GRACE after the bootstrap succeeded, its ALARM is noted, not held against the team.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from provisioner.components.metrics import TEAM_METRICS
from provisioner.components.names import TeamNames

HEALTHY, DEGRADED, DOWN = "healthy", "degraded", "down"
HEARTBEAT_GRACE = timedelta(minutes=5)
DOWN_ALARMS = ("scheduler-heartbeat", "host-status")
DAG_RUNS_LOOKBACK = timedelta(days=1)
DAG_RUNS_PERIOD_S = 300  # 288 datapoints a day: within GetMetricStatistics' 1,440
DAG_RUN_FAILED, DAG_RUN_SUCCEEDED = TEAM_METRICS["dag-run-failures"].name, TEAM_METRICS["dag-run-successes"].name
# As components/alerts.py has it (tests/test_health.py checks): not imported, since that module imports
# pulumi_aws and `envctl status` should not wait for it.
BACKUP_AGE_HOURS = 26


@dataclass(frozen=True)
class Health:
    verdict: str
    reasons: list[str] = field(default_factory=list)  # sentences; for healthy, notes (possibly none)

    def to_json(self) -> dict[str, Any]:
        return {"health": self.verdict, "health_reasons": self.reasons}


@dataclass(frozen=True)
class DagRun:
    failed: bool
    at: datetime  # the start of the 5-minute period it ended in (UTC)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h"


def _what(alarm: dict[str, Any], team: str) -> str:
    description = alarm.get("AlarmDescription") or alarm["AlarmName"]
    return description.removeprefix(f"envctl {team}: ")


def assess(team: str, target: str, *, reachable: bool = True, sandbox: dict[str, Any] | None = None,
           host: dict[str, Any] | None = None, expects_host: bool = False, bootstrap: dict[str, Any] | None = None,
           alarms: list[dict[str, Any]] | None = None, alarms_error: str = "", backups: dict[str, Any] | None = None,
           last_dag_run: DagRun | None = None, paused_since: str | None = None, now: datetime | None = None) -> Health:
    """The verdict from what was read (pure: the tests give it states directly)."""
    now = now or datetime.now(timezone.utc)
    if paused_since and reachable:
        return Health(DOWN, [f"{team} is paused since {paused_since} (`envctl pause`): the host and the notebook are "
                             f"stopped and the endpoint removed on purpose, the data kept; `envctl resume {team}` "
                             "brings it back"])
    down: list[str] = []
    degraded: list[str] = []
    notes: list[str] = []
    if not reachable:
        return Health(DOWN, [f"the sandbox is stopped: nothing answers for {team}'s AWS and no alarm is evaluated "
                             "(`envctl sandbox start`, then `envctl status` again)"])
    if sandbox is not None and not sandbox.get("state_matches_server", True):
        return Health(DOWN, [f"the sandbox server was restarted since {team} was made and lost its resources "
                             f"(`envctl update {team}` makes them again)"])
    if expects_host and host is None:
        down.append(f"{team}'s instance has no sandbox host, so no Airflow runs (it was created without --hosts)")
    elif host is not None and host.get("state") not in (None, "running"):
        down.append(f"the host container {host.get('container', '')} is {host.get('state')}")

    status = (bootstrap or {}).get("status", "unknown")
    booted_at = _parse_time((bootstrap or {}).get("at")) if status == "succeeded" else None
    if status == "failed":
        down.append(f"the host's bootstrap failed at step {bootstrap.get('step', '?')} "  # type: ignore[union-attr]
                    f"(`envctl logs {team} bootstrap`)")
    elif status != "succeeded" and not (expects_host and host is None):
        detail = f": {bootstrap['error']}" if bootstrap and bootstrap.get("error") else ""
        degraded.append(f"the host's bootstrap has not finished (status {status}"
                        f"{', step ' + bootstrap['step'] if bootstrap and bootstrap.get('step') else ''}){detail}")

    names = TeamNames(team)
    if alarms_error:
        degraded.append(f"the alarms cannot be read: {alarms_error}")
    for alarm in alarms or []:
        if alarm.get("StateValue") != "ALARM":
            continue
        key = alarm["AlarmName"].removeprefix(names.prefix + "-")
        reason = alarm.get("StateReason", "")
        if key == "scheduler-heartbeat":
            if booted_at is None:
                notes.append("the scheduler's heartbeat alarm is in ALARM before the bootstrap succeeded")
                continue
            if now - booted_at < HEARTBEAT_GRACE:
                notes.append(f"the scheduler's heartbeat alarm is in ALARM {_ago(now - booted_at)} after the host booted; "
                             f"its first heartbeats are due within {int(HEARTBEAT_GRACE.total_seconds() // 60)} min")
                continue
            down.append(f"the scheduler's heartbeat is missing: {reason} (alarm {alarm['AlarmName']}; "
                        f"`envctl logs {team} scheduler`)")
        elif key == "host-status":
            down.append(f"the host failed an EC2 status check: {reason} (alarm {alarm['AlarmName']})")
        else:
            degraded.append(f"{_what(alarm, team)}: {reason} (alarm {alarm['AlarmName']})")

    if backups:
        if backups.get("error"):
            degraded.append(backups["error"])
        elif backups.get("stale"):
            degraded.append(f"the newest backup ({backups.get('latest')}) is {backups.get('age_hours', 0):.0f} hours old, "
                            f"more than {BACKUP_AGE_HOURS}: the nightly job may be failing (`envctl logs {team} job-daily`)")
        elif not backups.get("count") and booted_at is not None and now - booted_at > timedelta(hours=BACKUP_AGE_HOURS):
            degraded.append(f"no backup yet, {_ago(now - booted_at)} after the host booted: the nightly job may be "
                            f"failing (`envctl logs {team} job-daily`)")
    if last_dag_run is not None and last_dag_run.failed:
        degraded.append(f"the last DAG run failed (it ended between {last_dag_run.at:%Y-%m-%d %H:%M} and "
                        f"{last_dag_run.at + timedelta(seconds=DAG_RUNS_PERIOD_S):%H:%M} UTC; `envctl logs {team} scheduler`)")
    if down:
        return Health(DOWN, down + degraded)
    if degraded:
        return Health(DEGRADED, degraded)
    return Health(HEALTHY, notes)


# ------------------------------------------------------------------------------- reading the target


def team_alarms(cloudwatch: Any, team: str) -> list[dict[str, Any]]:
    """The team's metric alarms (DescribeAlarms by name; the endpoint's exist only with an endpoint)."""
    found = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNames=list(TeamNames(team).alarm_names),
                                                                       AlarmTypes=["MetricAlarm"]):
        found.extend(page.get("MetricAlarms", []))
    return found


def last_dag_run(cloudwatch: Any, team: str, now: datetime | None = None) -> DagRun | None:
    """The latest 5-minute period of the last day in which a DAG run ended, and whether one failed in it."""
    now = now or datetime.now(timezone.utc)
    latest: dict[bool, datetime] = {}
    for failed, metric in ((True, DAG_RUN_FAILED), (False, DAG_RUN_SUCCEEDED)):
        points = cloudwatch.get_metric_statistics(
            Namespace=TeamNames(team).metrics_namespace, MetricName=metric, StartTime=now - DAG_RUNS_LOOKBACK,
            EndTime=now, Period=DAG_RUNS_PERIOD_S, Statistics=["Sum"])["Datapoints"]
        ended = [p["Timestamp"] for p in points if p.get("Sum", 0) > 0]
        if ended:
            newest = max(ended)
            latest[failed] = newest if newest.tzinfo else newest.replace(tzinfo=timezone.utc)
    if not latest:
        return None
    if True in latest and (False not in latest or latest[True] >= latest[False]):
        return DagRun(failed=True, at=latest[True])
    return DagRun(failed=False, at=latest[False])


def _bootstrap(engine: Any, details: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any] | None:
    """The bootstrap result `envctl status` already read (the sandbox), or the SSM parameter."""
    if "bootstrap" in details:
        return details["bootstrap"]
    parameter = outputs.get("bootstrap_parameter")
    if not parameter:
        return None
    import json

    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = engine.aws_client("ssm", outputs["region"]).get_parameter(Name=parameter)["Parameter"]["Value"]
        return json.loads(value)
    except (BotoCoreError, ClientError, ValueError) as exc:
        return {"status": "unknown", "error": str(exc).splitlines()[0]}


def gather(engine: Any, status: Any, backups: dict[str, Any] | None = None, now: datetime | None = None) -> Health:
    """The verdict of a team's environment: `status` is the engine's EnvironmentStatus, `backups` what
    `envctl status` read of them (provisioner/backups.py: backup_status)."""
    from botocore.exceptions import BotoCoreError, ClientError

    details, outputs = status.details, status.outputs
    sandbox = details.get("sandbox") if status.target == "sandbox" else None
    if not status.reachable or (sandbox is not None and not sandbox.get("state_matches_server", True)):
        return assess(status.team, status.target, reachable=status.reachable, sandbox=sandbox, now=now)
    region = outputs.get("region")
    if not region:
        return Health(DOWN, [f"{status.team} has no outputs yet (its last operation did not finish): "
                             f"`envctl update {status.team}`"])
    alarms: list[dict[str, Any]] = []
    error = ""
    dag_run = None
    try:
        cloudwatch = engine.aws_client("cloudwatch", region)
        alarms = team_alarms(cloudwatch, status.team)
        dag_run = last_dag_run(cloudwatch, status.team, now)
    except (BotoCoreError, ClientError) as exc:
        error = str(exc).splitlines()[0]
    return assess(
        status.team, status.target, sandbox=sandbox, host=details.get("host"),
        expects_host=status.target == "sandbox" and bool(outputs.get("instance_id")),
        bootstrap=_bootstrap(engine, details, outputs), alarms=alarms, alarms_error=error, backups=backups,
        last_dag_run=dag_run, paused_since=outputs.get("paused_since") or None, now=now,
    )
