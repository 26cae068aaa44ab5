"""`envctl inference push` in the sandbox, for real: build, push to the sandbox's registry, record in its
ECR, apply; the endpoint then serves the team's image."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from provisioner.cli.main import app
from provisioner.inference_image import default_image_tag, registry_manifest
from tests.conftest import fraud_in_a_sandbox, sandbox_client

pytestmark = [pytest.mark.docker, pytest.mark.sandbox]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    with fraud_in_a_sandbox(tmp_path_factory) as root:
        yield root


def test_push_then_the_endpoint_serves_the_pushed_image(project, docker_client):
    """After the first create (no endpoint yet), the push builds, pushes, records the image and applies the team."""
    sagemaker = sandbox_client(project, "sagemaker")
    assert sagemaker.list_endpoints()["Endpoints"] == []
    result = CliRunner().invoke(app, ["inference", "push", "fraud"])
    assert result.exit_code == 0, result.output
    outputs = CliRunner().invoke(app, ["outputs", "fraud", "--json"])
    values = json.loads(outputs.stdout)
    values = values.get("outputs", values)
    repository_url, tag = values["ecr_repository_url"], default_image_tag()
    images = sandbox_client(project, "ecr").describe_images(repositoryName=repository_url.split("/", 1)[1])["imageDetails"]
    assert [tag] in [image["imageTags"] for image in images]
    endpoint = sagemaker.describe_endpoint(EndpointName=values["endpoint_name"])
    variant = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])["ProductionVariants"][0]
    assert sagemaker.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]["Image"] == f"{repository_url}:{tag}"
    from provisioner.engines.sandbox.container_registry import RegistryServer

    registry = RegistryServer(project / ".envctl" / "sandbox").running()
    assert registry is not None and json.loads(registry_manifest(registry.address, "envctl-fraud", tag))["schemaVersion"] == 2
