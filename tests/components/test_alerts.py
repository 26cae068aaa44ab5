"""The owners' topic and the alarms, under Pulumi mocks: what tells a team's owners that something broke."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from provisioner.components.alerts import TEAM_METRICS, subscription_name
from provisioner.components.names import ALARM_KEYS, TeamNames
from provisioner.components.policies import TeamArns, host_policy
from provisioner.engines.mocked import run_program
from provisioner.engines.offline import OfflineMaterialiser
from provisioner.live_inputs import LiveInputs
from provisioner.program import BuildOptions, build
from tests.fixtures.program import TEAMS, key_arn, one, resources

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
ENDPOINT_ALARMS = {"endpoint-5xx-rate", "endpoint-p99-latency"}
OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def team_alarms(team: str) -> dict[str, dict]:
    """The team's alarms that publish to its topic, by key (the auto-recover alarm acts on EC2 instead)."""
    prefix = f"{TeamNames(team).prefix}-"
    return {r.inputs["name"].removeprefix(prefix): r.inputs for r in resources(team, ALARM) if "name" in r.inputs}


def owners(team: str) -> list[str]:
    import yaml

    return yaml.safe_load((Path(__file__).resolve().parents[2] / "stacks" / f"{team}.yaml").read_text())["owners"]


@pytest.mark.parametrize("team", TEAMS)
def test_the_owners_topic_is_encrypted_with_the_team_key_and_each_owner_is_subscribed_by_email(team):
    topic = one(team, TOPIC)
    assert topic.inputs["name"] == f"envctl-{team}-alerts"
    assert topic.inputs["kmsMasterKeyId"] == key_arn(team)
    subscriptions = resources(team, SUBSCRIPTION)
    subscribed = sorted((s.inputs["protocol"], s.inputs["endpoint"]) for s in subscriptions)
    assert subscribed == sorted(("email", o) for o in owners(team))
    assert {s.inputs["topic"] for s in subscriptions} == {topic.outputs["arn"]}


def test_a_subscription_keeps_its_name_when_the_owners_are_reordered():
    """The logical name follows the address, not its position: reordering owners replaces nothing."""
    same = subscription_name("fraud-alerts", "ana.lopez@example.com")
    assert subscription_name("fraud-alerts", "Ana.Lopez@example.com") == same
    assert subscription_name("fraud-alerts", "a@example.com") != subscription_name("fraud-alerts", "b@example.com")


@pytest.mark.parametrize("team", TEAMS)
def test_only_the_teams_alarms_may_publish_to_its_topic(team):
    """The topic policy replaces SNS's default (any principal of the account): CloudWatch, for this team's alarms only."""
    topic = one(team, TOPIC)
    statements = {s["Sid"]: s for s in json.loads(topic.inputs["policy"])["Statement"]}
    publish = statements["TeamAlarmsPublish"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and publish["Action"] == "sns:Publish"
    # The policy names the topic's ARN as AWS spells it (it cannot refer to the topic's own output).
    assert re.fullmatch(rf"arn:aws:sns:[a-z0-9-]+:\d{{12}}:envctl-{team}-alerts", publish["Resource"])
    allowed = publish["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert sorted(arn.rsplit(":", 1)[1] for arn in allowed) == sorted(TeamNames(team).alarm_names)
    assert all(s["Principal"] != "*" and s["Principal"] != {"AWS": "*"} for s in statements.values())


@pytest.mark.parametrize("team", TEAMS)
def test_the_key_lets_cloudwatch_use_it_for_the_teams_alarms_only(team):
    """Without kms:GenerateDataKey* and kms:Decrypt for cloudwatch.amazonaws.com, alarms cannot publish to
    the encrypted topic (SNS Developer Guide, key management); scoped to the team's alarm ARNs."""
    key = one(team, "aws:kms/key:Key")
    statements = {s["Sid"]: s for s in json.loads(key.inputs["policy"])["Statement"]}
    grant = statements["TeamAlarmsToEncryptedTopic"]
    assert grant["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert set(grant["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    arns = grant["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert arns == json.loads(one(team, TOPIC).inputs["policy"])["Statement"][1]["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert all(re.fullmatch(rf"arn:aws:cloudwatch:[a-z0-9-]+:\d{{12}}:alarm:envctl-{team}-[a-z0-9-]+", arn) for arn in arns)


@pytest.mark.parametrize("team", TEAMS)
def test_every_alarm_tells_the_owners_when_it_fires_and_when_it_clears(team):
    topic_arn = one(team, TOPIC).outputs["arn"]
    alarms = team_alarms(team)
    assert set(alarms) <= set(ALARM_KEYS)
    for key, alarm in alarms.items():
        assert alarm["alarmActions"] == [topic_arn] and alarm["okActions"] == [topic_arn], key
        assert alarm["alarmDescription"].startswith(f"envctl {team}: "), key


def test_the_endpoint_alarms_exist_only_with_the_endpoint():
    """fraud and treasury serve an endpoint (offline: the image counts as pushed); finance-reports has none."""
    assert set(team_alarms("fraud")) == set(ALARM_KEYS)
    assert set(team_alarms("treasury")) == set(ALARM_KEYS)
    assert set(team_alarms("finance-reports")) == set(ALARM_KEYS) - ENDPOINT_ALARMS


def test_no_endpoint_alarms_while_the_endpoint_waits_for_its_image(resolved_spec):
    """Before `envctl inference push` there is no endpoint, so nothing to alarm on (an alarm on a missing
    endpoint would sit in INSUFFICIENT_DATA forever)."""
    spec = resolved_spec("fraud")
    live = LiveInputs(default_image_tag=None, wanted_image_tag="default-x")
    run = run_program(lambda: build(spec, BuildOptions(live=live)).outputs,
                      OfflineMaterialiser(spec.region), project="envctl", stack="fraud", config={"aws:region": spec.region})
    names = {r.inputs.get("name") for r in run.registrations if r.type == ALARM}
    assert not {f"envctl-fraud-{key}" for key in ENDPOINT_ALARMS} & names
    assert "envctl-fraud-host-status" in names


def test_the_host_and_endpoint_alarms_watch_their_resources():
    alarms = team_alarms("fraud")
    instance_id = one("fraud", "aws:ec2/instance:Instance").outputs["id"]
    assert (alarms["host-status"]["namespace"], alarms["host-status"]["metricName"]) == ("AWS/EC2", "StatusCheckFailed")
    assert alarms["host-status"]["dimensions"] == {"InstanceId": instance_id}
    latency = alarms["endpoint-p99-latency"]
    assert (latency["namespace"], latency["metricName"], latency["extendedStatistic"]) == ("AWS/SageMaker", "ModelLatency", "p99")
    assert latency["dimensions"] == {"EndpointName": "envctl-fraud", "VariantName": "AllTraffic"}
    queries = {q["id"]: q for q in alarms["endpoint-5xx-rate"]["metricQueries"]}
    assert queries["errors"]["metric"]["metricName"] == "Invocation5XXErrors"
    assert queries["invocations"]["metric"]["metricName"] == "Invocations"
    assert queries["rate"]["returnData"] is True and "errors / invocations" in queries["rate"]["expression"]
    assert not queries["errors"]["returnData"] and not queries["invocations"]["returnData"]


@pytest.mark.parametrize("team", TEAMS)
def test_the_team_metric_alarms_read_the_teams_namespace(team):
    """Scheduler heartbeat (missing data is breaching: a silent host must alarm), DAG failures, volume, backup age."""
    alarms = team_alarms(team)
    for key, metric in TEAM_METRICS.items():
        if key not in ALARM_KEYS:  # published, not alarmed on: DAG run successes, task failures
            continue
        assert (alarms[key]["namespace"], alarms[key]["metricName"]) == (f"envctl/{team}", metric.name), key
        assert "dimensions" not in alarms[key] or not alarms[key]["dimensions"], key
    assert alarms["scheduler-heartbeat"]["treatMissingData"] == "breaching"
    assert alarms["scheduler-heartbeat"]["comparisonOperator"] == "LessThanThreshold"
    assert all(alarms[key]["treatMissingData"] == "notBreaching" for key in alarms if key != "scheduler-heartbeat")
    assert (alarms["data-volume-usage"]["threshold"], alarms["backup-age"]["threshold"]) == (80, 26)


def test_every_alarm_and_team_metric_has_its_runbook_line():
    """docs/operations.md: a row per alarm (its name) and the metric each team alarm reads."""
    text = OPERATIONS.read_text()
    for key in ALARM_KEYS:
        assert re.search(rf"^\| `envctl-<team>-{key}` \|", text, re.MULTILINE), key
    for metric in TEAM_METRICS.values():
        assert f"`{metric.name}`" in text, metric.name


def test_the_host_may_write_only_its_own_log_group():
    """Every logs: action of the host's role names the team's group (and its streams), nothing else;
    it may not create groups (the program makes the group, encrypted with the team key)."""
    arns = TeamArns.for_team("fraud", account_id="123456789012", region="eu-west-1", bucket="b",
                             kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/k")

    def actions(statement: dict) -> list[str]:
        return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]

    (statement,) = [s for s in json.loads(host_policy(arns))["Statement"] if any(a.startswith("logs:") for a in actions(s))]
    assert statement["Resource"] == "arn:aws:logs:eu-west-1:123456789012:log-group:/envctl/fraud:*"
    assert {"logs:CreateLogStream", "logs:PutLogEvents"} <= set(statement["Action"])
    assert "logs:CreateLogGroup" not in statement["Action"]


def test_the_host_may_put_metrics_only_in_its_teams_namespace():
    """PutMetricData has no resource-level permissions: the host's statement is conditioned on
    cloudwatch:namespace = envctl/<team> (StringEquals: not another team's, not one its name prefixes), and the
    boundary, which SageMaker's role shares, allows SageMaker's namespaces and the team's, no other team's."""
    from provisioner.components.policies import permissions_boundary
    from provisioner.engines.sandbox.fidelity.policy import allowing_statements

    def arns(team):
        return TeamArns.for_team(team, account_id="123456789012", region="eu-west-1", bucket=f"b-{team}",
                                 kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/k")

    fraud = arns("fraud")
    (statement,) = [s for s in json.loads(host_policy(fraud))["Statement"] if s["Action"] == "cloudwatch:PutMetricData"]
    assert statement["Resource"] == "*"
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "envctl/fraud"}}

    def allowed(namespace):
        context = {"cloudwatch:namespace": namespace}
        return all(allowing_statements(json.loads(doc), action="cloudwatch:PutMetricData", resource="*", context=context)
                   for doc in (host_policy(fraud), permissions_boundary(fraud)))

    assert allowed("envctl/fraud")
    assert not allowed("envctl/treasury") and not allowed("envctl/fraud-x") and not allowed("AWS/EC2")
    boundary = json.loads(permissions_boundary(fraud))["Statement"]
    (metrics,) = [s for s in boundary if s["Action"] == "cloudwatch:PutMetricData"]
    assert metrics["Condition"]["StringLike"]["cloudwatch:namespace"] == ["/aws/sagemaker/*", "envctl/fraud"]
