"""The endpoint's lifecycle against the sandbox: first create before any image, push, request changes,
a team job's promotion, and no endpoint configuration deleted while in use."""

from __future__ import annotations

import json

import pytest
import yaml
from botocore.exceptions import ClientError

from provisioner.engines.sandbox.engine import SandboxEngine
from provisioner.inference_image import MANIFEST_V2, default_image_tag, record_in_ecr
from provisioner.live_inputs import LiveInputs, read_live_inputs
from provisioner.spec import ResolvedSpec, TeamSpec
from tests.conftest import ROOT, record_pushed_image
from tests.engines.sandbox.conftest import client

pytestmark = [pytest.mark.sandbox]

REGION = "eu-west-1"
# What `docker push` leaves in a registry (schema 2); PutImage records it in ECR as a push does.
MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": MANIFEST_V2,
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1469,
               "digest": "sha256:" + "c" * 64},
    "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 31357624,
                "digest": "sha256:" + "d" * 64}],
})


def fraud(count: int = 1) -> ResolvedSpec:
    raw = yaml.safe_load((ROOT / "stacks" / "fraud.yaml").read_text())
    raw["sagemaker"]["inference"]["instance"]["count"] = count
    return ResolvedSpec(spec=TeamSpec.model_validate(raw), region=REGION, cidr=raw["network"]["cidr"])


def aws(engine: SandboxEngine, service: str):
    return client(engine, service, REGION)


def served(engine: SandboxEngine, endpoint_name: str) -> dict:
    """What the live endpoint serves: its config name, first variant, and that variant's model."""
    sagemaker = aws(engine, "sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    model = sagemaker.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]
    return {"arn": endpoint["EndpointArn"], "config": endpoint["EndpointConfigName"],
            "count": variant.get("InitialInstanceCount"), "image": model["Image"], "model_data": model.get("ModelDataUrl")}


def config_exists(engine: SandboxEngine, name: str) -> bool:
    try:
        aws(engine, "sagemaker").describe_endpoint_config(EndpointConfigName=name)
    except ClientError:
        return False
    return True


def promote(engine: SandboxEngine, team: str, endpoint_name: str, model_data: str) -> str:
    """What a team's retraining job does to promote model data (docs/architecture.md): a new model
    with the serving image, a copy of the live config pointing at it, UpdateEndpoint, then the
    promotion record the next `envctl update` reads. Returns the job's config name."""
    sagemaker, ssm = aws(engine, "sagemaker"), aws(engine, "ssm")
    live = sagemaker.describe_endpoint_config(
        EndpointConfigName=sagemaker.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"])
    variant = live["ProductionVariants"][0]
    current = sagemaker.describe_model(ModelName=variant["ModelName"])
    tags = [{"Key": "envctl:team", "Value": team}]
    sagemaker.create_model(ModelName=f"{team}-retrained-v2", ExecutionRoleArn=current["ExecutionRoleArn"], Tags=tags,
                           PrimaryContainer={"Image": current["PrimaryContainer"]["Image"], "ModelDataUrl": model_data})
    config = {"EndpointConfigName": f"{team}-retrained-v2", "Tags": tags,
              "ProductionVariants": [{**{k: v for k, v in variant.items()
                                         if k in ("VariantName", "InstanceType", "InitialInstanceCount")},
                                      "ModelName": f"{team}-retrained-v2"}]}
    if live.get("KmsKeyId"):
        config["KmsKeyId"] = live["KmsKeyId"]
    sagemaker.create_endpoint_config(**config)
    sagemaker.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=config["EndpointConfigName"])
    ssm.put_parameter(Name=f"/envctl/{team}/inference/model-data", Value=model_data, Type="String", Overwrite=True)
    return config["EndpointConfigName"]


def test_the_endpoint_lifecycle_from_first_create_to_a_promoted_model(engine):
    """First create before any image; push -> the team's image; count 1 -> 2 in place, old config deleted after
    the endpoint left it; a job's promotion survives a no-change update and the next count change."""
    first = engine.up(fraud())
    sagemaker = aws(engine, "sagemaker")
    assert sagemaker.list_endpoints()["Endpoints"] == [] and sagemaker.list_models()["Models"] == []
    assert "endpoint_name" not in first.outputs
    assert "envctl inference push fraud" in first.outputs["inference_status"]
    assert any("envctl inference push fraud" in warning for warning in first.warnings)

    # `envctl inference push` in the sandbox records the pushed image in the sandbox's ECR.
    repository = first.outputs["ecr_repository_url"].split("/", 1)[1]
    record_in_ecr(aws(engine, "ecr"), repository, default_image_tag(), MANIFEST)
    pushed = engine.up(fraud())  # the same request: the no-change fast path must not hide the push
    assert {c.type for c in pushed.changes if c.action == "create"} >= {
        "aws:sagemaker/model:Model", "aws:sagemaker/endpoint:Endpoint", "aws:appautoscaling/target:Target"}
    endpoint_name = pushed.outputs["endpoint_name"]
    before = served(engine, endpoint_name)
    assert before["image"] == f"{first.outputs['ecr_repository_url']}:{default_image_tag()}" and before["count"] == 1
    assert not any("inference push" in warning for warning in pushed.warnings)

    steps: list[str] = []
    scaled = engine.up(fraud(count=2), steps.append)
    after = served(engine, endpoint_name)
    assert after["count"] == 2 and after["config"] != before["config"] and after["arn"] == before["arn"]
    assert not config_exists(engine, before["config"])
    endpoint_update = steps.index(next(s for s in steps if s.startswith("updating aws:sagemaker/endpoint:Endpoint")))
    config_delete = steps.index(next(s for s in steps if s.startswith("deleting aws:sagemaker/endpointConfiguration")))
    assert endpoint_update < config_delete, steps
    assert {c.type: c.action for c in scaled.changes}["aws:sagemaker/endpoint:Endpoint"] == "update"

    promoted = f"s3://{first.outputs['bucket_name']}/models/v2/model.tar.gz"
    job_config = promote(engine, "fraud", endpoint_name, promoted)
    assert served(engine, endpoint_name)["config"] == job_config

    engine.up(fraud(count=2))
    now = served(engine, endpoint_name)
    assert now["model_data"] == promoted and now["count"] == 2 and now["image"] == before["image"]
    assert config_exists(engine, job_config), "envctl deleted a configuration it did not make"
    again = engine.up(fraud(count=2))
    assert not again.changed and again.api_writes == 0, [c for c in again.changes if c.action != "same"]

    engine.up(fraud(count=3))
    last = served(engine, endpoint_name)
    assert (last["count"], last["model_data"]) == (3, promoted)
    assert not config_exists(engine, now["config"])


def test_the_sandbox_server_answers_update_endpoint_as_aws_does(engine):
    """UpdateEndpoint (which moto lacks) refuses a missing endpoint or configuration with ValidationException."""
    engine.server.ensure_started()
    sagemaker = aws(engine, "sagemaker")
    with pytest.raises(ClientError) as missing_endpoint:
        sagemaker.update_endpoint(EndpointName="envctl-nobody", EndpointConfigName="nothing")
    assert missing_endpoint.value.response["Error"]["Code"] == "ValidationException"
    assert "Could not find endpoint" in missing_endpoint.value.response["Error"]["Message"]


def test_live_inputs_read_the_repository_and_the_promotion_record(engine, tmp_path):
    """No repository: no image; the wanted tag once recorded; else the newest default-* tag; a bad record is refused."""
    from provisioner.errors import InvalidInput

    engine.server.ensure_started()
    raw = yaml.safe_load((ROOT / "stacks" / "fraud.yaml").read_text())
    spec = ResolvedSpec(spec=TeamSpec.model_validate({**raw, "team": "livein"}), region=REGION, cidr="10.97.0.0/20")
    clients = lambda service, region: aws(engine, service)  # noqa: E731
    assert read_live_inputs(spec, clients) == LiveInputs(default_image_tag=None, wanted_image_tag=default_image_tag())
    ecr = aws(engine, "ecr")
    ecr.create_repository(repositoryName="envctl-livein")
    record_in_ecr(ecr, "envctl-livein", "default-000000000old", MANIFEST)
    assert read_live_inputs(spec, clients).default_image_tag == "default-000000000old"
    record_in_ecr(ecr, "envctl-livein", default_image_tag(), MANIFEST.replace("1469", "1470"))
    assert read_live_inputs(spec, clients).default_image_tag == default_image_tag()
    ssm = aws(engine, "ssm")
    ssm.put_parameter(Name="/envctl/livein/inference/model-data", Value="s3://bucket/models/v3/model.tar.gz", Type="String")
    assert read_live_inputs(spec, clients).promoted_model_data == "s3://bucket/models/v3/model.tar.gz"
    ssm.put_parameter(Name="/envctl/livein/inference/model-data", Value="models/v3", Type="String", Overwrite=True)
    with pytest.raises(InvalidInput, match="/envctl/livein/inference/model-data"):
        read_live_inputs(spec, clients)


def test_update_endpoint_refuses_a_new_instance_type_for_an_autoscaled_variant(engine):
    """AWS: "If the update would change the instance type for any model that is a target for auto scaling,
    the update fails"; a new count (or model) for the same type is allowed."""
    engine.server.ensure_started()
    sagemaker, autoscaling = aws(engine, "sagemaker"), aws(engine, "application-autoscaling")
    image = record_pushed_image(aws(engine, "ecr"), "scaled-model", "1")  # CreateModel refuses an image ECR lacks
    sagemaker.create_model(ModelName="scaled-m", ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
                           PrimaryContainer={"Image": image})

    def config(name: str, instance_type: str, count: int) -> str:
        sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "scaled-m", "InstanceType": instance_type, "InitialInstanceCount": count}])
        return name

    sagemaker.create_endpoint(EndpointName="scaled", EndpointConfigName=config("scaled-1", "ml.m5.large", 1))
    autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId="endpoint/scaled/variant/AllTraffic",
                                         ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=1, MaxCapacity=4)
    with pytest.raises(ClientError) as refused:
        sagemaker.update_endpoint(EndpointName="scaled", EndpointConfigName=config("scaled-2", "ml.c5.large", 1))
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "automatic scaling" in refused.value.response["Error"]["Message"]
    sagemaker.update_endpoint(EndpointName="scaled", EndpointConfigName=config("scaled-3", "ml.m5.large", 2))
    assert sagemaker.describe_endpoint(EndpointName="scaled")["EndpointConfigName"] == "scaled-3"
