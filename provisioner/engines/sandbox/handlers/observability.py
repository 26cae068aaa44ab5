"""Sandbox handlers for what watches an environment: log group, alarms, SSM parameters, budget."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from provisioner.engines.mocked import Registration
from provisioner.engines.sandbox.handlers.common import (
    api_shape, arn, as_int, autoname, compact, ignore_missing, input_changed, is_error, removed_tag_keys, tag_list, unsecret,
)
from provisioner.engines.sandbox.handlers.registry import Handler, SandboxContext, register
from provisioner.engines.sandbox.state import StoredResource

# AWS Budgets has one global endpoint, in us-east-1.
BUDGETS_REGION = "us-east-1"


# --- CloudWatch Logs -------------------------------------------------------------------------


@register("aws:cloudwatch/logGroup:LogGroup")
class LogGroup(Handler):
    """A CloudWatch Logs log group with its retention, KMS key and tags.

    Sandbox: moto records the KMS key but does not encrypt with it, so the key policy's
    grant to the logs service plays no part.
    """

    replace_on = ("name", "namePrefix", "logGroupClass")
    delete_before_replace = True

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = reg.inputs.get("name") or autoname(reg.inputs.get("namePrefix") or reg.name, max_length=512)
        logs = ctx.client("logs", region)
        logs.create_log_group(**compact(
            logGroupName=name, kmsKeyId=reg.inputs.get("kmsKeyId") or None,
            logGroupClass=reg.inputs.get("logGroupClass"), tags=ctx.tags(reg) or None,
        ))
        self._set_retention(logs, name, reg.inputs.get("retentionInDays"))
        return name, self._outputs(ctx, reg, name, region)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        logs = ctx.client("logs", region)
        if input_changed(reg, old, "retentionInDays"):
            self._set_retention(logs, old.id, reg.inputs.get("retentionInDays"))
        if input_changed(reg, old, "kmsKeyId"):
            if reg.inputs.get("kmsKeyId"):
                logs.associate_kms_key(logGroupName=old.id, kmsKeyId=reg.inputs["kmsKeyId"])
            else:
                logs.disassociate_kms_key(logGroupName=old.id)
        self._sync_tags(logs, old.id, ctx.tags(old), ctx.tags(reg))
        return self._outputs(ctx, reg, old.id, region)

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        ignore_missing(lambda: ctx.client("logs", region).delete_log_group(logGroupName=old.id), "ResourceNotFoundException")

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        return self._describe(ctx, old.id, region) is not None

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        name = reg.inputs.get("name")
        if not name or self._describe(ctx, name, region) is None:
            return None
        return name, self._outputs(ctx, reg, name, region)

    @staticmethod
    def _describe(ctx: SandboxContext, name: str, region: str) -> dict[str, Any] | None:
        groups = ctx.client("logs", region).describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        return next((group for group in groups if group["logGroupName"] == name), None)

    @staticmethod
    def _set_retention(logs: Any, name: str, days: float | None) -> None:
        if days:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(days))
        else:
            logs.delete_retention_policy(logGroupName=name)

    @staticmethod
    def _sync_tags(logs: Any, name: str, old_tags: dict[str, str], new_tags: dict[str, str]) -> None:
        if removed := removed_tag_keys(old_tags, new_tags):
            logs.untag_log_group(logGroupName=name, tags=removed)
        if new_tags and new_tags != old_tags:
            logs.tag_log_group(logGroupName=name, tags=new_tags)

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, name: str, region: str) -> dict[str, Any]:
        # The AWS provider's `arn` has no trailing ":*" (DescribeLogGroups' arn has one).
        return {**reg.inputs, "name": name, "arn": arn("logs", region, ctx.account_id, f"log-group:{name}"),
                "tagsAll": ctx.tags(reg)}


# --- CloudWatch alarms -----------------------------------------------------------------------


@register("aws:cloudwatch/metricAlarm:MetricAlarm")
class MetricAlarm(Handler):
    """A CloudWatch metric alarm (e.g. recover the Airflow host when its system check fails).

    Sandbox: moto stores alarms but never evaluates them: no metric data arrives, the state
    stays INSUFFICIENT_DATA and actions (EC2 recover, SNS) never run.
    """

    replace_on = ("name",)

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = reg.inputs.get("name") or autoname(reg.name, max_length=255)
        cloudwatch = ctx.client("cloudwatch", region)
        cloudwatch.put_metric_alarm(**self._alarm(reg.inputs, name), Tags=tag_list(ctx.tags(reg)))
        return name, self._outputs(ctx, reg, name, region)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        cloudwatch = ctx.client("cloudwatch", region)
        cloudwatch.put_metric_alarm(**self._alarm(reg.inputs, old.id))
        alarm_arn = old.outputs["arn"]
        old_tags, new_tags = ctx.tags(old), ctx.tags(reg)
        if removed := removed_tag_keys(old_tags, new_tags):
            cloudwatch.untag_resource(ResourceARN=alarm_arn, TagKeys=removed)
        if new_tags and new_tags != old_tags:
            cloudwatch.tag_resource(ResourceARN=alarm_arn, Tags=tag_list(new_tags))
        return self._outputs(ctx, reg, old.id, region)

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        ctx.client("cloudwatch", region).delete_alarms(AlarmNames=[old.id])

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        return self._has(ctx, old.id, region)

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        name = reg.inputs.get("name")
        if not name or not self._has(ctx, name, region):
            return None
        return name, self._outputs(ctx, reg, name, region)

    @staticmethod
    def _has(ctx: SandboxContext, name: str, region: str) -> bool:
        return bool(ctx.client("cloudwatch", region).describe_alarms(AlarmNames=[name])["MetricAlarms"])

    @staticmethod
    def _alarm(inputs: dict[str, Any], name: str) -> dict[str, Any]:
        """put_metric_alarm's arguments from the resource's inputs (a metric, or metric math queries)."""
        dimensions = inputs.get("dimensions") or {}
        return compact(
            Metrics=[MetricAlarm._query(query) for query in inputs["metricQueries"]] if inputs.get("metricQueries") else None,
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
            Dimensions=[{"Name": key, "Value": value} for key, value in dimensions.items()] if not inputs.get("metricQueries") else None,
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

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, name: str, region: str) -> dict[str, Any]:
        return {**reg.inputs, "name": name, "arn": arn("cloudwatch", region, ctx.account_id, f"alarm:{name}"),
                "tagsAll": ctx.tags(reg)}


# --- SSM parameters --------------------------------------------------------------------------


@register("aws:ssm/parameter:Parameter")
class Parameter(Handler):
    """An SSM parameter; created with its initial value, later updates never touch the value.

    The program ignores changes to `value` (the Airflow host writes it), so an update
    rewrites description, type and key around the value the parameter holds now.
    Sandbox: same as AWS for what envctl uses (SecureString values are not really encrypted).
    """

    replace_on = ("name",)
    delete_before_replace = True

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = reg.inputs.get("name") or autoname(reg.name, max_length=2048)
        value = unsecret(reg.inputs.get("value", reg.inputs.get("insecureValue")))
        ctx.client("ssm", region).put_parameter(**self._settings(reg.inputs), Name=name, Value=value,
                                                Tags=tag_list(ctx.tags(reg)))
        return name, self._outputs(ctx, reg, name, region)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        ssm = ctx.client("ssm", region)
        current = ssm.get_parameter(Name=old.id, WithDecryption=True)["Parameter"]["Value"]
        ssm.put_parameter(**self._settings(reg.inputs), Name=old.id, Value=current, Overwrite=True)
        old_tags, new_tags = ctx.tags(old), ctx.tags(reg)
        if removed := removed_tag_keys(old_tags, new_tags):
            ssm.remove_tags_from_resource(ResourceType="Parameter", ResourceId=old.id, TagKeys=removed)
        if new_tags and new_tags != old_tags:
            ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=old.id, Tags=tag_list(new_tags))
        return self._outputs(ctx, reg, old.id, region)

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        ignore_missing(lambda: ctx.client("ssm", region).delete_parameter(Name=old.id), "ParameterNotFound")

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        return self._has(ctx, old.id, region)

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        name = reg.inputs.get("name")
        if not name or not self._has(ctx, name, region):
            return None
        return name, self._outputs(ctx, reg, name, region)

    @staticmethod
    def _has(ctx: SandboxContext, name: str, region: str) -> bool:
        try:
            ctx.client("ssm", region).get_parameter(Name=name)
        except ClientError as error:
            if is_error(error, "ParameterNotFound"):
                return False
            raise
        return True

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

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, name: str, region: str) -> dict[str, Any]:
        return {**reg.inputs, "name": name, "arn": arn("ssm", region, ctx.account_id, f"parameter/{name.lstrip('/')}"),
                "tagsAll": ctx.tags(reg)}


# --- Budgets ---------------------------------------------------------------------------------


@register("aws:budgets/budget:Budget")
class Budget(Handler):
    """A cost budget with its e-mail (or SNS) notifications.

    Sandbox: moto has no UpdateBudget, so every change replaces the budget (delete, then
    create with the same name); moto ignores the budget's tags (ResourceTags are sent as to
    AWS) and never computes spend, so notifications never fire.
    """

    delete_before_replace = True

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        account_id = reg.inputs.get("accountId") or ctx.account_id
        name = reg.inputs.get("name") or autoname(reg.inputs.get("namePrefix") or reg.name, max_length=100)
        ctx.client("budgets", BUDGETS_REGION).create_budget(
            AccountId=account_id,
            Budget=self._budget(reg.inputs, name),
            NotificationsWithSubscribers=[self._notification(item) for item in reg.inputs.get("notifications") or []],
            ResourceTags=tag_list(ctx.tags(reg)),
        )
        return f"{account_id}:{name}", self._outputs(ctx, reg, account_id, name)

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        account_id, name = old.id.split(":", 1)
        ignore_missing(lambda: ctx.client("budgets", BUDGETS_REGION).delete_budget(AccountId=account_id, BudgetName=name), "NotFoundException")

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        account_id, name = old.id.split(":", 1)
        return self._has(ctx, account_id, name)

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        account_id, name = reg.inputs.get("accountId") or ctx.account_id, reg.inputs.get("name")
        if not name or not self._has(ctx, account_id, name):
            return None
        return f"{account_id}:{name}", self._outputs(ctx, reg, account_id, name)

    @staticmethod
    def _has(ctx: SandboxContext, account_id: str, name: str) -> bool:
        try:
            ctx.client("budgets", BUDGETS_REGION).describe_budget(AccountId=account_id, BudgetName=name)
        except ClientError as error:
            if is_error(error, "NotFoundException"):
                return False
            raise
        return True

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, account_id: str, name: str) -> dict[str, Any]:
        return {**reg.inputs, "name": name, "accountId": account_id,
                "arn": f"arn:aws:budgets::{account_id}:budget/{name}", "tagsAll": ctx.tags(reg)}

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
