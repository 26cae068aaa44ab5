"""The Pulumi engine asks the account (through its aws_client) for the default image and the promotion
record before each run, and hands them to the program; the fake CLI stands in for Pulumi."""

from __future__ import annotations

import json

import boto3
import pytest

from provisioner.engines.pulumi import PulumiEngine
from provisioner.inference_image import default_image_tag, record_in_ecr
from provisioner.program import BuildOptions
from provisioner.settings import Settings
from tests.engines.fake_pulumi import FakePulumi

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                       "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7,
                                  "digest": "sha256:" + "e" * 64}, "layers": []})


@pytest.fixture
def engine_and_programs(tmp_path, monkeypatch, moto_endpoint):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "PULUMI_CONFIG_PASSPHRASE": "correct horse battery staple"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    programs: list[BuildOptions] = []

    def factory(spec, options):
        programs.append(options)
        return lambda: None

    settings = Settings(target="aws", region="eu-west-1", state_dir=tmp_path / ".envctl", root=tmp_path)
    engine = PulumiEngine(settings, FakePulumi(), build_options=BuildOptions(endpoint_url=moto_endpoint),
                          program_factory=factory)
    return engine, programs


def test_up_before_the_push_passes_no_image_and_says_what_comes_next(engine_and_programs, resolved_spec):
    """First create on AWS: ECR has no repository yet, so the program gets no image and the result says to push."""
    engine, programs = engine_and_programs
    spec = resolved_spec("fraud", region="eu-west-1")
    spec = spec.__class__(spec=spec.spec.model_copy(update={"team": "pulfirst"}), region=spec.region, cidr=spec.cidr)
    result = engine.up(spec)
    options = programs[-1]  # the program the update runs (the stack is selected with one too)
    assert options.live.default_image_tag is None and options.endpoint_url  # the endpoint setting is kept
    assert any("envctl inference push pulfirst" in warning for warning in result.warnings)


def test_up_after_the_push_and_a_promotion_passes_both_to_the_program(engine_and_programs, resolved_spec, moto_endpoint):
    """Once the tag is in the repository and the job wrote its record, the program serves both."""
    engine, programs = engine_and_programs
    base = resolved_spec("fraud", region="eu-west-1")
    spec = base.__class__(spec=base.spec.model_copy(update={"team": "pulpushed"}), region=base.region, cidr=base.cidr)
    clients = {s: boto3.client(s, endpoint_url=moto_endpoint, region_name="eu-west-1") for s in ("ecr", "ssm")}
    clients["ecr"].create_repository(repositoryName="envctl-pulpushed")
    record_in_ecr(clients["ecr"], "envctl-pulpushed", default_image_tag(), MANIFEST)
    clients["ssm"].put_parameter(Name="/envctl/pulpushed/inference/model-data", Value="s3://b-1/m/v2/model.tar.gz", Type="String")
    result = engine.up(spec)
    options = programs[-1]  # the program the update runs (the stack is selected with one too)
    assert (options.live.default_image_tag, options.live.promoted_model_data) == (default_image_tag(), "s3://b-1/m/v2/model.tar.gz")
    assert not any("inference push" in warning for warning in result.warnings)


def test_up_of_a_paused_team_passes_the_pause_record_to_the_program(engine_and_programs, resolved_spec, moto_endpoint):
    """`envctl pause` on AWS: the engine reads the pause record, so an update keeps the host stopped."""
    engine, programs = engine_and_programs
    base = resolved_spec("fraud", region="eu-west-1")
    spec = base.__class__(spec=base.spec.model_copy(update={"team": "pulpaused"}), region=base.region, cidr=base.cidr)
    ssm = boto3.client("ssm", endpoint_url=moto_endpoint, region_name="eu-west-1")
    ssm.put_parameter(Name="/envctl-pause/pulpaused", Value=json.dumps({"since": "2026-12-01T20:00:00Z"}), Type="String")
    engine.up(spec)
    assert programs[-1].live.paused_since == "2026-12-01T20:00:00Z"
    ssm.delete_parameter(Name="/envctl-pause/pulpaused")
    engine.up(spec)
    assert programs[-1].live.paused_since is None


def test_the_pause_record_goes_with_a_destroy(moto_endpoint):
    """forget_pause (both engines' destroy): the record is deleted, none is fine, a failure is a warning."""
    from botocore.config import Config

    from provisioner.live_inputs import forget_pause

    ssm = boto3.client("ssm", endpoint_url=moto_endpoint, region_name="eu-west-1")
    ssm.put_parameter(Name="/envctl-pause/pulgone", Value=json.dumps({"since": "2026-12-01T20:00:00Z"}), Type="String")
    assert forget_pause(ssm, "pulgone") is None
    assert "/envctl-pause/pulgone" not in [p["Name"] for p in ssm.describe_parameters()["Parameters"]]
    assert forget_pause(ssm, "pulgone") is None, "no record: nothing to say"
    denied = boto3.client("ssm", endpoint_url="http://127.0.0.1:9", region_name="eu-west-1",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=1))  # nothing listens there
    warning = forget_pause(denied, "pulgone")
    assert warning and "/envctl-pause/pulgone" in warning and "start paused" in warning
