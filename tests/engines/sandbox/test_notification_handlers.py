"""The sandbox handlers for the owners' topic, its subscriptions and metric-math alarms, against a real moto server."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from provisioner.engines.sandbox.handlers import notifications, observability  # noqa: F401 (registers)
from provisioner.engines.sandbox.handlers.context import SandboxContext
from tests.conftest import SANDBOX_CREDENTIALS
from tests.fixtures.handlers import (
    ACCOUNT, ADMIN_ARN, PROVIDER_URN, REGION, TEAM_TAGS, Lifecycle, changed, registration, tags_of, unique,
)

TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"


@pytest.fixture(scope="module")
def ctx(moto_endpoint):
    return SandboxContext(endpoint_url=moto_endpoint, account_id=ACCOUNT, credentials=SANDBOX_CREDENTIALS,
                          admin_arn=ADMIN_ARN, provider_tags={PROVIDER_URN: TEAM_TAGS})


@pytest.fixture(scope="module")
def client(ctx):
    return lambda service, region=REGION: ctx.client(service, region)


def _policy(topic_arn: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "TeamAlarmsPublish", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": "sns:Publish", "Resource": topic_arn}]})


def test_topic_lifecycle(ctx, client):
    """A named topic with its KMS key, policy and tags; an update sets the changed attributes; delete removes it."""
    life = Lifecycle(ctx, TOPIC)
    name = unique("t1-alerts")
    arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234"
    reg = registration(TOPIC, {"name": name, "kmsMasterKeyId": key, "policy": _policy(arn), "displayName": "t1 alerts"})
    topic = life.create(reg)
    sns = client("sns")
    assert topic.id == arn and topic.outputs["arn"] == arn and topic.outputs["name"] == name
    attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert (attributes["KmsMasterKeyId"], attributes["DisplayName"]) == (key, "t1 alerts")
    assert json.loads(attributes["Policy"]) == json.loads(_policy(arn))
    assert tags_of(sns.list_tags_for_resource(ResourceArn=arn)["Tags"]) == TEAM_TAGS
    assert life.find(reg) == (arn, topic.outputs)

    other_key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/5678"
    topic = life.update(topic, changed(reg, kmsMasterKeyId=other_key))
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["KmsMasterKeyId"] == other_key
    life.delete(topic)


def test_an_email_subscription_is_pending_and_goes_with_its_topic(ctx, client):
    """An owner's e-mail subscription: pending confirmation; its delete is refused by AWS (the fidelity rule), so it
    is only forgotten, as the provider does; deleting the topic deletes it."""
    topics, subscriptions = Lifecycle(ctx, TOPIC), Lifecycle(ctx, SUBSCRIPTION)
    topic = topics.create(registration(TOPIC, {"name": unique("t1-alerts")}))
    reg = registration(SUBSCRIPTION, {"topic": topic.id, "protocol": "email", "endpoint": "owner@example.com"})
    subscription = subscriptions.create(reg)
    sns = client("sns")
    listed = sns.list_subscriptions_by_topic(TopicArn=topic.id)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in listed] == [("email", "owner@example.com")]
    assert subscription.outputs["pendingConfirmation"] is True
    assert subscriptions.find(reg)[0] == subscription.id

    with pytest.raises(ClientError) as refused:
        sns.unsubscribe(SubscriptionArn=subscription.id)
    assert refused.value.response["Error"]["Code"] == "InvalidParameter"
    assert "pending confirmation" in refused.value.response["Error"]["Message"]

    subscriptions.handler.delete(ctx, subscription, REGION)  # forgotten, not deleted: as on AWS
    assert subscriptions.exists(subscription)
    topics.delete(topic)
    assert not subscriptions.exists(subscription)


def test_a_confirmable_subscription_is_deleted(ctx, client):
    """Subscriptions AWS confirms at once (SQS here) are unsubscribed on delete: the rule refuses only pending ones."""
    topics, subscriptions = Lifecycle(ctx, TOPIC), Lifecycle(ctx, SUBSCRIPTION)
    topic = topics.create(registration(TOPIC, {"name": unique("t1-alerts")}))
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{unique('q')}"
    subscription = subscriptions.create(registration(SUBSCRIPTION, {"topic": topic.id, "protocol": "sqs", "endpoint": queue}))
    assert subscription.outputs["pendingConfirmation"] is False
    subscriptions.delete(subscription)
    topics.delete(topic)


def test_metric_math_alarm_is_put_with_its_queries(ctx, client):
    """An alarm on an expression (the endpoint's 5XX rate) reaches moto with its metric queries and no single metric."""
    life = Lifecycle(ctx, "aws:cloudwatch/metricAlarm:MetricAlarm")
    dimensions = {"EndpointName": "envctl-t1", "VariantName": "AllTraffic"}

    def metric(name: str) -> dict:
        return {"namespace": "AWS/SageMaker", "metricName": name, "dimensions": dimensions, "period": 300.0, "stat": "Sum"}

    name = unique("envctl-t1-endpoint-5xx-rate")
    alarm = life.create(registration("aws:cloudwatch/metricAlarm:MetricAlarm", {
        "name": name, "comparisonOperator": "GreaterThanThreshold", "evaluationPeriods": 2.0, "threshold": 5.0,
        "treatMissingData": "notBreaching", "alarmActions": [f"arn:aws:sns:{REGION}:{ACCOUNT}:t1-alerts"],
        "metricQueries": [
            {"id": "errors", "metric": metric("Invocation5XXErrors"), "returnData": False},
            {"id": "invocations", "metric": metric("Invocations"), "returnData": False},
            {"id": "rate", "expression": "IF(invocations > 0, 100 * errors / invocations, 0)", "label": "5XX",
             "returnData": True},
        ]}))
    described = client("cloudwatch").describe_alarms(AlarmNames=[alarm.id])["MetricAlarms"][0]
    queries = {query["Id"]: query for query in described["Metrics"]}
    assert queries["rate"]["Expression"] == "IF(invocations > 0, 100 * errors / invocations, 0)"
    assert queries["errors"]["MetricStat"]["Metric"]["MetricName"] == "Invocation5XXErrors"
    assert queries["errors"]["MetricStat"]["Metric"]["Dimensions"] == [{"Name": k, "Value": v} for k, v in dimensions.items()]
    assert (queries["errors"]["MetricStat"]["Period"], queries["errors"]["MetricStat"]["Stat"]) == (300, "Sum")
    assert "MetricName" not in described and described["TreatMissingData"] == "notBreaching"
    life.delete(alarm)
