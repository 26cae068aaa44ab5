"""The Pulumi engine's destroy --delete-data deletes the model versions the team's job registered first
(the provider's DeleteModelPackageGroup fails while the group holds any); without it they stay."""

from __future__ import annotations

import boto3

from tests.engines.test_pulumi_engine import (  # noqa: F401 (the fixtures, autouse ones included: moto in process)
    BUCKET, TEAM, aws_account, engine, existing_stack, fake, pulumi_environment, settings,
)

GROUP = f"envctl-{TEAM}-models"


def registered_versions(count: int) -> object:
    sagemaker = boto3.client("sagemaker", region_name="eu-west-1")
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    for _ in range(count):
        sagemaker.create_model_package(ModelPackageGroupName=GROUP, ModelApprovalStatus="Approved", InferenceSpecification={
            "Containers": [{"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/r:t", "ModelDataUrl": "s3://b/m.tar.gz"}],
            "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]})
    return sagemaker


def test_destroy_with_delete_data_deletes_the_groups_versions_first(engine, fake):  # noqa: F811 (fixtures)
    from provisioner.engines.sandbox.sagemaker_api import install

    install()  # moto lacks DeleteModelPackage (the sandbox's server adds it; AWS has it)
    sagemaker = registered_versions(2)
    existing_stack(fake, region="eu-west-1", model_package_group=GROUP)

    engine.destroy(TEAM, delete_data=True)

    assert sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"] == []


def test_destroy_without_delete_data_leaves_the_versions(engine, fake):  # noqa: F811 (fixtures)
    sagemaker = registered_versions(1)
    existing_stack(fake, region="eu-west-1", model_package_group=GROUP, bucket_name=BUCKET)

    engine.destroy(TEAM)

    assert len(sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]) == 1
