"""The sandbox handler for a team's model package group (handlers/model_registry.py), against moto."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from provisioner.errors import EnvctlError

from provisioner.engines.sandbox.handlers import model_registry  # noqa: F401 (registers)
from provisioner.engines.sandbox.handlers.catalog import HANDLERS
from tests.fixtures.handlers import REGION, TEAM_TAGS, Lifecycle, changed, registration, tags_of, unique

GROUP = "aws:sagemaker/modelPackageGroup:ModelPackageGroup"


@pytest.fixture(scope="module")
def ctx(moto_endpoint):
    from provisioner.engines.sandbox.handlers.context import SandboxContext
    from tests.fixtures.handlers import ACCOUNT, ADMIN_ARN, PROVIDER_URN
    from tests.conftest import SANDBOX_CREDENTIALS

    return SandboxContext(endpoint_url=moto_endpoint, account_id=ACCOUNT, credentials=SANDBOX_CREDENTIALS,
                          admin_arn=ADMIN_ARN, provider_tags={PROVIDER_URN: TEAM_TAGS})


def test_the_handler_is_documented():
    """Registered for the type the program emits, with a docstring that says where the sandbox differs."""
    assert "Sandbox:" in HANDLERS[GROUP].__doc__


def test_group_lifecycle_with_registered_versions(ctx):
    """Created with the team's tags, tags updated in place, a new description replaces it; while the job's
    versions are in it AWS refuses DeleteModelPackageGroup and a destroy keeps them (the team's data), with
    --delete-data they go first, then the group."""
    sagemaker = ctx.client("sagemaker", REGION)
    life = Lifecycle(ctx, GROUP)
    name = unique("envctl-t1-models")
    reg = registration(GROUP, {"modelPackageGroupName": name, "modelPackageGroupDescription": "models"})
    group = life.create(reg)
    described = sagemaker.describe_model_package_group(ModelPackageGroupName=name)
    assert group.id == name and group.outputs["arn"] == described["ModelPackageGroupArn"]
    assert tags_of(sagemaker.list_tags(ResourceArn=group.outputs["arn"])["Tags"]) == TEAM_TAGS
    assert life.find(reg)[0] == name

    retagged = changed(reg, tags={"purpose": "fraud models"})
    group = life.update(group, retagged)
    assert tags_of(sagemaker.list_tags(ResourceArn=group.outputs["arn"])["Tags"]) == {**TEAM_TAGS, "purpose": "fraud models"}
    assert "modelPackageGroupDescription" in HANDLERS[GROUP].replace_on

    package_arn = sagemaker.create_model_package(
        ModelPackageGroupName=name, ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/r:t",
                                                "ModelDataUrl": "s3://b/model.tar.gz"}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
    )["ModelPackageArn"]
    with pytest.raises(ClientError, match="has 1 model versions") as refused:
        sagemaker.delete_model_package_group(ModelPackageGroupName=name)
    assert refused.value.response["Error"]["Code"] == "ConflictException"
    with pytest.raises(EnvctlError, match="team's data") as kept:
        HANDLERS[GROUP].delete(ctx, group, REGION)
    assert "--delete-data" in kept.value.hint
    assert sagemaker.describe_model_package(ModelPackageName=package_arn)["ModelPackageGroupName"] == name
    ctx.delete_data = True
    try:
        life.delete(group)
    finally:
        ctx.delete_data = False
    assert sagemaker.list_model_packages(ModelPackageGroupName=name)["ModelPackageSummaryList"] == []
    assert life.find(reg) is None
