"""The program while a team is paused (the pause record, read by the engine as a live input): the host
stopped by `InstanceState`, no endpoint, the model, endpoint configuration and data volume kept."""

from __future__ import annotations

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
