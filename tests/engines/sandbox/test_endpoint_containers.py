"""Sandbox endpoints that serve, for real: after `envctl inference push`, the team's endpoint runs the
default image as a local container; Creating until /ping answers; `envctl invoke` answers the model's
prediction; UpdateEndpoint to new model data changes the answer (a failed one keeps the old); a container
that exits fails the endpoint; delete and `envctl sandbox stop` leave no container.

Needs a Docker engine and Debian's docker-registry (or the registry:2 image), like test_push_cli.py.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from provisioner.cli.main import app
from provisioner.engines.sandbox.endpoint_containers import ENDPOINT_LABEL, SERVER_LABEL
from tests.conftest import fraud_in_a_sandbox, sandbox_client
from tests.fixtures.inference_server import default_predictions

pytestmark = [pytest.mark.docker, pytest.mark.sandbox]

FEATURES = [[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]]
SETTLE_S = 180


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    with fraud_in_a_sandbox(tmp_path_factory) as root:
        result = CliRunner().invoke(app, ["inference", "push", "fraud"])
        assert result.exit_code == 0, result.output
        yield root


@pytest.fixture(scope="module")
def outputs(project):
    result = CliRunner().invoke(app, ["outputs", "fraud", "--json"])
    values = json.loads(result.stdout)
    return values.get("outputs", values)


def server_id(project) -> str:
    return json.loads((project / ".envctl" / "sandbox" / "server.json").read_text())["server_id"]


def endpoint_containers(docker_client, project, endpoint_name: str) -> list:
    """This sandbox's containers of the endpoint (other sandboxes on the engine may serve one of the same name)."""
    labels = [f"{ENDPOINT_LABEL}={endpoint_name}", f"{SERVER_LABEL}={server_id(project)}"]
    return docker_client.containers.list(all=True, filters={"label": labels})


def ping(container) -> int:
    container.reload()
    port = container.ports["8080/tcp"][0]["HostPort"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
        return response.status


def settled(sagemaker, name: str) -> dict:
    deadline = time.monotonic() + SETTLE_S
    while True:
        endpoint = sagemaker.describe_endpoint(EndpointName=name)
        if endpoint["EndpointStatus"] not in ("Creating", "Updating") or time.monotonic() > deadline:
            return endpoint
        time.sleep(0.5)


def invoke(project, rows) -> tuple[int, str, str]:
    request = project / "request.json"
    request.write_text(json.dumps({"instances": rows}))
    result = CliRunner().invoke(app, ["invoke", "fraud", "--data", str(request)])
    return result.exit_code, result.stdout, result.stderr


def upload_model(project, outputs, key: str, archive: bytes) -> str:
    sandbox_client(project, "s3").put_object(Bucket=outputs["bucket_name"], Key=key, Body=archive,
                                             ServerSideEncryption="aws:kms", SSEKMSKeyId=outputs["kms_key_arn"])
    return f"s3://{outputs['bucket_name']}/{key}"


def model_archive(document: dict) -> bytes:
    buffer = io.BytesIO()
    content = json.dumps(document).encode()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("model.json")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def promote(sagemaker, endpoint_name: str, model_data: str, suffix: str) -> str:
    """A retraining job's promotion (docs/architecture.md): a model with the live image and new data, a copy of
    the live configuration pointing at it, UpdateEndpoint. Returns the new configuration's name."""
    live = sagemaker.describe_endpoint_config(
        EndpointConfigName=sagemaker.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"])
    variant = live["ProductionVariants"][0]
    current = sagemaker.describe_model(ModelName=variant["ModelName"])
    name = f"fraud-promoted-{suffix}"
    sagemaker.create_model(ModelName=name, ExecutionRoleArn=current["ExecutionRoleArn"],
                           PrimaryContainer={"Image": current["PrimaryContainer"]["Image"], "ModelDataUrl": model_data})
    config = {"EndpointConfigName": name, "ProductionVariants": [{
        **{k: v for k, v in variant.items() if k in ("VariantName", "InstanceType", "InitialInstanceCount")}, "ModelName": name}]}
    if live.get("KmsKeyId"):
        config["KmsKeyId"] = live["KmsKeyId"]
    sagemaker.create_endpoint_config(**config)
    sagemaker.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=name)
    return name


def test_the_pushed_endpoint_is_served_by_one_container_that_answers_ping(project, outputs, docker_client):
    sagemaker = sandbox_client(project, "sagemaker")
    assert sagemaker.describe_endpoint(EndpointName=outputs["endpoint_name"])["EndpointStatus"] == "InService"
    (container,) = endpoint_containers(docker_client, project, outputs["endpoint_name"])
    assert container.status == "running" and container.labels[SERVER_LABEL] == server_id(project)
    assert ping(container) == 200


def test_an_endpoint_is_creating_until_its_container_answers_ping_and_delete_removes_it(project, outputs, docker_client):
    sagemaker = sandbox_client(project, "sagemaker")
    config = sagemaker.describe_endpoint(EndpointName=outputs["endpoint_name"])["EndpointConfigName"]
    sagemaker.create_endpoint(EndpointName="fraud-second", EndpointConfigName=config)
    assert sagemaker.describe_endpoint(EndpointName="fraud-second")["EndpointStatus"] == "Creating"
    endpoint = settled(sagemaker, "fraud-second")
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    (container,) = endpoint_containers(docker_client, project, "fraud-second")
    assert ping(container) == 200
    sagemaker.delete_endpoint(EndpointName="fraud-second")
    assert endpoint_containers(docker_client, project, "fraud-second") == []


def test_invoke_answers_the_default_models_prediction(project):
    code, stdout, stderr = invoke(project, FEATURES)
    assert code == 0, stderr
    assert json.loads(stdout) == {"predictions": pytest.approx(default_predictions(FEATURES))}


def test_update_endpoint_to_new_model_data_changes_the_answer(project, outputs, docker_client):
    sagemaker, name = sandbox_client(project, "sagemaker"), outputs["endpoint_name"]
    (before,) = endpoint_containers(docker_client, project, name)
    data = upload_model(project, outputs, "models/v2/model.tar.gz", model_archive({"weights": [1, 1, 1], "bias": 0.5}))
    config = promote(sagemaker, name, data, "v2")
    assert sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
    endpoint = settled(sagemaker, name)
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", config), endpoint.get("FailureReason")
    code, stdout, stderr = invoke(project, FEATURES)
    assert code == 0, stderr
    assert json.loads(stdout) == {"predictions": pytest.approx([6.5, 0.0])}
    (after,) = endpoint_containers(docker_client, project, name)
    assert after.id != before.id, "the old model's container was not replaced"


def test_a_failed_update_keeps_serving_the_previous_model_and_says_why(project, outputs):
    sagemaker, name = sandbox_client(project, "sagemaker"), outputs["endpoint_name"]
    serving = sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"]
    data = upload_model(project, outputs, "models/broken/model.tar.gz", b"not a tar archive")
    promote(sagemaker, name, data, "broken")
    endpoint = settled(sagemaker, name)
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", serving)
    assert "Failed to extract model data archive" in endpoint["FailureReason"]
    code, stdout, _ = invoke(project, FEATURES)
    assert code == 0 and json.loads(stdout) == {"predictions": pytest.approx([6.5, 0.0])}


def test_a_model_error_is_exit_1_with_the_containers_message(project):
    code, stdout, stderr = invoke(project, [[1.0, 2.0]])
    assert code == 1 and stdout == ""
    assert "400" in stderr and "features" in stderr


def test_a_container_that_exits_at_start_fails_the_endpoint_with_its_reason(project, outputs, docker_client):
    sagemaker = sandbox_client(project, "sagemaker")
    data = upload_model(project, outputs, "models/bad-json/model.tar.gz", model_archive({"weights": "none"}))
    live = sagemaker.describe_endpoint_config(
        EndpointConfigName=sagemaker.describe_endpoint(EndpointName=outputs["endpoint_name"])["EndpointConfigName"])
    variant = live["ProductionVariants"][0]
    current = sagemaker.describe_model(ModelName=variant["ModelName"])
    sagemaker.create_model(ModelName="fraud-bad-json", ExecutionRoleArn=current["ExecutionRoleArn"],
                           PrimaryContainer={"Image": current["PrimaryContainer"]["Image"], "ModelDataUrl": data})
    sagemaker.create_endpoint_config(EndpointConfigName="fraud-bad-json", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "fraud-bad-json", "InstanceType": variant["InstanceType"],
         "InitialInstanceCount": 1}])
    sagemaker.create_endpoint(EndpointName="fraud-bad-json", EndpointConfigName="fraud-bad-json")
    endpoint = settled(sagemaker, "fraud-bad-json")
    assert endpoint["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check" in endpoint["FailureReason"]
    assert "invalid" in endpoint["FailureReason"]  # the container's own last words (app.py: "invalid .../model.json")
    assert endpoint_containers(docker_client, project, "fraud-bad-json") == []
    with pytest.raises(ClientError, match="Cannot update failed endpoint"):  # only DeleteEndpoint is left to it
        sagemaker.update_endpoint(EndpointName="fraud-bad-json", EndpointConfigName="fraud-bad-json")
    sagemaker.delete_endpoint(EndpointName="fraud-bad-json")


def test_sandbox_stop_leaves_no_endpoint_container(project, docker_client):
    """Last: it stops the module's sandbox."""
    server = server_id(project)
    assert docker_client.containers.list(all=True, filters={"label": f"{SERVER_LABEL}={server}"})
    result = CliRunner().invoke(app, ["sandbox", "stop"])
    assert result.exit_code == 0, result.output
    assert docker_client.containers.list(all=True, filters={"label": f"{SERVER_LABEL}={server}"}) == []
    assert "removed endpoint container" not in result.output, "the server left its containers to the CLI's sweep"
