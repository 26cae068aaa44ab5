"""TeamAlerts: the owners' topic (SNS, encrypted with the team key, each owner subscribed by e-mail)
and the alarms that publish to it.

Alarms on AWS's own metrics: the host's status checks (AWS/EC2) and, once the endpoint exists, its
5XX rate and p99 model latency (AWS/SageMaker). Alarms on the team's own namespace
(`envctl/<team>`, published by the host): scheduler heartbeat, DAG run failures, data volume use,
age of the newest backup. docs/operations.md lists every alarm with its metric and runbook.

E-mail subscriptions stay "pending confirmation" until the owner clicks the link AWS sends, and an
owner who does not gets no alert. Pulumi cannot delete a pending subscription (AWS refuses the
Unsubscribe; the provider then drops it from the stack and leaves it in AWS, which deletes
unconfirmed subscriptions after 48 hours). Deleting the topic (destroying the team) deletes every
subscription, pending or not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from provisioner.components import policies
from provisioner.components.inference import VARIANT
from provisioner.components.metrics import TEAM_METRICS, TeamMetric  # noqa: F401 (TeamMetric: re-exported)
from provisioner.components.names import TeamNames

# Thresholds a team may later want to tune; docs/operations.md explains each one.
ENDPOINT_5XX_PERCENT = 5
ENDPOINT_P99_MICROSECONDS = 1_000_000  # ModelLatency is in microseconds: 1 s
DATA_VOLUME_PERCENT = 80
BACKUP_AGE_HOURS = 26  # the nightly backup runs at 02:00 UTC: one missed night and two hours of slack


@dataclass
class TeamAlertsArgs:
    team: str
    region: str
    account_id: pulumi.Input[str]
    owners: list[str]
    kms_key_arn: pulumi.Input[str]
    instance_id: pulumi.Input[str]
    endpoint_name: pulumi.Input[str] | None = None  # None: no endpoint (yet), so no endpoint alarms
    # The host is stopped on purpose (`envctl pause`, or a schedule's sleep): the heartbeat alarm, which
    # counts missing data as breaching, tells no one until the host runs again.
    host_stopped: bool = False


def subscription_name(name: str, owner: str) -> str:
    """The owner's subscription keeps its name when the owners are reordered."""
    return f"{name}-owner-{hashlib.sha256(owner.lower().encode()).hexdigest()[:10]}"


class TeamAlerts(pulumi.ComponentResource):
    def __init__(self, name: str, args: TeamAlertsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("envctl:index:TeamAlerts", name, None, opts)
        self.names = names = TeamNames(args.team)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self._description = f"envctl {args.team}"
        topic_arn = pulumi.Output.from_input(args.account_id).apply(
            lambda account: f"arn:aws:sns:{args.region}:{account}:{names.alerts_topic}")
        self.topic = aws.sns.Topic(
            f"{name}-topic", name=names.alerts_topic, display_name=f"envctl {args.team} alerts",
            kms_master_key_id=args.kms_key_arn,
            policy=pulumi.Output.all(topic_arn, args.account_id).apply(
                lambda v: policies.alerts_topic_policy(v[0], v[1], args.region, names.alarm_names)),
            opts=self._child,
        )
        self.subscriptions = [
            aws.sns.TopicSubscription(subscription_name(name, owner), topic=self.topic.arn, protocol="email",
                                      endpoint=owner, opts=self._child)
            for owner in args.owners
        ]
        self.alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
        self._alarm(
            "host-status", "the Airflow host failed an EC2 status check (instance or system)",
            namespace="AWS/EC2", metric_name="StatusCheckFailed", statistic="Maximum",
            dimensions={"InstanceId": args.instance_id},
            period=60, evaluation_periods=2, threshold=0, comparison_operator="GreaterThanThreshold",
        )
        self._team_alarm(
            "scheduler-heartbeat", "no scheduler heartbeat for 3 minutes (scheduler, host or metrics publisher down)",
            statistic="Sum", period=60, evaluation_periods=3, threshold=1, comparison_operator="LessThanThreshold",
            treat_missing_data="breaching", actions_enabled=not args.host_stopped,
        )
        self._team_alarm(
            "dag-run-failures", "a DAG run failed", statistic="Sum", period=300, evaluation_periods=1,
            threshold=0, comparison_operator="GreaterThanThreshold",
        )
        self._team_alarm(
            "data-volume-usage", f"the data volume is over {DATA_VOLUME_PERCENT} % full", statistic="Maximum", period=300,
            evaluation_periods=2, threshold=DATA_VOLUME_PERCENT, comparison_operator="GreaterThanThreshold",
        )
        self._team_alarm(
            "backup-age", f"the newest Airflow metadata backup is older than {BACKUP_AGE_HOURS} h", statistic="Maximum",
            period=3600, evaluation_periods=1, threshold=BACKUP_AGE_HOURS, comparison_operator="GreaterThanThreshold",
        )
        if args.endpoint_name is not None:
            endpoint = {"EndpointName": args.endpoint_name, "VariantName": VARIANT}

            def sagemaker_metric(metric_name: str) -> dict[str, Any]:
                return {"namespace": "AWS/SageMaker", "metric_name": metric_name, "dimensions": endpoint,
                        "period": 300, "stat": "Sum"}

            self._alarm(
                "endpoint-5xx-rate", f"over {ENDPOINT_5XX_PERCENT} % of the endpoint's invocations failed with 5XX",
                metric_queries=[
                    {"id": "errors", "metric": sagemaker_metric("Invocation5XXErrors"), "return_data": False},
                    {"id": "invocations", "metric": sagemaker_metric("Invocations"), "return_data": False},
                    {"id": "rate", "expression": "IF(invocations > 0, 100 * errors / invocations, 0)",
                     "label": "5XX errors (% of invocations)", "return_data": True},
                ],
                evaluation_periods=2, threshold=ENDPOINT_5XX_PERCENT, comparison_operator="GreaterThanThreshold",
            )
            self._alarm(
                "endpoint-p99-latency", f"the endpoint's p99 model latency is over {ENDPOINT_P99_MICROSECONDS // 1000} ms",
                namespace="AWS/SageMaker", metric_name="ModelLatency", extended_statistic="p99", dimensions=endpoint,
                period=300, evaluation_periods=3, threshold=ENDPOINT_P99_MICROSECONDS, comparison_operator="GreaterThanThreshold",
            )
        self.register_outputs({"topic_arn": self.topic.arn})

    def _team_alarm(self, key: str, what: str, **settings: Any) -> None:
        """An alarm on a metric of the team's namespace."""
        metric = TEAM_METRICS[key]
        self._alarm(key, what, namespace=self.names.metrics_namespace, metric_name=metric.name, **settings)

    def _alarm(self, key: str, what: str, **settings: Any) -> None:
        """Tells the owners when it goes to ALARM and when it is OK again; missing data is not
        breaching unless the alarm says otherwise."""
        settings.setdefault("treat_missing_data", "notBreaching")
        self.alarms[key] = aws.cloudwatch.MetricAlarm(
            f"{self._name}-{key}", name=self.names.alarm(key), alarm_description=f"{self._description}: {what}",
            alarm_actions=[self.topic.arn], ok_actions=[self.topic.arn], opts=self._child, **settings,
        )
