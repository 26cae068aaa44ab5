"""The health verdict (provisioner/health.py): its rules, with the team's alarms made in moto and put in set states."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import pytest

from provisioner import health
from provisioner.components.names import TeamNames
from provisioner.engines.base import EnvironmentStatus
from provisioner.health import DEGRADED, DOWN, HEALTHY, DagRun, assess
from tests.conftest import SANDBOX_CREDENTIALS

TEAM = "healthtest"
NAMES = TeamNames(TEAM)
NOW = datetime(2026, 12, 2, 14, 0, tzinfo=timezone.utc)
BOOTED = {"status": "succeeded", "step": "result", "at": (NOW - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")}
KEYS = ("host-status", "scheduler-heartbeat", "dag-run-failures", "data-volume-usage", "backup-age")


@pytest.fixture
def cloudwatch(moto_endpoint):
    """The team's alarms in the session's moto server (as TeamAlerts names and describes them), removed afterwards."""
    client = boto3.client("cloudwatch", endpoint_url=moto_endpoint, region_name="eu-west-1", **SANDBOX_CREDENTIALS)
    descriptions = {"dag-run-failures": "a DAG run failed", "data-volume-usage": "the data volume is over 80 % full"}
    for key in KEYS:
        client.put_metric_alarm(AlarmName=NAMES.alarm(key), AlarmDescription=f"envctl {TEAM}: {descriptions.get(key, key)}",
                                Namespace=NAMES.metrics_namespace, MetricName="M", Statistic="Sum", Period=60,
                                EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    yield client
    client.delete_alarms(AlarmNames=[NAMES.alarm(key) for key in KEYS])


def _set(client, key: str, state: str, reason: str = "Threshold Crossed: test") -> None:
    client.set_alarm_state(AlarmName=NAMES.alarm(key), StateValue=state, StateReason=reason)


def _verdict(client, **facts):
    facts.setdefault("bootstrap", BOOTED)
    return assess(TEAM, "sandbox", alarms=health.team_alarms(client, TEAM), now=NOW, **facts)


def test_a_new_environment_with_no_backup_and_no_dag_run_is_healthy(cloudwatch):
    alarms = health.team_alarms(cloudwatch, TEAM)
    assert {a["StateValue"] for a in alarms} == {"INSUFFICIENT_DATA"}  # every new alarm starts so
    verdict = _verdict(cloudwatch, backups={"count": 0, "latest": None, "stale": False})
    assert (verdict.verdict, verdict.reasons) == (HEALTHY, [])
    assert verdict.to_json() == {"health": HEALTHY, "health_reasons": []}


def test_every_alarm_ok_is_healthy(cloudwatch):
    for key in KEYS:
        _set(cloudwatch, key, "OK")
    assert _verdict(cloudwatch).verdict == HEALTHY


def test_a_missing_heartbeat_is_down_and_names_the_scheduler(cloudwatch):
    _set(cloudwatch, "scheduler-heartbeat", "ALARM", "Threshold Crossed: 3 out of the last 3 datapoints were less than 1")
    verdict = _verdict(cloudwatch)
    assert verdict.verdict == DOWN
    assert verdict.reasons[0].startswith("the scheduler's heartbeat is missing: Threshold Crossed: 3 out of the last 3")
    assert NAMES.alarm("scheduler-heartbeat") in verdict.reasons[0]


def test_the_heartbeat_alarm_is_forgiven_for_five_minutes_after_the_host_booted(cloudwatch):
    _set(cloudwatch, "scheduler-heartbeat", "ALARM")
    just_booted = {**BOOTED, "at": (NOW - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    verdict = _verdict(cloudwatch, bootstrap=just_booted)
    assert verdict.verdict == HEALTHY
    assert "2 min after the host booted" in verdict.reasons[0]
    later = {**BOOTED, "at": (NOW - timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert _verdict(cloudwatch, bootstrap=later).verdict == DOWN


def test_a_failed_host_status_check_is_down(cloudwatch):
    _set(cloudwatch, "host-status", "ALARM")
    verdict = _verdict(cloudwatch)
    assert verdict.verdict == DOWN
    assert verdict.reasons[0].startswith("the host failed an EC2 status check")


@pytest.mark.parametrize(("key", "said"), [("dag-run-failures", "a DAG run failed"),
                                           ("data-volume-usage", "the data volume is over 80 % full"),
                                           ("backup-age", "backup-age")])
def test_any_other_alarm_in_alarm_is_degraded_saying_what(cloudwatch, key, said):
    _set(cloudwatch, key, "ALARM", "Threshold Crossed: 1 datapoint")
    verdict = _verdict(cloudwatch)
    assert verdict.verdict == DEGRADED
    assert verdict.reasons == [f"{said}: Threshold Crossed: 1 datapoint (alarm {NAMES.alarm(key)})"]


def test_down_outranks_degraded_and_keeps_both_reasons(cloudwatch):
    _set(cloudwatch, "dag-run-failures", "ALARM")
    _set(cloudwatch, "scheduler-heartbeat", "ALARM")
    verdict = _verdict(cloudwatch)
    assert verdict.verdict == DOWN
    assert len(verdict.reasons) == 2 and "scheduler" in verdict.reasons[0]


def test_the_bootstrap_result_failed_is_down_unfinished_is_degraded():
    failed = assess(TEAM, "aws", bootstrap={"status": "failed", "step": "airflow"}, now=NOW)
    assert failed.verdict == DOWN
    assert failed.reasons == [f"the host's bootstrap failed at step airflow (`envctl logs {TEAM} bootstrap`)"]
    pending = assess(TEAM, "aws", bootstrap={"status": "pending"}, now=NOW)
    assert pending.verdict == DEGRADED and "has not finished (status pending)" in pending.reasons[0]


def test_backups_stale_or_missing_a_day_after_boot_are_degraded_none_on_a_new_host_is_not():
    stale = assess(TEAM, "aws", bootstrap=BOOTED, backups={"count": 3, "latest": "20261130T020000Z", "age_hours": 58.0,
                                                          "stale": True}, now=NOW)
    assert stale.verdict == DEGRADED and "20261130T020000Z) is 58 hours old" in stale.reasons[0]
    old_host = {**BOOTED, "at": (NOW - timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    none_yet = assess(TEAM, "aws", bootstrap=old_host, backups={"count": 0, "latest": None, "stale": False}, now=NOW)
    assert none_yet.verdict == DEGRADED and none_yet.reasons[0].startswith("no backup yet, 30 h after the host booted")
    assert assess(TEAM, "aws", bootstrap=BOOTED, backups={"count": 0, "stale": False}, now=NOW).verdict == HEALTHY


def test_the_last_dag_run_failed_is_degraded():
    verdict = assess(TEAM, "aws", bootstrap=BOOTED, last_dag_run=DagRun(True, NOW - timedelta(hours=1)), now=NOW)
    assert verdict.verdict == DEGRADED and verdict.reasons[0].startswith("the last DAG run failed")
    assert assess(TEAM, "aws", bootstrap=BOOTED, last_dag_run=DagRun(False, NOW), now=NOW).verdict == HEALTHY


def test_the_last_dag_run_is_read_from_the_team_metrics(moto_endpoint):
    client = boto3.client("cloudwatch", endpoint_url=moto_endpoint, region_name="eu-west-1", **SANDBOX_CREDENTIALS)
    now = datetime.now(timezone.utc)
    team = "dagrunstest"
    assert health.last_dag_run(client, team, now) is None

    def put(metric: str, minutes_ago: int, value: float = 1.0) -> None:
        client.put_metric_data(Namespace=TeamNames(team).metrics_namespace, MetricData=[
            {"MetricName": metric, "Value": value, "Timestamp": now - timedelta(minutes=minutes_ago)}])

    put("DagRunFailed", 0 + 40, 0.0)  # a publisher's zero is no run
    put("DagRunSucceeded", 30)
    assert health.last_dag_run(client, team, now).failed is False
    put("DagRunFailed", 10)
    assert health.last_dag_run(client, team, now).failed is True


def test_a_stopped_sandbox_is_down_without_reading_anything():
    status = EnvironmentStatus(team=TEAM, target="sandbox", resources=3, reachable=False)
    verdict = health.gather(engine=None, status=status)
    assert verdict.verdict == DOWN and verdict.reasons[0].startswith("the sandbox is stopped")


def test_a_restarted_sandbox_that_lost_the_environment_is_down():
    status = EnvironmentStatus(team=TEAM, target="sandbox", resources=3,
                               details={"sandbox": {"running": True, "state_matches_server": False}})
    verdict = health.gather(engine=None, status=status)
    assert verdict.verdict == DOWN and "restarted" in verdict.reasons[0]


def test_a_sandbox_instance_without_a_host_is_down_and_a_stopped_host_too():
    no_host = assess(TEAM, "sandbox", expects_host=True, bootstrap={"status": "pending"}, now=NOW)
    assert (no_host.verdict, len(no_host.reasons)) == (DOWN, 1) and "without --hosts" in no_host.reasons[0]
    exited = assess(TEAM, "sandbox", expects_host=True, host={"container": "envctl-host-i-1", "state": "exited"},
                    bootstrap=BOOTED, now=NOW)
    assert exited.verdict == DOWN and exited.reasons == ["the host container envctl-host-i-1 is exited"]


def test_the_names_health_and_report_read_are_the_ones_the_alarms_watch():
    from provisioner import report
    from provisioner.components.alerts import BACKUP_AGE_HOURS, TEAM_METRICS

    assert health.DAG_RUN_FAILED == report.DAG_RUN_FAILED == TEAM_METRICS["dag-run-failures"].name == "DagRunFailed"
    assert health.DAG_RUN_SUCCEEDED == "DagRunSucceeded"
    assert report.HEARTBEAT == TEAM_METRICS["scheduler-heartbeat"].name
    assert health.BACKUP_AGE_HOURS == BACKUP_AGE_HOURS
    assert set(health.DOWN_ALARMS) <= {key for key in KEYS}


def test_a_paused_environment_is_down_on_purpose_saying_how_to_resume(cloudwatch):
    _set(cloudwatch, "scheduler-heartbeat", "ALARM", "Threshold Crossed: no datapoints (the host is stopped)")
    paused = _verdict(cloudwatch, host={"container": "envctl-host-i-1", "state": "exited"}, expects_host=True,
                      paused_since="2026-12-02T12:00:00Z")
    assert paused.verdict == DOWN and len(paused.reasons) == 1
    assert "paused since 2026-12-02T12:00:00Z" in paused.reasons[0] and f"envctl resume {TEAM}" in paused.reasons[0]
    assert "heartbeat" not in paused.reasons[0], "a stopped host's silent heartbeat is not a failure while paused"
    assert assess(TEAM, "sandbox", reachable=False, paused_since="2026-12-02T12:00:00Z", now=NOW).reasons[0].startswith(
        "the sandbox is stopped"), "an unreachable sandbox says so first"
