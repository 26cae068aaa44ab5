"""`envctl report` (provisioner/report.py) and, on the same sandbox, the health that `status` and `list` show."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from typer.testing import CliRunner

from provisioner.cli.main import app
from provisioner.report import TeamReport, markdown, team_report
from tests.conftest import SANDBOX_CREDENTIALS, fraud_in_a_sandbox

pytestmark = [pytest.mark.sandbox]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    with fraud_in_a_sandbox(tmp_path_factory) as root:
        yield root


@pytest.fixture
def runner(project, monkeypatch):
    monkeypatch.chdir(project)
    monkeypatch.setenv("ENVCTL_SANDBOX_HOSTS", "false")
    return CliRunner()


def _clients(endpoint: str):
    kw = dict(endpoint_url=endpoint, region_name="eu-west-1", **SANDBOX_CREDENTIALS)
    return boto3.client("cloudwatch", **kw), boto3.client("logs", **kw)


def test_uptime_counts_the_minutes_with_a_heartbeat_of_one_since_the_environment_was_made(moto_endpoint):
    cloudwatch, logs = _clients(moto_endpoint)
    team = "uptimetest"
    logs.create_log_group(logGroupName=f"/envctl/{team}")
    created = next(g for g in logs.describe_log_groups(logGroupNamePrefix=f"/envctl/{team}")["logGroups"])["creationTime"]
    start = datetime.fromtimestamp(created / 1000, tz=timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
    now = start + timedelta(minutes=120)
    beats = [1.0] * 80 + [0.0] * 10  # then 30 minutes without any heartbeat (a stopped host): down too
    data = [{"MetricName": "SchedulerHeartbeat", "Value": value, "Timestamp": start + timedelta(minutes=i, seconds=20)}
            for i, value in enumerate(beats)]
    data.append({"MetricName": "DagRunFailed", "Value": 2.0, "Timestamp": start + timedelta(minutes=5)})
    data.append({"MetricName": "DagRunFailed", "Value": 1.0, "Timestamp": start - timedelta(hours=3)})  # before it existed
    for first in range(0, len(data), 20):
        cloudwatch.put_metric_data(Namespace=f"envctl/{team}", MetricData=data[first:first + 20])

    report = team_report(cloudwatch, logs, team, timedelta(days=30), now=now)

    assert (report.minutes, report.minutes_up, report.failed_runs) == (120, 80, 2)
    assert report.since == start  # not 30 days ago: the team did not exist then
    assert round(report.uptime, 2) == 66.67


def test_the_report_is_a_markdown_table():
    text = markdown([TeamReport("fraud", datetime(2026, 11, 2, tzinfo=timezone.utc), minutes=1000, minutes_up=990,
                                failed_runs=3),
                     TeamReport("treasury", None, note="the sandbox is stopped: its | metrics are gone")], "30d")
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert table[0] == "| team | uptime | minutes up | failed DAG runs | since | note |"
    assert table[2] == "| fraud | 99.00 % | 990 / 1000 | 3 | 2026-11-02 00:00 |  |"
    assert table[3] == "| treasury | n/a | n/a | n/a |  | the sandbox is stopped: its \\| metrics are gone |"
    assert "a minute without a heartbeat of 1 counts as down" in text


def test_envctl_report_prints_a_row_per_team(runner):
    result = runner.invoke(app, ["report", "--since", "1d"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("| fraud |")]
    assert len(rows) == 1, result.stdout


@pytest.mark.parametrize("since", ["30", "1w", "0d", "-3d"])
def test_a_bad_since_is_bad_input_naming_the_option(runner, since):
    result = runner.invoke(app, ["report", "--since", since])
    assert result.exit_code == 2, result.output
    assert "--since" in result.output and "7d" in result.output


def test_status_json_has_the_health_and_its_reasons_at_the_top_level(runner):
    result = runner.invoke(app, ["status", "fraud", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    # fraud was made without hosts: nothing runs its Airflow, and the verdict says so
    assert info["health"] == "down"
    assert info["health_reasons"] == ["fraud's instance has no sandbox host, so no Airflow runs (it was created without --hosts)"]


def test_status_prints_the_verdict_and_each_reason(runner):
    result = runner.invoke(app, ["status", "fraud"])
    assert result.exit_code == 0, result.output
    assert "health" in result.stdout and "down" in result.stdout
    assert "  - fraud's instance has no sandbox host" in result.stdout


def test_list_has_a_health_column(runner):
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["team"]: row for row in json.loads(result.stdout)}
    assert rows["fraud"]["health"] == "down" and rows["fraud"]["health_reasons"]
    assert rows["treasury"]["health"] == ""  # requested, not created
    table = runner.invoke(app, ["list"]).stdout.splitlines()
    header = next(line for line in table if line.split()[:2] == ["team", "status"])
    assert header.split()[2] == "health"
    assert next(line for line in table if line.split()[:1] == ["fraud"]).split()[2] == "down"
