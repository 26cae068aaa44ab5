"""envctl logs, and what a sandbox create makes for observability: the log group's lines as
`<time> <component> <message>`, the owners' topic and the alarms (fraud in its own sandbox, no hosts)."""

from __future__ import annotations

import re
import time

import pytest
import yaml
from typer.testing import CliRunner

from provisioner.cli.main import app
from provisioner.logs import FOLLOW_LOOKBACK, follow, parse_since
from tests.conftest import fraud_in_a_sandbox, sandbox_client

pytestmark = [pytest.mark.sandbox]

GROUP = "/envctl/fraud"
INSTANCE = "i-0123456789abcdef0"
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (\S+) (.*)$")


def _put(logs, stream: str, *events: tuple[int, str]) -> None:
    try:
        logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass  # a second batch to the same stream
    logs.put_log_events(logGroupName=GROUP, logStreamName=stream,
                        logEvents=[{"timestamp": at, "message": message} for at, message in events])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """fraud created in its own sandbox; its log group holds a scheduler, a postgres and a bootstrap stream."""
    with fraud_in_a_sandbox(tmp_path_factory) as root:
        logs = sandbox_client(root, "logs")
        now = int(time.time() * 1000)
        _put(logs, f"{INSTANCE}/scheduler", (now - 120_000, "[scheduler] Starting the scheduler"),
             (now - 60_000, "[scheduler] Heartbeat"))
        _put(logs, f"{INSTANCE}/postgres", (now - 90_000, "database system is ready to accept connections"))
        _put(logs, f"{INSTANCE}/bootstrap", (now - 3 * 3600_000, "envctl: step strict"),
             (now - 100_000, "envctl: ENVCTL_BOOTSTRAP status=succeeded step=result"))
        yield root


@pytest.fixture
def runner(project, monkeypatch):
    monkeypatch.chdir(project)
    monkeypatch.setenv("ENVCTL_SANDBOX_HOSTS", "false")
    return CliRunner()


def _lines(result) -> list[tuple[str, str]]:
    assert result.exit_code == 0, result.output
    parsed = [LINE.match(line) for line in result.stdout.splitlines()]
    assert all(parsed), result.stdout
    return [(match.group(1), match.group(2)) for match in parsed]


def test_logs_prints_every_component_oldest_first(runner):
    """Without a component: every stream of the last hour, merged by time, `<time> <component> <message>`."""
    assert _lines(runner.invoke(app, ["logs", "fraud"])) == [
        ("scheduler", "[scheduler] Starting the scheduler"),
        ("bootstrap", "envctl: ENVCTL_BOOTSTRAP status=succeeded step=result"),
        ("postgres", "database system is ready to accept connections"),
        ("scheduler", "[scheduler] Heartbeat"),
    ]


def test_logs_of_one_component_and_since(runner):
    """A component narrows to its streams; --since reaches further back."""
    assert [m for _, m in _lines(runner.invoke(app, ["logs", "fraud", "scheduler", "--since", "30m"]))] == [
        "[scheduler] Starting the scheduler", "[scheduler] Heartbeat"]
    assert [m for _, m in _lines(runner.invoke(app, ["logs", "fraud", "bootstrap", "--since", "1d"]))] == [
        "envctl: step strict", "envctl: ENVCTL_BOOTSTRAP status=succeeded step=result"]
    assert _lines(runner.invoke(app, ["logs", "fraud", "scheduler", "--since", "30s"])) == []


def test_an_unknown_component_is_refused_naming_those_that_exist(runner):
    result = runner.invoke(app, ["logs", "fraud", "schedulr"])
    assert result.exit_code == 2
    assert "schedulr" in result.output and "bootstrap, postgres, scheduler" in result.output
    assert result.stdout == ""


@pytest.mark.parametrize("since", ["30", "30 minutes", "-5m", "0m", "1w"])
def test_a_bad_since_is_refused_with_the_forms_it_takes(runner, since):
    result = runner.invoke(app, ["logs", "fraud", "--since", since])
    assert result.exit_code == 2 and "45s, 30m, 2h or 7d" in result.output


def test_since_forms():
    assert [parse_since(text).total_seconds() for text in ("45s", "30m", "2h", "7d")] == [45, 1800, 7200, 604800]


def test_follow_prints_new_lines_once_including_late_ones(project):
    """--follow polls: a line put between polls is printed, once; a line that arrives late (a job sends its
    output when it ends) is printed if it is younger than the lookback."""
    logs = sandbox_client(project, "logs")
    stream = f"{INSTANCE}/job-daily"
    now = int(time.time() * 1000)
    _put(logs, stream, (now - 5_000, "envctl-job daily: started"))
    polls = []

    def sleep(_: float) -> None:
        polls.append(1)
        if len(polls) == 1:
            _put(logs, stream, (now - 60_000 * 3, "a late line from 3 minutes ago"), (now - 4_000, "pg_dump done"))
        if len(polls) == 3:
            raise KeyboardInterrupt

    seen = []
    with pytest.raises(KeyboardInterrupt):
        for line in follow(logs, GROUP, lambda: [stream], now - 3600_000, sleep=sleep):
            seen.append(line.message)
    assert FOLLOW_LOOKBACK.total_seconds() > 180
    assert seen == ["envctl-job daily: started", "a late line from 3 minutes ago", "pg_dump done"]


def test_create_makes_the_owners_topic_the_subscriptions_and_the_alarms(project):
    """What the acceptance check reads from the sandbox: the topic (team key), each owner subscribed, >= 6 alarms."""
    owners = yaml.safe_load((project / "stacks" / "fraud.yaml").read_text())["owners"]
    sns = sandbox_client(project, "sns")
    (topic,) = [t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(":envctl-fraud-alerts")]
    key_id = sns.get_topic_attributes(TopicArn=topic)["Attributes"]["KmsMasterKeyId"]
    assert key_id == sandbox_client(project, "kms").describe_key(KeyId="alias/envctl-fraud")["KeyMetadata"]["Arn"]
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert sorted((s["Protocol"], s["Endpoint"]) for s in subscriptions) == sorted(("email", o) for o in owners)
    alarms = [a for a in sandbox_client(project, "cloudwatch").describe_alarms()["MetricAlarms"] if "fraud" in a["AlarmName"]]
    names = {a["AlarmName"] for a in alarms}
    assert {"envctl-fraud-host-status", "envctl-fraud-scheduler-heartbeat", "envctl-fraud-dag-run-failures",
            "envctl-fraud-data-volume-usage", "envctl-fraud-backup-age"} <= names
    assert len(alarms) >= 6  # with the auto-recover alarm; no endpoint yet (the image is not pushed)
    assert all(a["AlarmActions"] == [topic] for a in alarms if a["AlarmName"].startswith("envctl-fraud-"))
