"""What the program gives a team's retraining job: its model package group and the host role's permissions."""

from __future__ import annotations

import json

import pytest

from tests.components.test_program import TEAMS, one, resources


def host_statements(team: str, name: str = "airflow-policy") -> dict[str, dict]:
    policy = next(r for r in resources(team, "aws:iam/rolePolicy:RolePolicy") if r.name == f"{team}-{name}")
    return {statement["Sid"]: statement for statement in json.loads(policy.inputs["policy"])["Statement"]}


@pytest.mark.parametrize("team", TEAMS)
def test_every_team_has_its_model_package_group(team):
    """One group per team, named from the team, its name an output."""
    group = one(team, "aws:sagemaker/modelPackageGroup:ModelPackageGroup")
    assert group.inputs["modelPackageGroupName"] == f"envctl-{team}-models"


@pytest.mark.parametrize("policy", ["airflow-policy", "boundary-policy"])
def test_the_host_may_register_models_only_in_its_teams_group(policy):
    """Model registry calls name only fraud's group and its versions (host policy and boundary alike)."""
    statements = host_statements("fraud", policy) if policy == "airflow-policy" else None
    if statements is None:
        boundary = one("fraud", "aws:iam/policy:Policy")
        statements = {s["Sid"]: s for s in json.loads(boundary.inputs["policy"])["Statement"]}
    registry = statements["TeamModelRegistry"]
    assert "sagemaker:CreateModelPackage" in registry["Action"]
    assert registry["Resource"] == [
        "arn:aws:sagemaker:eu-west-1:123456789012:model-package-group/envctl-fraud-models",
        "arn:aws:sagemaker:eu-west-1:123456789012:model-package/envctl-fraud-models/*",
    ]


def test_the_host_deletes_only_what_the_job_made():
    """DeleteModel/DeleteEndpointConfig need the team's tag AND the job's envctl:managed-by=airflow: envctl's own
    models and configurations (managed-by envctl, the provider's default tag) are never the job's to delete."""
    clean_up = host_statements("fraud")["TeamJobCleanUp"]
    assert sorted(clean_up["Action"]) == ["sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel"]
    assert clean_up["Condition"] == {"StringEquals": {"aws:ResourceTag/envctl:team": "fraud",
                                                      "aws:ResourceTag/envctl:managed-by": "airflow"}}
    (provider,) = [r for r in __import__("tests.components.test_program", fromlist=["_registrations"])._registrations("fraud")
                   if r.is_provider]
    assert provider.default_tags["envctl:managed-by"] == "envctl"


def test_the_promotion_path_is_allowed_for_the_host():
    """The DAG's calls: train, describe, the promotion's 5 calls (creates tagged with the team), the record."""
    statements = host_statements("fraud")
    allowed = {action for statement in statements.values() if statement["Effect"] == "Allow"
               for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}
    for action in ("sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:DescribeEndpoint",
                   "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel", "sagemaker:CreateModel",
                   "sagemaker:CreateEndpointConfig", "sagemaker:UpdateEndpoint", "ssm:PutParameter", "iam:PassRole",
                   "ecr:DescribeImages", "s3:PutObject", "kms:GenerateDataKey"):
        assert action in allowed, action
    assert statements["TeamSageMakerCreate"]["Condition"] == {"StringEquals": {"aws:RequestTag/envctl:team": "fraud"}}


def test_the_airflow_containers_learn_what_the_retraining_dag_needs():
    """The host's values carry the team's role ARN, repository, endpoint and group; compose passes them on as ENVCTL_*."""
    from provisioner.cli.render import decode_user_data
    from provisioner.userdata import _host_files

    script = decode_user_data(one("fraud", "aws:ec2/instance:Instance").inputs)
    role_arn = "arn:aws:iam::123456789012:role/envctl-fraud-sagemaker"
    for assignment in (f"SAGEMAKER_ROLE_ARN={role_arn}", "ENDPOINT_NAME=envctl-fraud",
                       "MODEL_PACKAGE_GROUP=envctl-fraud-models", "ECR_REPOSITORY_URL="):
        assert assignment in script, assignment
    assert "SAGEMAKER_ROLE_ARN ECR_REPOSITORY_URL ENDPOINT_NAME MODEL_PACKAGE_GROUP" in script  # into host.env
    compose = _host_files(2)["docker-compose.yml"]
    for variable, source in (("ENVCTL_KMS_KEY_ARN", "KMS_KEY_ARN"), ("ENVCTL_SAGEMAKER_ROLE_ARN", "SAGEMAKER_ROLE_ARN"),
                             ("ENVCTL_ECR_REPOSITORY_URL", "ECR_REPOSITORY_URL"), ("ENVCTL_ENDPOINT_NAME", "ENDPOINT_NAME"),
                             ("ENVCTL_MODEL_PACKAGE_GROUP", "MODEL_PACKAGE_GROUP")):
        assert f"{variable}: ${{{source}:-}}" in compose, variable
