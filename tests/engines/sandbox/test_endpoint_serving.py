"""Sandbox endpoints without containers: image URIs resolved to the sandbox registry, InvokeEndpoint
routed by the server (never moto's canned answer), the proxy's answers and ModelError, `envctl invoke`'s
arguments. A stand-in HTTP server plays the model container here; tests/engines/sandbox/test_endpoint_containers.py
runs the real one."""

from __future__ import annotations

import http.server
import json
import threading

import boto3
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from provisioner.cli.main import app
from provisioner.engines.sandbox import endpoint_containers, sagemaker_containers
from provisioner.engines.sandbox.sagemaker_containers import ImageUnavailable, local_image, parse_ecr_image
from tests.conftest import SANDBOX_CREDENTIALS, record_pushed_image

pytestmark = [pytest.mark.sandbox]

REGION = "eu-west-1"
ACCOUNT = "123456789012"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/envctl-fraud:default-abc"


class _StandIn(http.server.BaseHTTPRequestHandler):
    """Answers like a model container: /invocations echoes what it got, or fails when told to."""

    registry_manifests: set[str] = set()

    def do_HEAD(self):  # the registry's manifest check
        self.send_response(200 if self.path in self.registry_manifests else 404)
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if body == b"fail":
            payload = b'{"error": "instance 1 has 2 features; the model expects 3"}'
            status, content_type = 400, "application/json"
        else:
            payload, status, content_type = json.dumps({
                "body": body.decode(), "content_type": self.headers.get("Content-Type"),
                "accept": self.headers.get("Accept")}).encode(), 200, "application/x-echo"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def stand_in():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def aws(moto_endpoint, service):
    return boto3.client(service, endpoint_url=moto_endpoint, region_name=REGION, **SANDBOX_CREDENTIALS)


def make_endpoint(moto_endpoint, name: str) -> None:
    """An endpoint of a model whose image is recorded in ECR only (as a PutImage without push leaves it)."""
    sagemaker = aws(moto_endpoint, "sagemaker")
    image = record_pushed_image(aws(moto_endpoint, "ecr"), "serving-model", "1")
    sagemaker.create_model(ModelName=f"{name}-m", ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/r",
                           PrimaryContainer={"Image": image})
    sagemaker.create_endpoint_config(EndpointConfigName=f"{name}-c", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": f"{name}-m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-c")


@pytest.fixture
def served_by_stand_in(moto_endpoint, stand_in):
    """An endpoint whose variant is served by the stand-in server (what a started container records)."""
    name = "served-by-stand-in"
    make_endpoint(moto_endpoint, name)
    key = (ACCOUNT, REGION, name)
    endpoint_containers._ENDPOINTS.serving[key] = endpoint_containers.Serving(
        f"{name}-c", {"AllTraffic": sagemaker_containers.StartedContainer("stand-in", stand_in)}, {"AllTraffic": 1.0})
    yield name
    endpoint_containers._ENDPOINTS.serving.pop(key, None)
    aws(moto_endpoint, "sagemaker").delete_endpoint(EndpointName=name)


# ---- image URIs -----------------------------------------------------------------------------


def test_an_ecr_uri_resolves_to_the_same_repository_and_tag_in_the_sandbox_registry(stand_in):
    """<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag> -> 127.0.0.1:<port>/<repo>:<tag>, once the registry holds it."""
    registry = f"127.0.0.1:{stand_in}"
    _StandIn.registry_manifests = {"/v2/envctl-fraud/manifests/default-abc"}
    assert local_image(IMAGE, registry, ACCOUNT) == f"{registry}/envctl-fraud:default-abc"
    digest = "sha256:" + "e" * 64
    _StandIn.registry_manifests = {f"/v2/envctl-fraud/manifests/{digest}"}
    assert local_image(f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/envctl-fraud@{digest}", registry, ACCOUNT) == \
        f"{registry}/envctl-fraud@{digest}"


def test_an_image_recorded_in_ecr_but_not_pushed_cannot_run_and_says_to_push(stand_in):
    _StandIn.registry_manifests = set()
    with pytest.raises(ImageUnavailable, match="envctl inference push"):
        local_image(IMAGE, f"127.0.0.1:{stand_in}", ACCOUNT)
    with pytest.raises(ImageUnavailable, match="registry is not running"):
        local_image(IMAGE, None, ACCOUNT)


def test_an_image_of_another_registry_or_account_does_not_run(stand_in):
    """The sandbox has only what was pushed to it; AWS may pull others (or refuse them): no stricter, no guess."""
    assert parse_ecr_image("python:3.11-slim") is None
    for image in ("ghcr.io/team/model:1", IMAGE.replace(ACCOUNT, "210987654321")):
        with pytest.raises(ImageUnavailable, match="not in the sandbox account's ECR"):
            local_image(image, f"127.0.0.1:{stand_in}", ACCOUNT)
    parsed = parse_ecr_image(IMAGE)
    assert (parsed.account, parsed.region, parsed.repository, parsed.tag) == (ACCOUNT, REGION, "envctl-fraud", "default-abc")


# ---- InvokeEndpoint in the server -----------------------------------------------------------------


def test_invoke_of_a_missing_endpoint_is_a_validation_error(moto_endpoint):
    with pytest.raises(ClientError) as refused:
        aws(moto_endpoint, "sagemaker-runtime").invoke_endpoint(EndpointName="nobody", Body=b"{}", ContentType="application/json")
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert "Endpoint nobody of account" in refused.value.response["Error"]["Message"]


def test_an_endpoint_that_cannot_run_is_in_service_and_its_invoke_says_why_never_a_canned_body(moto_endpoint):
    """No registry behind the sandbox's ECR here: moto's InService stands, InvokeEndpoint names the reason."""
    make_endpoint(moto_endpoint, "record-only")
    sagemaker = aws(moto_endpoint, "sagemaker")
    assert sagemaker.describe_endpoint(EndpointName="record-only")["EndpointStatus"] == "InService"
    with pytest.raises(ClientError) as refused:
        aws(moto_endpoint, "sagemaker-runtime").invoke_endpoint(EndpointName="record-only", Body=b"{}",
                                                               ContentType="application/json")
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert "cannot serve endpoint record-only" in refused.value.response["Error"]["Message"]
    assert "envctl inference push" in refused.value.response["Error"]["Message"]


def test_without_a_docker_engine_invoke_says_the_sandbox_needs_one(moto_endpoint, monkeypatch):
    def no_engine():
        raise ImageUnavailable("the sandbox needs a Docker engine to run SageMaker containers: no Docker engine at unix:///x")

    monkeypatch.setattr(sagemaker_containers, "local_image", lambda uri, registry, account: "some/image:1")
    monkeypatch.setattr(sagemaker_containers, "docker_client", no_engine)
    make_endpoint(moto_endpoint, "no-engine")
    with pytest.raises(ClientError) as refused:
        aws(moto_endpoint, "sagemaker-runtime").invoke_endpoint(EndpointName="no-engine", Body=b"{}",
                                                               ContentType="application/json")
    assert "needs a Docker engine" in refused.value.response["Error"]["Message"]


def test_invoke_is_proxied_with_body_content_type_and_accept(moto_endpoint, served_by_stand_in):
    answer = aws(moto_endpoint, "sagemaker-runtime").invoke_endpoint(
        EndpointName=served_by_stand_in, Body=b"1,2,3\n", ContentType="text/csv", Accept="application/json")
    assert answer["ContentType"] == "application/x-echo"
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert json.loads(answer["Body"].read()) == {"body": "1,2,3\n", "content_type": "text/csv", "accept": "application/json"}


def test_a_4xx_from_the_container_is_sagemakers_model_error(moto_endpoint, served_by_stand_in):
    with pytest.raises(ClientError) as failed:
        aws(moto_endpoint, "sagemaker-runtime").invoke_endpoint(EndpointName=served_by_stand_in, Body=b"fail",
                                                               ContentType="application/json")
    response = failed.value.response
    assert response["Error"]["Code"] == "ModelError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 400
    assert "expects 3" in response["OriginalMessage"]
    assert "Received client error (400) from primary" in response["Error"]["Message"]


def test_an_unknown_target_variant_is_refused(moto_endpoint, served_by_stand_in):
    with pytest.raises(ClientError) as refused:
        aws(moto_endpoint, "sagemaker-runtime").invoke_endpoint(EndpointName=served_by_stand_in, Body=b"{}",
                                                               ContentType="application/json", TargetVariant="Shadow")
    assert refused.value.response["Error"]["Code"] == "ValidationError"


# ---- envctl invoke's arguments ----------------------------------------------------------------------


def test_invoke_with_a_missing_data_file_is_bad_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["invoke", "fraud", "--data", "nothing-here.json"])
    assert result.exit_code == 2
    assert "nothing-here.json" in result.output


@pytest.mark.parametrize(("data", "expected"), [("sample.csv", "text/csv"), ("req.JSON", "application/json"),
                                                 ("-", "application/json"), (None, "application/json")])
def test_the_content_type_follows_the_file_suffix(data, expected):
    from provisioner.cli.invoke import content_type_of

    assert content_type_of(data) == expected


def test_a_team_without_an_endpoint_is_told_to_push():
    from provisioner.cli.invoke import endpoint_of
    from provisioner.errors import EnvctlError

    with pytest.raises(EnvctlError) as missing:
        endpoint_of("fraud", {"inference_status": "no image yet"})
    assert missing.value.exit_code == 1 and "envctl inference push fraud" in missing.value.hint


# ---- the endpoint handler waits as the provider does ----------------------------------------------


class _Answers:
    """DescribeEndpoint answers in turn (the handler's wait at the boto3 boundary)."""

    def __init__(self, *answers):
        self.answers = list(answers)

    def client(self, service, region):
        return self

    def describe_endpoint(self, EndpointName):
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.mark.parametrize(("answers", "error"), [
    ([{"EndpointStatus": "Creating"}, {"EndpointStatus": "InService", "EndpointConfigName": "c2"}], None),
    ([{"EndpointStatus": "Creating"}, {"EndpointStatus": "Failed", "FailureReason": "did not pass the ping health check"}],
     "is Failed: did not pass the ping health check"),
    ([{"EndpointStatus": "Updating"}, {"EndpointStatus": "InService", "EndpointConfigName": "c1",
                                       "FailureReason": "Failed to extract model data archive"}],
     "could not move to configuration c2 and still serves c1: Failed to extract"),
])
def test_the_endpoint_handler_waits_through_creating_and_updating(answers, error, monkeypatch):
    from provisioner.engines.sandbox.handlers import inference
    from provisioner.errors import EnvctlError

    monkeypatch.setattr(inference, "ENDPOINT_POLL_S", 0)
    wait = lambda: inference.EndpointHandler()._wait_until_settled(_Answers(*answers), "e", "c2", REGION)  # noqa: E731
    if error is None:
        wait()
    else:
        with pytest.raises(EnvctlError, match=error):
            wait()


def test_a_body_over_sagemakers_6_mb_limit_is_refused_not_forwarded_empty(moto_endpoint, served_by_stand_in):
    with pytest.raises(ClientError) as refused:
        aws(moto_endpoint, "sagemaker-runtime").invoke_endpoint(
            EndpointName=served_by_stand_in, Body=b"x" * (6 * 1024 * 1024 + 1), ContentType="text/csv")
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert "exceeds" in refused.value.response["Error"]["Message"]


def test_invoke_on_aws_calls_the_endpoint_in_the_outputs_with_the_engines_client(moto_endpoint, served_by_stand_in,
                                                                                monkeypatch, tmp_path):
    """Target-independent: the endpoint name and region from the engine's outputs, the engine's own AWS client
    (here a real sagemaker-runtime client to the in-process server); only the model's answer on stdout."""
    from provisioner.cli import invoke

    asked = []

    class Engine:  # the two engine calls invoke makes (the Pulumi engine's need a Pulumi CLI)
        def outputs(self, team):
            return {"endpoint_name": served_by_stand_in, "region": REGION}

        def aws_client(self, service, region):
            asked.append((service, region))
            return aws(moto_endpoint, service)

    monkeypatch.setattr(invoke, "engine_for", lambda settings: Engine())
    request = tmp_path / "rows.csv"
    request.write_text("1,2,3\n")
    result = CliRunner().invoke(app, ["invoke", "fraud", "--target", "aws", "--data", str(request), "--accept", "text/csv"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"body": "1,2,3\n", "content_type": "text/csv", "accept": "text/csv"}
    assert asked == [("sagemaker-runtime", REGION)]
    assert "target aws" in result.stderr
