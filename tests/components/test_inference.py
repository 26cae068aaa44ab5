"""The inference part of the program under Pulumi mocks, given what the engine read from the account."""

from __future__ import annotations

import pytest

from provisioner.components.inference import accepts_kms_key, has_instance_storage, InferenceSettings
from provisioner.engines.mocked import Registration, run_program
from provisioner.engines.offline import OfflineMaterialiser
from provisioner.live_inputs import LiveInputs, inference_notes
from provisioner.program import BuildOptions, build
from provisioner.spec import INFERENCE_INSTANCE_TYPES

WANTED = "default-0123456789ab"
SAGEMAKER_TYPES = ("aws:sagemaker/model:Model", "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
                   "aws:sagemaker/endpoint:Endpoint", "aws:appautoscaling/target:Target", "aws:appautoscaling/policy:Policy")


def program_run(spec, live: LiveInputs) -> tuple[list[Registration], dict]:
    run = run_program(lambda: build(spec, BuildOptions(live=live)).outputs, OfflineMaterialiser(spec.region),
                      project="envctl", stack=spec.team, config={"aws:region": spec.region})
    return [r for r in run.registrations if r.custom and not r.is_provider], run.outputs


def of_type(registrations: list[Registration], type_token: str) -> list[Registration]:
    return [r for r in registrations if r.type == type_token]


def test_first_create_without_the_default_image_registers_no_model_config_or_endpoint(resolved_spec):
    """CreateModel refuses an image that is not in ECR: before the push, nothing names it, and the outputs say what comes next."""
    spec = resolved_spec("fraud")
    registrations, outputs = program_run(spec, LiveInputs(default_image_tag=None, wanted_image_tag=WANTED))
    assert [r.type for r in registrations if r.type in SAGEMAKER_TYPES] == []
    assert of_type(registrations, "aws:ecr/repository:Repository"), "the repository the push needs is made"
    assert "endpoint_name" not in outputs and outputs["ecr_repository_url"]
    assert "envctl inference push fraud" in outputs["inference_status"]
    (note,) = inference_notes(spec, LiveInputs(default_image_tag=None, wanted_image_tag=WANTED))
    assert "envctl inference push fraud" in note and WANTED in note


def test_a_pushed_default_image_is_served_from_the_team_repository(resolved_spec):
    """Once the tag is in the repository the model names it there, and the endpoint is registered."""
    spec = resolved_spec("fraud")
    registrations, outputs = program_run(spec, LiveInputs(default_image_tag=WANTED, wanted_image_tag=WANTED))
    (model,) = of_type(registrations, "aws:sagemaker/model:Model")
    image = model.inputs["primaryContainer"]["image"]
    assert image == f"{outputs['ecr_repository_url']}:{WANTED}"
    assert outputs["endpoint_name"] == "envctl-fraud" and outputs["inference_status"] == "serving"
    assert outputs["inference_image"] == image
    assert inference_notes(spec, LiveInputs(default_image_tag=WANTED, wanted_image_tag=WANTED)) == []


def test_an_older_default_image_keeps_serving_until_the_new_one_is_pushed(resolved_spec):
    """A new envctl (new image tag) must not delete a live endpoint: it keeps the pushed image and says to push."""
    spec = resolved_spec("fraud")
    live = LiveInputs(default_image_tag="default-olderimage0", wanted_image_tag=WANTED)
    registrations, _ = program_run(spec, live)
    (model,) = of_type(registrations, "aws:sagemaker/model:Model")
    assert model.inputs["primaryContainer"]["image"].endswith(":default-olderimage0")
    (note,) = inference_notes(spec, live)
    assert "envctl inference push fraud" in note


def test_a_request_with_its_own_image_needs_no_push(resolved_spec):
    """A full image URI is the team's to provide: the endpoint is registered without any default image."""
    spec = resolved_spec(sagemaker={"inference": {"image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/own/model:v3",
                                                  "instance": {"type": "ml.m5.large", "count": 1}}})
    live = LiveInputs(default_image_tag=None, wanted_image_tag=WANTED)
    registrations, _ = program_run(spec, live)
    (model,) = of_type(registrations, "aws:sagemaker/model:Model")
    assert model.inputs["primaryContainer"]["image"].endswith("/own/model:v3")
    assert inference_notes(spec, live) == []


def test_promoted_model_data_is_served_instead_of_the_requests(resolved_spec):
    """The team job's promotion record wins over the request's model_data, so an update does not revert it."""
    spec = resolved_spec(sagemaker={"inference": {"image": "default", "model_data": "s3://bucket-a/models/v1/model.tar.gz",
                                                  "instance": {"type": "ml.m5.large", "count": 1}}})
    promoted = "s3://bucket-a/models/v7/model.tar.gz"
    live = LiveInputs(default_image_tag=WANTED, wanted_image_tag=WANTED, promoted_model_data=promoted)
    registrations, _ = program_run(spec, live)
    (model,) = of_type(registrations, "aws:sagemaker/model:Model")
    assert model.inputs["primaryContainer"]["modelDataUrl"] == promoted
    (note,) = inference_notes(spec, live)
    assert promoted in note and "/envctl/fraud/inference/model-data" in note


def test_the_endpoint_is_pointed_at_its_config_and_nothing_is_ignored(resolved_spec):
    """No ignore_changes on the endpoint: a new config name reaches it (Pulumi would send the old one)."""
    registrations, _ = program_run(resolved_spec("fraud"), LiveInputs(default_image_tag=WANTED, wanted_image_tag=WANTED))
    (endpoint,) = of_type(registrations, "aws:sagemaker/endpoint:Endpoint")
    (config,) = of_type(registrations, "aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    assert endpoint.ignore_changes == [] and not endpoint.delete_before_replace
    assert endpoint.inputs["endpointConfigName"] == config.outputs["name"]
    assert not config.delete_before_replace and "name" not in config.inputs  # auto-named: create before delete


# AWS: "You can't request a KmsKeyId when using an instance type with local storage" (CreateEndpointConfig,
# KmsKeyId); EC2's instance store list: g4dn, g5 (NVMe), m5d/c5d/r5d, p3dn, p4d ... have local storage;
# t2, m5, c5, p3, inf1, inf2 are EBS only.
LOCAL_STORAGE = {"ml.g4dn.xlarge", "ml.g5.xlarge", "ml.g5.2xlarge", "ml.m5d.large", "ml.c5d.xlarge", "ml.r5d.large",
                 "ml.p3dn.24xlarge", "ml.p4d.24xlarge", "ml.g6.xlarge", "ml.p5.48xlarge", "ml.trn1.2xlarge"}
EBS_ONLY = {"ml.t2.medium", "ml.m5.large", "ml.m5.xlarge", "ml.m5.2xlarge", "ml.c5.large", "ml.c5.xlarge",
            "ml.c5.2xlarge", "ml.inf2.xlarge", "ml.p3.2xlarge", "ml.inf1.xlarge", "ml.m6i.large", "ml.r5.large"}


@pytest.mark.parametrize("instance_type", sorted(LOCAL_STORAGE | EBS_ONLY))
def test_instance_storage_follows_ec2s_instance_store_list(instance_type):
    """The rule CreateEndpointConfig applies to KmsKeyId: instance types with local NVMe storage refuse a key."""
    assert has_instance_storage(instance_type) is (instance_type in LOCAL_STORAGE)
    assert accepts_kms_key(InferenceSettings(instance_type=instance_type)) is (instance_type in EBS_ONLY)


def test_every_instance_type_the_spec_allows_is_classified():
    """Each endpoint instance type a request may name is in one of the lists above (so the rule was checked for it)."""
    assert set(INFERENCE_INSTANCE_TYPES) <= LOCAL_STORAGE | EBS_ONLY


@pytest.mark.parametrize("instance_type,key", [("ml.g5.xlarge", False), ("ml.g4dn.xlarge", False), ("ml.m5.large", True)])
def test_endpoint_config_gets_the_team_key_only_without_local_storage(resolved_spec, instance_type, key):
    """The program sends KmsKeyId only where CreateEndpointConfig accepts it (never on local-storage types)."""
    spec = resolved_spec(sagemaker={"inference": {"image": "default", "instance": {"type": instance_type, "count": 1}}})
    registrations, _ = program_run(spec, LiveInputs(default_image_tag=WANTED, wanted_image_tag=WANTED))
    (config,) = of_type(registrations, "aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    (kms,) = of_type(registrations, "aws:kms/key:Key")
    assert config.inputs.get("kmsKeyArn") == (kms.outputs["arn"] if key else None)


def test_serverless_endpoint_config_gets_no_key(resolved_spec):
    """CreateEndpointConfig refuses a KmsKeyId for serverless variants."""
    registrations, _ = program_run(resolved_spec("treasury"), LiveInputs(default_image_tag=WANTED, wanted_image_tag=WANTED))
    (config,) = of_type(registrations, "aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    assert "serverlessConfig" in config.inputs["productionVariants"][0] and "kmsKeyArn" not in config.inputs
