"""The program while a team is paused (the pause record, read by the engine as a live input): the host
stopped by `InstanceState`, no endpoint, the model, endpoint configuration and data volume kept."""

from __future__ import annotations

import pytest

from provisioner.engines.mocked import Registration, run_program
from provisioner.engines.offline import OfflineMaterialiser
from provisioner.live_inputs import LiveInputs
from provisioner.program import BuildOptions, build

WANTED = "default-0123456789ab"
SINCE = "2026-12-01T20:00:00Z"
STATE = "aws:ec2transitgateway/instanceState:InstanceState"
KEPT = ("aws:ec2/instance:Instance", "aws:ebs/volume:Volume", "aws:ec2/volumeAttachment:VolumeAttachment",
        "aws:sagemaker/model:Model", "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        "aws:sagemaker/notebookInstance:NotebookInstance", "aws:s3/bucket:Bucket")
GONE = ("aws:sagemaker/endpoint:Endpoint", "aws:appautoscaling/target:Target", "aws:appautoscaling/policy:Policy")


def program_run(spec, paused_since: str | None) -> tuple[list[Registration], dict]:
    live = LiveInputs(default_image_tag=WANTED, wanted_image_tag=WANTED, paused_since=paused_since)
    run = run_program(lambda: build(spec, BuildOptions(live=live)).outputs, OfflineMaterialiser(spec.region),
                      project="envctl", stack=spec.team, config={"aws:region": spec.region})
    return [r for r in run.registrations if r.custom and not r.is_provider], run.outputs


def types(registrations: list[Registration]) -> set[str]:
    return {r.type for r in registrations}


def test_a_running_team_registers_its_host_running(resolved_spec):
    registrations, outputs = program_run(resolved_spec("fraud"), None)
    (state,) = [r for r in registrations if r.type == STATE]
    (instance,) = [r for r in registrations if r.type == "aws:ec2/instance:Instance"]
    assert state.inputs["state"] == "running" and state.inputs["instanceId"] == instance.outputs["id"]
    assert set(GONE) <= types(registrations)
    assert "paused_since" not in outputs and outputs["endpoint_name"] == "envctl-fraud"


def test_a_paused_team_stops_its_host_and_has_no_endpoint_but_keeps_the_rest(resolved_spec):
    running, _ = program_run(resolved_spec("fraud"), None)
    registrations, outputs = program_run(resolved_spec("fraud"), SINCE)
    (state,) = [r for r in registrations if r.type == STATE]
    assert state.inputs["state"] == "stopped"
    assert set(KEPT) <= types(registrations)
    assert not set(GONE) & types(registrations)
    # Nothing else goes: the pause removes exactly the endpoint and its autoscaling (and the endpoint's alarms).
    removed = {r.name for r in running} - {r.name for r in registrations}
    assert {r.type for r in running if r.name in removed} <= set(GONE) | {"aws:cloudwatch/metricAlarm:MetricAlarm"}
    assert all("endpoint" in name for name in removed if "alerts" in name), removed
    assert outputs["paused_since"] == SINCE and "endpoint_name" not in outputs
    assert "paused" in outputs["inference_status"] and "envctl resume fraud" in outputs["inference_status"]


def test_a_pause_changes_neither_the_host_nor_its_userdata(resolved_spec):
    """Pausing must not replace the host: the instance's inputs are the same paused or not."""
    def instance(paused_since):
        registrations, _ = program_run(resolved_spec("fraud"), paused_since)
        (found,) = [r for r in registrations if r.type == "aws:ec2/instance:Instance"]
        return found.inputs

    assert instance(SINCE) == instance(None)


def test_the_pause_record_changes_the_live_inputs_digest():
    """The sandbox's no-change fast path must not skip an apply after `envctl pause`."""
    running = LiveInputs(default_image_tag=WANTED, wanted_image_tag=WANTED)
    paused = LiveInputs(default_image_tag=WANTED, wanted_image_tag=WANTED, paused_since=SINCE)
    assert running.digest != paused.digest


def scheduled(resolved_spec, awake: str = "Mon-Fri 07:00-20:00"):
    from dataclasses import replace

    from provisioner.spec import Schedule

    spec = resolved_spec("finance-reports")
    return replace(spec, spec=spec.spec.model_copy(update={"schedule": Schedule(awake=awake, timezone="Europe/Madrid")}))


def scheduled_run(spec, **live) -> list[Registration]:
    inputs = LiveInputs(default_image_tag=WANTED, wanted_image_tag=WANTED, **live)
    run = run_program(lambda: build(spec, BuildOptions(live=inputs)).outputs, OfflineMaterialiser(spec.region),
                      project="envctl", stack=spec.team, config={"aws:region": spec.region})
    return [r for r in run.registrations if r.custom and not r.is_provider]


def test_a_schedule_starts_and_stops_the_host_with_a_role_that_may_do_only_that(resolved_spec):
    import json

    registrations = scheduled_run(scheduled(resolved_spec))
    schedules = {r.inputs["name"]: r.inputs for r in registrations if r.type == "aws:scheduler/schedule:Schedule"}
    (instance,) = [r for r in registrations if r.type == "aws:ec2/instance:Instance"]
    wake, sleep = schedules["envctl-finance-reports-host-wake"], schedules["envctl-finance-reports-host-sleep"]
    assert wake["scheduleExpression"] == "cron(0 7 ? * MON,TUE,WED,THU,FRI *)"
    assert sleep["scheduleExpression"] == "cron(0 20 ? * MON,TUE,WED,THU,FRI *)"
    assert {wake["scheduleExpressionTimezone"], sleep["scheduleExpressionTimezone"]} == {"Europe/Madrid"}
    assert wake["target"]["arn"] == "arn:aws:scheduler:::aws-sdk:ec2:startInstances"
    assert sleep["target"]["arn"] == "arn:aws:scheduler:::aws-sdk:ec2:stopInstances"
    assert json.loads(wake["target"]["input"]) == {"InstanceIds": [instance.outputs["id"]]}
    assert {wake["state"], sleep["state"]} == {"ENABLED"}
    (role,) = [r for r in registrations if r.type == "aws:iam/role:Role" and r.inputs["name"].endswith("-schedule")]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "scheduler.amazonaws.com"}]
    assert "aws:SourceAccount" in trust[0]["Condition"]["StringEquals"]
    (policy,) = [r for r in registrations if r.type == "aws:iam/rolePolicy:RolePolicy" and "schedule" in r.name]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"ec2:StartInstances", "ec2:StopInstances", "kms:CreateGrant",
                       "cloudwatch:DisableAlarmActions", "cloudwatch:EnableAlarmActions"}
    assert all("*" not in s["Resource"] for s in statements)
    assert next(s for s in statements if s["Action"] == "kms:CreateGrant")["Condition"] == {
        "Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_a_schedule_is_disabled_while_paused_and_an_apply_asleep_keeps_the_host_stopped(resolved_spec):
    spec = scheduled(resolved_spec)
    paused = scheduled_run(spec, paused_since=SINCE)
    assert {r.inputs["state"] for r in paused if r.type == "aws:scheduler/schedule:Schedule"} == {"DISABLED"}
    asleep = scheduled_run(spec, asleep_by_schedule=True)
    assert [r.inputs["state"] for r in asleep if r.type == STATE] == ["stopped"]
    assert {r.inputs["state"] for r in asleep if r.type == "aws:scheduler/schedule:Schedule"} == {"ENABLED"}
    assert [r.inputs["state"] for r in scheduled_run(spec) if r.type == STATE] == ["running"]


def test_asleep_by_schedule_reads_the_time_of_the_run(resolved_spec):
    from datetime import datetime, timezone

    from provisioner.live_inputs import asleep_by_schedule

    spec = scheduled(resolved_spec)
    assert asleep_by_schedule(spec, datetime(2026, 12, 2, 22, 0, tzinfo=timezone.utc))
    assert not asleep_by_schedule(spec, datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc))
    assert not asleep_by_schedule(resolved_spec("finance-reports"), datetime(2026, 12, 2, 22, 0, tzinfo=timezone.utc))


def test_a_scheduled_host_is_estimated_for_its_awake_hours(resolved_spec):
    from provisioner.cost import estimate, load_prices

    always = {i.item: i for i in estimate(resolved_spec("finance-reports"), load_prices()).items}
    weekdays = {i.item: i for i in estimate(scheduled(resolved_spec), load_prices()).items}
    assert "282.4 h" in weekdays["Airflow host"].detail  # 65 h a week x 730 / 168
    assert weekdays["Airflow host"].monthly_usd == pytest.approx(always["Airflow host"].monthly_usd * 65 / 168, abs=0.01)
    assert weekdays["data volume"].monthly_usd == always["data volume"].monthly_usd


def test_the_heartbeat_alarm_tells_no_one_while_the_host_is_stopped_on_purpose(resolved_spec):
    """Its missing data is breaching: paused, or asleep by the schedule, its actions are off (the schedule
    turns them off at the sleep and on at the wake)."""
    import json

    def heartbeat(registrations):
        (alarm,) = [r for r in registrations if r.type == "aws:cloudwatch/metricAlarm:MetricAlarm"
                    and r.inputs.get("name", "").endswith("-scheduler-heartbeat")]
        return alarm.inputs.get("actionsEnabled", True)

    assert heartbeat(program_run(resolved_spec("fraud"), None)[0]) is True
    assert heartbeat(program_run(resolved_spec("fraud"), SINCE)[0]) is False
    spec = scheduled(resolved_spec)
    assert heartbeat(scheduled_run(spec, asleep_by_schedule=True)) is False
    registrations = scheduled_run(spec)
    assert heartbeat(registrations) is True
    schedules = {r.inputs["name"]: r.inputs for r in registrations if r.type == "aws:scheduler/schedule:Schedule"}
    quiet = schedules["envctl-finance-reports-heartbeat-alarm-sleep"]
    assert quiet["target"]["arn"] == "arn:aws:scheduler:::aws-sdk:cloudwatch:disableAlarmActions"
    assert json.loads(quiet["target"]["input"]) == {"AlarmNames": ["envctl-finance-reports-scheduler-heartbeat"]}
    assert schedules["envctl-finance-reports-heartbeat-alarm-wake"]["target"]["arn"].endswith(":enableAlarmActions")
