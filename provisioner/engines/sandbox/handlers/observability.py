"""Sandbox handlers for what watches an environment: log group, alarms, SSM parameters, budget."""

from __future__ import annotations

from typing import Any

from provisioner.engines.mocked import Registration
from provisioner.engines.sandbox.handlers.base import Handler, TagApi
from provisioner.engines.sandbox.handlers.catalog import register
from provisioner.engines.sandbox.handlers.common import (
    api_shape, arn, as_int, compact, input_changed, name_or_autoname, tag_list, unsecret,
)
from provisioner.engines.sandbox.handlers.context import SandboxContext
from provisioner.engines.sandbox.state import StoredResource

# AWS Budgets has one global endpoint, in us-east-1.
BUDGETS_REGION = "us-east-1"


# --- CloudWatch Logs -------------------------------------------------------------------------


@register("aws:cloudwatch/logGroup:LogGroup")
class LogGroupHandler(Handler):
    """A CloudWatch Logs log group with its retention, KMS key and tags.

    Sandbox: moto records the KMS key but does not encrypt with it, so the key policy's
    grant to the logs service plays no part.
    """

    replace_on = ("name", "namePrefix", "logGroupClass")
    delete_before_replace = True
    service = "logs"
    not_found = ("ResourceNotFoundException",)
    tag_api = TagApi("tag_log_group", "untag_log_group", resource="logGroupName", tags="tags", keys="tags", fields=None)
    remove_call = ("delete_log_group", "logGroupName")
    arn_resource = "log-group:{name}"  # the AWS provider's `arn` has no trailing ":*" (DescribeLogGroups' arn has one)

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = name_or_autoname(reg.inputs, reg.name, max_length=512)
        logs = self.client(ctx, region)
        logs.create_log_group(**compact(
            logGroupName=name, kmsKeyId=reg.inputs.get("kmsKeyId") or None,
            logGroupClass=reg.inputs.get("logGroupClass"), tags=ctx.tags(reg) or None,
        ))
        self._set_retention(logs, name, reg.inputs.get("retentionInDays"))
        return name, self.named_outputs(ctx, reg, region, name)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        logs = self.client(ctx, region)
        if input_changed(reg, old, "retentionInDays"):
            self._set_retention(logs, old.id, reg.inputs.get("retentionInDays"))
        if input_changed(reg, old, "kmsKeyId"):
            if reg.inputs.get("kmsKeyId"):
                logs.associate_kms_key(logGroupName=old.id, kmsKeyId=reg.inputs["kmsKeyId"])
            else:
                logs.disassociate_kms_key(logGroupName=old.id)
        self.sync_tags(ctx, reg, old, region)
        return self.named_outputs(ctx, reg, region, old.id)

    def describe(self, logs: Any, name: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        return next((group for group in groups if group["logGroupName"] == name), None)

    @staticmethod
    def _set_retention(logs: Any, name: str, days: float | None) -> None:
        if days:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(days))
        else:
            logs.delete_retention_policy(logGroupName=name)


# --- CloudWatch alarms -----------------------------------------------------------------------


@register("aws:cloudwatch/metricAlarm:MetricAlarm")
class MetricAlarmHandler(Handler):
    """A CloudWatch metric alarm (e.g. recover the Airflow host when its system check fails).

    Sandbox: moto stores alarms (metric math ones too) but never evaluates them: the state stays
    INSUFFICIENT_DATA and actions (EC2 recover, SNS) never run.
    """

    replace_on = ("name",)
    service = "cloudwatch"
    tag_api = TagApi("tag_resource", "untag_resource", resource="ResourceARN", by_arn=True)
    arn_resource = "alarm:{name}"

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = name_or_autoname(reg.inputs, reg.name, max_length=255)
        self.client(ctx, region).put_metric_alarm(**self._alarm(reg.inputs, name), Tags=tag_list(ctx.tags(reg)))
        return name, self.named_outputs(ctx, reg, region, name)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        self.client(ctx, region).put_metric_alarm(**self._alarm(reg.inputs, old.id))
        self.sync_tags(ctx, reg, old, region)
        return self.named_outputs(ctx, reg, region, old.id)

    def remove(self, cloudwatch: Any, old: StoredResource) -> None:
        cloudwatch.delete_alarms(AlarmNames=[old.id])  # deleting an alarm that is gone is no error

    def describe(self, cloudwatch: Any, name: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        return next(iter(cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]), None)

    @staticmethod
    def _alarm(inputs: dict[str, Any], name: str) -> dict[str, Any]:
        """put_metric_alarm's arguments from the resource's inputs (a metric, or metric math queries)."""
        dimensions = inputs.get("dimensions") or {}
        queries = inputs.get("metricQueries")
        return compact(
            Metrics=[MetricAlarmHandler._query(query) for query in queries] if queries else None,
            AlarmName=name,
            AlarmDescription=inputs.get("alarmDescription"),
            ActionsEnabled=inputs.get("actionsEnabled"),
            AlarmActions=inputs.get("alarmActions"),
            OKActions=inputs.get("okActions"),
            InsufficientDataActions=inputs.get("insufficientDataActions"),
            MetricName=inputs.get("metricName"),
            Namespace=inputs.get("namespace"),
            Statistic=inputs.get("statistic"),
            ExtendedStatistic=inputs.get("extendedStatistic"),
            Dimensions=None if queries else [{"Name": key, "Value": value} for key, value in dimensions.items()],
            Period=as_int(inputs.get("period")),
            Unit=inputs.get("unit"),
            EvaluationPeriods=as_int(inputs["evaluationPeriods"]),
            DatapointsToAlarm=as_int(inputs.get("datapointsToAlarm")),
            Threshold=inputs.get("threshold"),
            ComparisonOperator=inputs["comparisonOperator"],
            TreatMissingData=inputs.get("treatMissingData"),
        )

    @staticmethod
    def _query(query: dict[str, Any]) -> dict[str, Any]:
        """A metricQueries entry as a MetricDataQuery."""
        metric = query.get("metric")
        stat = None
        if metric:
            stat = compact(
                Metric={"Namespace": metric["namespace"], "MetricName": metric["metricName"],
                        "Dimensions": [{"Name": k, "Value": v} for k, v in (metric.get("dimensions") or {}).items()]},
                Period=as_int(metric["period"]), Stat=metric["stat"], Unit=metric.get("unit"),
            )
        return compact(Id=query["id"], Expression=query.get("expression"), Label=query.get("label"),
                       ReturnData=query.get("returnData"), MetricStat=stat, Period=as_int(query.get("period")))


# --- SSM parameters --------------------------------------------------------------------------


@register("aws:ssm/parameter:Parameter")
class ParameterHandler(Handler):
    """An SSM parameter: created with its value; an update writes the program's value, unless the
    program ignores changes to `value` (the bootstrap result, which the Airflow host writes): then it
    rewrites description, type and key around the value the parameter holds now, as Pulumi sends
    the old value back.
    Sandbox: same as AWS for what envctl uses (SecureString values are not really encrypted).
    """

    replace_on = ("name",)
    delete_before_replace = True
    service = "ssm"
    not_found = ("ParameterNotFound",)
    tag_api = TagApi("add_tags_to_resource", "remove_tags_from_resource", resource="ResourceId",
                     fixed=(("ResourceType", "Parameter"),))
    remove_call = ("delete_parameter", "Name")
    describe_call = ("get_parameter", "Name", "Parameter")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = name_or_autoname(reg.inputs, reg.name, max_length=2048)
        value = unsecret(reg.inputs.get("value", reg.inputs.get("insecureValue")))
        self.client(ctx, region).put_parameter(**self._settings(reg.inputs), Name=name, Value=value,
                                               Tags=tag_list(ctx.tags(reg)))
        return name, self.named_outputs(ctx, reg, region, name)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        ssm = self.client(ctx, region)
        if "value" in reg.ignore_changes:
            value = ssm.get_parameter(Name=old.id, WithDecryption=True)["Parameter"]["Value"]
        else:
            value = unsecret(reg.inputs.get("value", reg.inputs.get("insecureValue")))
        ssm.put_parameter(**self._settings(reg.inputs), Name=old.id, Value=value, Overwrite=True)
        self.sync_tags(ctx, reg, old, region)
        return self.named_outputs(ctx, reg, region, old.id)

    def named_outputs(self, ctx, reg, region, name, resource_arn=None):
        """A parameter's ARN has one slash after `parameter`, whether or not its name starts with one."""
        return super().named_outputs(ctx, reg, region, name, arn("ssm", region, ctx.account_id, f"parameter/{name.lstrip('/')}"))

    @staticmethod
    def _settings(inputs: dict[str, Any]) -> dict[str, Any]:
        """put_parameter's arguments besides name, value and tags."""
        return compact(
            Type=inputs.get("type", "String"),
            Description=inputs.get("description"),
            KeyId=inputs.get("keyId") if inputs.get("type") == "SecureString" else None,
            Tier=inputs.get("tier"),
            DataType=inputs.get("dataType"),
            AllowedPattern=inputs.get("allowedPattern"),
        )


# --- Budgets ---------------------------------------------------------------------------------


@register("aws:budgets/budget:Budget")
class BudgetHandler(Handler):
    """A cost budget with its e-mail (or SNS) notifications; its id is `<account id>:<name>`.

    Sandbox: moto has no UpdateBudget, so every change replaces the budget (delete, then
    create with the same name); moto ignores the budget's tags (ResourceTags are sent as to
    AWS) and never computes spend, so notifications never fire.
    """

    delete_before_replace = True
    service = "budgets"
    not_found = ("NotFoundException",)

    def client(self, ctx: SandboxContext, region: str) -> Any:
        return ctx.client(self.service, BUDGETS_REGION)

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        account_id = reg.inputs.get("accountId") or ctx.account_id
        name = name_or_autoname(reg.inputs, reg.name, max_length=100)
        self.client(ctx, region).create_budget(
            AccountId=account_id,
            Budget=self._budget(reg.inputs, name),
            NotificationsWithSubscribers=[self._notification(item) for item in reg.inputs.get("notifications") or []],
            ResourceTags=tag_list(ctx.tags(reg)),
        )
        return f"{account_id}:{name}", self._outputs(ctx, reg, account_id, name)

    def remove(self, budgets: Any, old: StoredResource) -> None:
        account_id, name = old.id.split(":", 1)
        budgets.delete_budget(AccountId=account_id, BudgetName=name)

    def describe(self, budgets: Any, budget_id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        account_id, name = budget_id.split(":", 1)
        return budgets.describe_budget(AccountId=account_id, BudgetName=name)["Budget"]

    def adoptable_id(self, ctx: SandboxContext, reg: Registration) -> str | None:
        name = reg.inputs.get("name")
        return f"{reg.inputs.get('accountId') or ctx.account_id}:{name}" if name else None

    def result(self, ctx, reg, region, budget_id, budget):
        account_id, name = budget_id.split(":", 1)
        return budget_id, self._outputs(ctx, reg, account_id, name)

    def _outputs(self, ctx: SandboxContext, reg: Registration, account_id: str, name: str) -> dict[str, Any]:
        budget_arn = f"arn:aws:budgets::{account_id}:budget/{name}"
        return {**self.named_outputs(ctx, reg, BUDGETS_REGION, name, budget_arn), "accountId": account_id}

    @staticmethod
    def _budget(inputs: dict[str, Any], name: str) -> dict[str, Any]:
        budget: dict[str, Any] = compact(
            BudgetName=name,
            BudgetType=inputs["budgetType"],
            TimeUnit=inputs["timeUnit"],
            CostFilters={item["name"]: item["values"] for item in inputs.get("costFilters") or []} or None,
            CostTypes=api_shape(inputs["costTypes"]) if inputs.get("costTypes") else None,
        )
        if inputs.get("limitAmount"):
            budget["BudgetLimit"] = {"Amount": str(inputs["limitAmount"]), "Unit": inputs.get("limitUnit", "USD")}
        return budget

    @staticmethod
    def _notification(notification: dict[str, Any]) -> dict[str, Any]:
        subscribers = [{"SubscriptionType": "EMAIL", "Address": address}
                       for address in notification.get("subscriberEmailAddresses") or []]
        subscribers += [{"SubscriptionType": "SNS", "Address": topic}
                        for topic in notification.get("subscriberSnsTopicArns") or []]
        return {
            "Notification": compact(
                NotificationType=notification["notificationType"],
                ComparisonOperator=notification["comparisonOperator"],
                Threshold=float(notification["threshold"]),
                ThresholdType=notification.get("thresholdType"),
            ),
            "Subscribers": subscribers,
        }
