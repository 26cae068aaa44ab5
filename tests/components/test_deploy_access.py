"""The team's CI role (`deploy:`): trusted by one GitHub repository, allowed its DAG prefix and ECR
repository only, under the team boundary; GitHub's OIDC provider made once per account."""

from __future__ import annotations

import json
from dataclasses import replace

import boto3
import pytest

from provisioner.components import policies
from provisioner.engines.mocked import run_program
from provisioner.engines.offline import OfflineMaterialiser
from provisioner.engines.sandbox.fidelity.policy import allowing_statements
from provisioner.live_inputs import LiveInputs, github_oidc_provider
from provisioner.program import BuildOptions, build

PROVIDER_ARN = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
OIDC_TYPE = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"


def registrations(spec, provider_arn=None):
    live = replace(LiveInputs.assumed(), github_oidc_provider_arn=provider_arn)
    run = run_program(lambda: build(spec, BuildOptions(live=live)).outputs, OfflineMaterialiser(spec.region),
                      project="envctl", stack=spec.team, config={"aws:region": spec.region})
    return [r for r in run.registrations if r.custom and not r.is_provider], run.outputs


def named(found, type_token, suffix):
    (match,) = [r for r in found if r.type == type_token and r.name.endswith(suffix)]
    return match


@pytest.fixture
def with_deploy(resolved_spec):
    return resolved_spec(deploy={"github": {"repository": "acme/fraud-dags"}})


def test_no_deploy_no_role(resolved_spec):
    found, outputs = registrations(resolved_spec())
    assert not [r for r in found if r.name.endswith("-deploy-role") or r.type == OIDC_TYPE]
    assert "deploy_role_arn" not in outputs


def test_the_role_trusts_only_the_repository_and_branch(with_deploy):
    found, outputs = registrations(with_deploy, PROVIDER_ARN)
    assert not [r for r in found if r.type == OIDC_TYPE]  # the account's provider is named, not made again
    role = named(found, "aws:iam/role:Role", "-deploy-role")
    assert role.inputs["name"] == "envctl-fraud-deploy" and outputs["deploy_role_arn"] == role.outputs["arn"]
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Federated": PROVIDER_ARN}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {"StringEquals": {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": "repo:acme/fraud-dags:ref:refs/heads/main"}}
    boundary = named(found, "aws:iam/policy:Policy", "-boundary-policy")
    assert role.inputs["permissionsBoundary"] == boundary.outputs["arn"]


def test_an_environment_replaces_the_branch_in_the_subject(resolved_spec):
    spec = resolved_spec(deploy={"github": {"repository": "acme/x", "branch": "main", "environment": "prod"}})
    found, _ = registrations(spec, PROVIDER_ARN)
    (statement,) = json.loads(named(found, "aws:iam/role:Role", "-deploy-role").inputs["assumeRolePolicy"])["Statement"]
    assert statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == "repo:acme/x:environment:prod"


def test_without_a_provider_in_the_account_the_program_makes_it_and_keeps_it(with_deploy):
    """The provider is shared by every team's role: made by the first, never deleted by a destroy."""
    found, _ = registrations(with_deploy, None)
    (provider,) = [r for r in found if r.type == OIDC_TYPE]
    assert provider.inputs["url"] == "https://token.actions.githubusercontent.com"
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    assert provider.retain_on_delete is True
    role = named(found, "aws:iam/role:Role", "-deploy-role")
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Federated": provider.outputs["arn"]}


@pytest.mark.sandbox
def test_the_engine_finds_the_account_s_github_provider_among_others(moto_endpoint):
    from tests.conftest import SANDBOX_CREDENTIALS

    iam = boto3.client("iam", endpoint_url=moto_endpoint, region_name="eu-west-1", **SANDBOX_CREDENTIALS)
    other = iam.create_open_id_connect_provider(Url="https://oidc.example.com", ClientIDList=["x"])["OpenIDConnectProviderArn"]
    try:
        assert github_oidc_provider(iam) is None
        github = iam.create_open_id_connect_provider(Url="https://token.actions.githubusercontent.com",
                                                     ClientIDList=["sts.amazonaws.com"])["OpenIDConnectProviderArn"]
        assert github_oidc_provider(iam) == github
        iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=github)
    finally:
        iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=other)


def test_every_type_the_deploy_role_needs_has_a_sandbox_handler(with_deploy):
    from provisioner.engines.sandbox.handlers import load_all

    found, _ = registrations(with_deploy, None)
    assert {r.type for r in found} - set(load_all()) == set()


# ---- what the role may do: its policy within the team boundary (IAM's evaluation, conditions included) ----


def arns_for(team):
    return policies.TeamArns.for_team(team, account_id="123456789012", region="eu-west-1",
                                      bucket=f"envctl-{team}-123456789012-eu-west-1",
                                      kms_key_arn=f"arn:aws:kms:eu-west-1:123456789012:key/{team}-key")


def allowed(identity: str, boundary: str, action: str, resource: str, **context: str) -> bool:
    documents = [json.loads(identity), json.loads(boundary)]
    return all(allowing_statements(doc, action=action, resource=resource, context=context) for doc in documents)


FRAUD, TREASURY = arns_for("fraud"), arns_for("treasury")
DEPLOY, BOUNDARY = policies.deploy_policy(FRAUD, "dags/"), policies.permissions_boundary(FRAUD)


@pytest.mark.parametrize("action, resource, context, expected", [
    ("s3:PutObject", f"{FRAUD.bucket_arn}/dags/fraud_retrain.py", {}, True),
    ("s3:DeleteObject", f"{FRAUD.bucket_arn}/dags/old.py", {}, True),
    ("s3:ListBucket", FRAUD.bucket_arn, {"s3:prefix": "dags/"}, True),
    ("kms:GenerateDataKey", FRAUD.kms_key_arn, {}, True),
    ("ecr:PutImage", FRAUD.ecr_repository_arn, {}, True),
    ("ecr:CompleteLayerUpload", FRAUD.ecr_repository_arn, {}, True),
    ("ecr:GetAuthorizationToken", "*", {}, True),
    # the rest of its own bucket: backups, model data
    ("s3:PutObject", f"{FRAUD.bucket_arn}/backups/postgres/x.sql.gz", {}, False),
    ("s3:GetObject", f"{FRAUD.bucket_arn}/models/model.tar.gz", {}, False),
    ("s3:ListBucket", FRAUD.bucket_arn, {"s3:prefix": "backups/"}, False),
    # another team's
    ("s3:PutObject", f"{TREASURY.bucket_arn}/dags/x.py", {}, False),
    ("kms:GenerateDataKey", TREASURY.kms_key_arn, {}, False),
    ("ecr:PutImage", TREASURY.ecr_repository_arn, {}, False),
    # nothing else of the team's
    ("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:envctl/fraud/x", {}, False),
    ("iam:PassRole", FRAUD.sagemaker_role_arn, {}, False),
    ("sagemaker:CreateTrainingJob", FRAUD.sagemaker_resources_arn, {}, False),
])
def test_the_deploy_role_may_write_dags_and_push_images_of_its_team_only(action, resource, context, expected):
    assert allowed(DEPLOY, BOUNDARY, action, resource, **context) is expected


def test_pushes_in_the_boundary_widen_no_other_role():
    """The boundary allows ECR pushes for the deploy role; the host and SageMaker roles' own policies grant none."""
    repository = FRAUD.ecr_repository_arn
    for identity in (policies.host_policy(FRAUD), policies.sagemaker_policy(FRAUD)):
        assert not allowed(identity, BOUNDARY, "ecr:PutImage", repository)
        assert allowed(identity, BOUNDARY, "ecr:BatchGetImage", repository)


def test_the_deploy_policy_and_the_boundary_pass_parliament():
    """No parliament finding of MEDIUM severity or worse, as for the team's other identity policies (parliament
    reads identity policies only: the trust policy is checked by the trust test above)."""
    from parliament import analyze_policy_string, enhance_finding

    for document in (DEPLOY, BOUNDARY):
        policy = analyze_policy_string(document, ignore_private_auditors=True)
        serious = [f for f in map(enhance_finding, policy.findings) if f.severity in ("MEDIUM", "HIGH", "CRITICAL")]
        assert serious == [], [(f.issue, f.detail) for f in serious]
