"""The program under Pulumi mocks: what every team environment must be, whatever the request says."""

from __future__ import annotations

import json
from functools import lru_cache

import pytest

from provisioner.cli.render import decode_user_data
from provisioner.engines.offline import offline_registrations
from provisioner.engines.mocked import Registration

TEAMS = ("fraud", "treasury", "finance-reports")
TEAM_TAGS = ("envctl:team", "envctl:owner", "envctl:cost-center", "envctl:managed-by")


@lru_cache(maxsize=None)
def _registrations(team: str) -> tuple[Registration, ...]:
    from tests.conftest import ROOT
    from provisioner.spec import load_team

    spec = load_team(team, ROOT / "stacks", default_region="eu-west-1", pool="10.0.0.0/8", prefix=20, root=ROOT)
    return tuple(offline_registrations(spec))


def resources(team: str, type_token: str | None = None) -> list[Registration]:
    return [r for r in _registrations(team) if r.custom and not r.is_provider and (type_token is None or r.type == type_token)]


def one(team: str, type_token: str) -> Registration:
    (found,) = resources(team, type_token)
    return found


def key_arn(team: str) -> str:
    return one(team, "aws:kms/key:Key").outputs["arn"]


@pytest.mark.parametrize("team", TEAMS)
def test_every_resource_goes_through_the_team_provider_with_its_tags(team):
    """Default tags on one explicit provider, used by every resource, and no resource overrides them."""
    (provider,) = [r for r in _registrations(team) if r.is_provider]
    tags = provider.default_tags
    assert set(TEAM_TAGS) <= set(tags) and tags["envctl:team"] == team and tags["envctl:managed-by"] == "envctl"
    for resource in resources(team):
        assert resource.provider_urn == provider.urn, resource.urn
        assert not set(TEAM_TAGS) & set(resource.inputs.get("tags") or {}), resource.urn


@pytest.mark.parametrize("team", TEAMS)
def test_host_requires_imdsv2_has_no_public_ip_and_encrypted_root(team):
    instance = one(team, "aws:ec2/instance:Instance")
    assert instance.inputs["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 2}
    assert instance.inputs["associatePublicIpAddress"] is False
    assert instance.inputs["rootBlockDevice"]["encrypted"] is True
    assert instance.inputs["rootBlockDevice"]["kmsKeyId"] == key_arn(team)
    assert instance.inputs["userDataReplaceOnChange"] is True
    private = next(r for r in resources(team, "aws:ec2/subnet:Subnet") if r.name.endswith("-private"))
    assert private.inputs["mapPublicIpOnLaunch"] is False


@pytest.mark.parametrize("team", TEAMS)
def test_no_ingress_from_anywhere(team):
    """No security group admits traffic from 0.0.0.0/0 or ::/0 (in fact none admits any)."""
    groups = resources(team, "aws:ec2/securityGroup:SecurityGroup") + resources(team, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert len(groups) == 2
    for group in groups:
        assert group.inputs.get("ingress", []) == [], group.name
    default = one(team, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default.inputs.get("egress", []) == []


@pytest.mark.parametrize("team", TEAMS)
def test_data_is_encrypted_with_the_team_key(team):
    arn = key_arn(team)
    (rule,) = one(team, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": arn}
    volume = one(team, "aws:ebs/volume:Volume")
    assert volume.inputs["encrypted"] is True and volume.inputs["kmsKeyId"] == arn
    assert one(team, "aws:cloudwatch/logGroup:LogGroup").inputs["kmsKeyId"] == arn
    assert one(team, "aws:ecr/repository:Repository").inputs["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": arn}]
    secrets = resources(team, "aws:secretsmanager/secret:Secret")
    assert secrets and all(s.inputs["kmsKeyId"] == arn for s in secrets)
    assert one(team, "aws:kms/key:Key").inputs["enableKeyRotation"] is True


@pytest.mark.parametrize("team", TEAMS)
def test_bucket_blocks_public_access_is_versioned_and_tls_only(team):
    block = one(team, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    assert one(team, "aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"] == {"status": "Enabled"}
    policy = json.loads(one(team, "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    tls = next(s for s in policy["Statement"] if s["Sid"] == "DenyInsecureTransport")
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("team", TEAMS)
def test_team_data_outlives_a_destroy(team):
    """The bucket, its guards, its key with the key's alias, and the secrets are retained on delete; nothing else is."""
    retained = {r.type for r in resources(team) if r.retain_on_delete}
    assert retained == {
        "aws:kms/key:Key", "aws:kms/alias:Alias", "aws:secretsmanager/secret:Secret",
        "aws:s3/bucket:Bucket", "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    }


@pytest.mark.parametrize("team", TEAMS)
def test_every_role_has_the_team_boundary(team):
    boundary = one(team, "aws:iam/policy:Policy")
    boundary_arn = boundary.outputs["arn"]
    roles = resources(team, "aws:iam/role:Role")
    assert len(roles) == 2
    assert all(role.inputs["permissionsBoundary"] == boundary_arn for role in roles)


def _policy_documents(team: str) -> list[tuple[str, str, dict]]:
    docs = []
    for resource in resources(team):
        for key in ("policy", "assumeRolePolicy"):
            if isinstance(resource.inputs.get(key), str):
                docs.append((resource.name, key, json.loads(resource.inputs[key])))
    return docs


def _allowed_resource(team: str, resource: str, own_arns: set[str]) -> bool:
    """A team's own resource, a name under its prefix, or a wildcard the test below restricts."""
    return (
        resource in own_arns
        or f"envctl-{team}" in resource
        or f"envctl/{team}/" in resource
        or resource.endswith(f":log-group:/envctl/{team}:*")
        or resource == "*"
        or resource.endswith(":root")
        or resource.endswith(":log-group:/aws/sagemaker/*")
        or resource.endswith(":sagemaker:" + resource.split(":sagemaker:")[-1]) and resource.endswith(":*")
    )


def _statement_resources(statement: dict) -> list[str]:
    value = statement.get("Resource", [])
    return [value] if isinstance(value, str) else list(value)


@pytest.mark.parametrize("team", TEAMS)
def test_no_policy_names_another_teams_resources(team):
    """Segregation: every ARN in a team's policies is the team's own (or a tag-scoped wildcard)."""
    own_arns = {r.outputs.get("arn") for r in resources(team)} - {None}
    others = [t for t in TEAMS if t != team]
    for name, key, doc in _policy_documents(team):
        text = json.dumps(doc)
        assert not any(f"envctl-{o}" in text or f"envctl/{o}/" in text for o in others), (name, key)
        for statement in doc["Statement"]:
            for resource in _statement_resources(statement):
                assert _allowed_resource(team, resource, own_arns), (name, resource)


def test_team_prefixes_cannot_reach_a_longer_team_name():
    """fraud's policies use delimiters, so a team named fraud-x would not match them."""
    for name, _, doc in _policy_documents("fraud"):
        for statement in doc["Statement"]:
            for resource in _statement_resources(statement):
                assert "envctl-fraud*" not in resource and "envctl/fraud*" not in resource, (name, resource)


def test_sagemaker_wildcards_are_scoped_by_team_tag():
    """Statements on every SageMaker resource of the account carry the envctl:team tag condition."""
    for name, _, doc in _policy_documents("fraud"):
        for statement in doc["Statement"]:
            if str(statement.get("Resource", "")).endswith(":sagemaker:eu-west-1:123456789012:*"):
                condition = json.dumps(statement.get("Condition", {}))
                assert '"fraud"' in condition and "envctl:team" in condition, (name, statement["Sid"])


@pytest.mark.parametrize("team", TEAMS)
def test_iam_policies_pass_parliament(team):
    """Every identity policy the program emits has no parliament finding of MEDIUM severity or worse."""
    from parliament import analyze_policy_string, enhance_finding

    checked = 0
    for resource in resources(team, "aws:iam/rolePolicy:RolePolicy") + resources(team, "aws:iam/policy:Policy"):
        policy = analyze_policy_string(resource.inputs["policy"], ignore_private_auditors=True)
        serious = [f for f in map(enhance_finding, policy.findings) if f.severity in ("MEDIUM", "HIGH", "CRITICAL")]
        assert serious == [], (resource.name, [(f.issue, f.detail) for f in serious])
        checked += 1
    assert checked == 3


def test_host_passes_only_the_team_sagemaker_role_to_sagemaker():
    host_role = next(r for r in resources("fraud", "aws:iam/role:Role") if r.name == "fraud-airflow-role")
    doc = json.loads(host_role.inputs["assumeRolePolicy"])
    assert doc["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    host_policy = next(r for r in resources("fraud", "aws:iam/rolePolicy:RolePolicy") if r.name == "fraud-airflow-policy")
    passes = [s for s in json.loads(host_policy.inputs["policy"])["Statement"] if s["Action"] == "iam:PassRole"]
    assert [s["Resource"] for s in passes] == ["arn:aws:iam::123456789012:role/envctl-fraud-sagemaker"]
    assert passes[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_inference_shapes_follow_the_request():
    """fraud: instance-backed with autoscaling; treasury: serverless without a KMS key; finance-reports: none."""
    fraud_config = one("fraud", "aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs
    assert fraud_config["productionVariants"][0]["instanceType"] == "ml.m5.large" and "kmsKeyArn" in fraud_config
    target = one("fraud", "aws:appautoscaling/target:Target").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (1, 4)
    treasury_config = one("treasury", "aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs
    assert treasury_config["productionVariants"][0]["serverlessConfig"] == {"memorySizeInMb": 2048, "maxConcurrency": 5}
    assert "kmsKeyArn" not in treasury_config
    assert resources("treasury", "aws:appautoscaling/target:Target") == []
    assert resources("finance-reports", "aws:sagemaker/endpoint:Endpoint") == []


def test_endpoint_ignores_config_name_drift():
    """Retraining jobs rotate the endpoint's config; envctl does not undo it."""
    assert one("fraud", "aws:sagemaker/endpoint:Endpoint").ignore_changes == ["endpointConfigName"]


def test_default_image_comes_from_the_team_repository():
    image = one("fraud", "aws:sagemaker/model:Model").inputs["primaryContainer"]["image"]
    assert image.startswith("123456789012.dkr.ecr.eu-west-1.amazonaws.com/envctl-fraud:default-")


def test_userdata_names_secrets_never_values():
    """The host's userdata mentions the team's secrets by name only."""
    script = decode_user_data(one("fraud", "aws:ec2/instance:Instance").inputs)
    assert "snowflake_password" in script and "envctl/fraud/" in script
    assert "put-secret-value --secret-string" not in script or "$(" in script  # generated on the host, never literal


def test_program_is_deterministic():
    """Two runs of the same request register the same resources with the same inputs."""
    from tests.conftest import ROOT
    from provisioner.spec import load_team

    spec = load_team("treasury", ROOT / "stacks", default_region="eu-west-1", pool="10.0.0.0/8", prefix=20, root=ROOT)
    first = {r.urn: r.inputs for r in offline_registrations(spec)}
    second = {r.urn: r.inputs for r in offline_registrations(spec)}
    assert first == second


def test_a_new_ami_does_not_replace_the_host():
    """The AMI is looked up every run; AWS publishing a new one must not replace the Airflow host."""
    assert one("fraud", "aws:ec2/instance:Instance").ignore_changes == ["ami"]


def test_a_new_instance_type_replaces_the_host():
    """A new size gives a fresh host (the data volume moves over) rather than a stopped and resized one."""
    assert one("fraud", "aws:ec2/instance:Instance").replace_on_changes == ["instanceType"]


def test_preloaded_provider_modules_can_be_used_from_many_threads():
    """pulumi_aws's lazy submodules break when first loaded by several threads; the preload prevents it."""
    import subprocess
    import sys

    code = (
        "import threading\n"
        "from provisioner.program import preload_provider_modules\n"
        "preload_provider_modules()\n"
        "import pulumi_aws as aws\n"
        "errors = []\n"
        "def use():\n"
        "    try:\n"
        "        aws.ec2.Vpc, aws.sagemaker.Endpoint, aws.iam.Role, aws.appautoscaling.Policy, aws.s3.Bucket\n"
        "    except Exception as exc:\n"
        "        errors.append(repr(exc))\n"
        "threads = [threading.Thread(target=use) for _ in range(8)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(errors)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
