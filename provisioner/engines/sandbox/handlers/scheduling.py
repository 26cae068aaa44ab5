"""Sandbox handler for EventBridge Scheduler: the schedules that wake and put to sleep a dev environment."""

from __future__ import annotations

from typing import Any

from provisioner.engines.mocked import Registration
from provisioner.engines.sandbox.handlers.base import Handler
from provisioner.engines.sandbox.handlers.catalog import register
from provisioner.engines.sandbox.handlers.common import compact
from provisioner.engines.sandbox.handlers.context import SandboxContext
from provisioner.engines.sandbox.state import StoredResource


@register("aws:scheduler/schedule:Schedule")
class ScheduleHandler(Handler):
    """An EventBridge Scheduler schedule with a universal target (EC2's or SageMaker's start and stop).

    Sandbox: moto stores the schedule, its expression, time zone, state and target, but never invokes
    it: nothing starts or stops on the schedule's time in the sandbox (`envctl pause`/`resume` do, and an
    apply outside the awake hours keeps the host stopped).
    """

    replace_on = ("name", "groupName")
    service = "scheduler"
    not_found = ("ResourceNotFoundException",)
    describe_call = ("get_schedule", "Name", "")
    remove_call = ("delete_schedule", "Name")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = reg.inputs["name"]
        answer = self.client(ctx, region).create_schedule(Name=name, **self._request(reg.inputs))
        return name, self._outputs(reg, answer["ScheduleArn"])

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        answer = self.client(ctx, region).update_schedule(Name=old.id, **self._request(reg.inputs))
        return self._outputs(reg, answer["ScheduleArn"])

    def result(self, ctx, reg, region, resource_id, described):
        return resource_id, self._outputs(reg, described["Arn"])

    @staticmethod
    def _request(inputs: dict[str, Any]) -> dict[str, Any]:
        target = inputs.get("target") or {}
        window = inputs.get("flexibleTimeWindow") or {"mode": "OFF"}
        return compact(
            ScheduleExpression=inputs["scheduleExpression"],
            ScheduleExpressionTimezone=inputs.get("scheduleExpressionTimezone"),
            Description=inputs.get("description"), State=inputs.get("state"),
            FlexibleTimeWindow=compact(Mode=window.get("mode", "OFF"),
                                       MaximumWindowInMinutes=window.get("maximumWindowInMinutes")),
            Target=compact(Arn=target["arn"], RoleArn=target["roleArn"], Input=target.get("input")),
        )

    @staticmethod
    def _outputs(reg: Registration, schedule_arn: str) -> dict[str, Any]:
        return {**reg.inputs, "arn": schedule_arn, "groupName": reg.inputs.get("groupName") or "default"}
