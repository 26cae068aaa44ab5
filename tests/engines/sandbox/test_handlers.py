"""The sandbox handlers for data, identity, observability and inference, against a real moto server."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from provisioner.engines.sandbox.handlers import data, identity, inference, observability  # noqa: F401 (registers)
from provisioner.engines.sandbox.handlers.catalog import HANDLERS
from provisioner.engines.sandbox.handlers.context import SandboxContext
from provisioner.engines.sandbox.state import StoredResource
from provisioner.errors import EnvctlError
from tests.conftest import SANDBOX_CREDENTIALS, record_pushed_image
from tests.fixtures.handlers import (ACCOUNT, ADMIN_ARN, PROVIDER_URN, REGION, TEAM_TAGS, Lifecycle, changed, make, registration,
                                     tags_of, unique)

SECRET_SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}

MODULE_TYPES = {
    data: ["aws:kms/key:Key", "aws:kms/alias:Alias", "aws:s3/bucket:Bucket",
           "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
           "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
           "aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketPolicy:BucketPolicy",
           "aws:ecr/repository:Repository", "aws:secretsmanager/secret:Secret"],
    identity: ["aws:iam/policy:Policy", "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy",
               "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws:iam/instanceProfile:InstanceProfile"],
    observability: ["aws:cloudwatch/logGroup:LogGroup", "aws:cloudwatch/metricAlarm:MetricAlarm",
                    "aws:ssm/parameter:Parameter", "aws:budgets/budget:Budget"],
    inference: ["aws:sagemaker/model:Model", "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
                "aws:sagemaker/endpoint:Endpoint", "aws:sagemaker/notebookInstance:NotebookInstance",
                "aws:appautoscaling/target:Target", "aws:appautoscaling/policy:Policy"],
}


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ctx(moto_endpoint):
    """One context for the module (as `sandbox_context` makes them): its boto3 clients cost ~0.1 s each to build."""
    return SandboxContext(endpoint_url=moto_endpoint, account_id=ACCOUNT, credentials=SANDBOX_CREDENTIALS,
                          admin_arn=ADMIN_ARN, provider_tags={PROVIDER_URN: TEAM_TAGS})


@pytest.fixture(scope="module")
def client(ctx):
    return lambda service, region=REGION: ctx.client(service, region)


# --- the registry ----------------------------------------------------------------------------


@pytest.mark.parametrize("module,types", MODULE_TYPES.items(), ids=lambda m: getattr(m, "__name__", ""))
def test_every_type_has_a_documented_handler(module, types):
    """Each type token has a handler whose docstring says what it makes and where the sandbox differs."""
    for type_token in types:
        handler = HANDLERS[type_token]
        doc = type(handler).__doc__ or ""
        assert doc.strip().splitlines()[0], type_token
        assert any(line.strip().startswith("Sandbox:") for line in doc.splitlines()), type_token


# --- KMS -------------------------------------------------------------------------------------


def test_kms_key_lifecycle(ctx, client):
    """A key gets its description, policy, rotation and tags; updates in place; deletion is scheduled (clamped to 7 days)."""
    life = Lifecycle(ctx, "aws:kms/key:Key")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*",
         "Resource": "*"}]}
    reg = registration("aws:kms/key:Key", {"description": "team key", "policy": json.dumps(policy),
                                           "enableKeyRotation": True, "deletionWindowInDays": 3.0,
                                           "tags": {"purpose": "data"}})
    key = life.create(reg)
    kms = client("kms")
    metadata = kms.describe_key(KeyId=key.id)["KeyMetadata"]
    assert (metadata["Description"], key.outputs["arn"], key.outputs["keyId"]) == ("team key", metadata["Arn"], key.id)
    assert kms.get_key_rotation_status(KeyId=key.id)["KeyRotationEnabled"]
    assert json.loads(kms.get_key_policy(KeyId=key.id, PolicyName="default")["Policy"]) == policy
    assert tags_of(kms.list_resource_tags(KeyId=key.id)["Tags"], "TagKey", "TagValue") == {**TEAM_TAGS, "purpose": "data"}

    key = life.update(key, changed(reg, description="new", enableKeyRotation=False, tags={}))
    assert kms.describe_key(KeyId=key.id)["KeyMetadata"]["Description"] == "new"
    assert not kms.get_key_rotation_status(KeyId=key.id)["KeyRotationEnabled"]
    assert tags_of(kms.list_resource_tags(KeyId=key.id)["Tags"], "TagKey", "TagValue") == TEAM_TAGS

    life.delete(key)
    metadata = kms.describe_key(KeyId=key.id)["KeyMetadata"]
    assert metadata["KeyState"] == "PendingDeletion"


def test_kms_alias_lifecycle(ctx, client):
    """An alias is created, retargeted in place, adopted by name, and deleted."""
    first, second = make(ctx, "aws:kms/key:Key", {}), make(ctx, "aws:kms/key:Key", {})
    life = Lifecycle(ctx, "aws:kms/alias:Alias")
    name = f"alias/{unique('envctl')}"
    reg = registration("aws:kms/alias:Alias", {"name": name, "targetKeyId": first.id})
    alias = life.create(reg)
    assert alias.id == name and alias.outputs["arn"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:{name}"
    assert life.find(reg)[0] == name

    alias = life.update(alias, changed(reg, targetKeyId=second.id))
    assert client("kms").describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == second.id
    life.delete(alias)
    assert life.find(reg) is None
    assert HANDLERS["aws:kms/alias:Alias"].delete_before_replace


# --- S3 --------------------------------------------------------------------------------------


def test_bucket_lifecycle_in_its_region(ctx, client):
    """A bucket is made in the stack's region with the team tags, adopted by name, retagged and deleted."""
    life = Lifecycle(ctx, "aws:s3/bucket:Bucket", region="eu-central-1")
    name = unique("envctl-bucket")
    reg = registration("aws:s3/bucket:Bucket", {"bucket": name, "forceDestroy": False})
    bucket = life.create(reg)
    s3 = client("s3", "eu-central-1")
    assert bucket.id == name
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-central-1"
    assert tags_of(s3.get_bucket_tagging(Bucket=name)["TagSet"]) == TEAM_TAGS
    assert bucket.outputs["arn"] == f"arn:aws:s3:::{name}"
    assert bucket.outputs["bucketRegionalDomainName"] == f"{name}.s3.eu-central-1.amazonaws.com"
    assert bucket.outputs["region"] == "eu-central-1"
    assert life.find(reg)[0] == name

    bucket = life.update(bucket, changed(reg, tags={"extra": "yes"}))
    assert tags_of(s3.get_bucket_tagging(Bucket=name)["TagSet"]) == {**TEAM_TAGS, "extra": "yes"}
    life.delete(bucket)
    assert life.find(reg) is None


def test_non_empty_bucket_is_kept_without_delete_data(ctx, sandbox_context, client):
    """A bucket with objects refuses deletion; with delete_data every version and delete marker goes, then the bucket."""
    life = Lifecycle(ctx, "aws:s3/bucket:Bucket")
    bucket = life.create(registration("aws:s3/bucket:Bucket", {"bucket": unique("envctl-data")}))
    s3 = client("s3")
    s3.put_bucket_versioning(Bucket=bucket.id, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket.id, Key="model.tar.gz", Body=b"v1")
    s3.put_object(Bucket=bucket.id, Key="model.tar.gz", Body=b"v2")
    s3.delete_object(Bucket=bucket.id, Key="model.tar.gz")  # leaves only versions and a delete marker

    with pytest.raises(EnvctlError, match="still holds objects"):
        life.handler.delete(ctx, bucket, REGION)
    assert life.exists(bucket)

    with_data = sandbox_context(provider_tags={PROVIDER_URN: TEAM_TAGS}, delete_data=True)
    Lifecycle(with_data, "aws:s3/bucket:Bucket").delete(bucket)


def test_bucket_settings(ctx, client):
    """Public access block, SSE-KMS default encryption and versioning are put, changed, and removed (versioning: suspended)."""
    bucket = make(ctx, "aws:s3/bucket:Bucket", {"bucket": unique("envctl-settings")})
    key = make(ctx, "aws:kms/key:Key", {})
    s3 = client("s3")

    block = Lifecycle(ctx, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    block_reg = registration(block.handler.type_token, {"bucket": bucket.id, "blockPublicAcls": True, "ignorePublicAcls": True,
                                                        "blockPublicPolicy": True, "restrictPublicBuckets": True})
    made = block.create(block_reg)
    assert all(s3.get_public_access_block(Bucket=bucket.id)["PublicAccessBlockConfiguration"].values())
    made = block.update(made, changed(block_reg, restrictPublicBuckets=False))
    assert not s3.get_public_access_block(Bucket=bucket.id)["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"]
    block.delete(made)

    encryption = Lifecycle(ctx, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    made = encryption.create(registration(encryption.handler.type_token, {"bucket": bucket.id, "rules": [{
        "applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key.outputs["arn"]},
        "bucketKeyEnabled": True}]}))
    rule = s3.get_bucket_encryption(Bucket=bucket.id)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key.outputs["arn"]}
    assert rule["BucketKeyEnabled"] is True
    s3.put_object(Bucket=bucket.id, Key="k", Body=b"x")
    assert s3.head_object(Bucket=bucket.id, Key="k")["ServerSideEncryption"] == "aws:kms"
    encryption.delete(made)

    versioning = Lifecycle(ctx, "aws:s3/bucketVersioning:BucketVersioning")
    made = versioning.create(registration(versioning.handler.type_token,
                                          {"bucket": bucket.id, "versioningConfiguration": {"status": "Enabled"}}))
    assert s3.get_bucket_versioning(Bucket=bucket.id)["Status"] == "Enabled"
    versioning.delete(made)
    assert s3.get_bucket_versioning(Bucket=bucket.id)["Status"] == "Suspended"


def test_bucket_policy_is_put_whole_and_its_conditions_decide(ctx, client):
    """moto gets the whole bucket policy; a TLS-only Deny does not block the sandbox's (TLS-standing)
    calls, a matching Deny does."""
    bucket = make(ctx, "aws:s3/bucket:Bucket", {"bucket": unique("envctl-policy")})
    arn = f"arn:aws:s3:::{bucket.id}"
    tls_only = {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    deny_tagged = {"Sid": "DenyTaggedKeys", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
                   "Resource": f"{arn}/locked/*"}
    policy = json.dumps({"Version": "2012-10-17", "Statement": [tls_only, deny_tagged]})
    life = Lifecycle(ctx, "aws:s3/bucketPolicy:BucketPolicy")
    reg = registration(life.handler.type_token, {"bucket": bucket.id, "policy": policy})
    made = life.create(reg)

    s3 = client("s3")
    assert json.loads(s3.get_bucket_policy(Bucket=bucket.id)["Policy"])["Statement"] == [tls_only, deny_tagged]
    s3.put_object(Bucket=bucket.id, Key="still-works", Body=b"x")
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.put_object(Bucket=bucket.id, Key="locked/k", Body=b"x")

    made = life.update(made, changed(reg, policy=json.dumps({"Version": "2012-10-17", "Statement": [tls_only]})))
    assert json.loads(s3.get_bucket_policy(Bucket=bucket.id)["Policy"])["Statement"] == [tls_only]
    s3.put_object(Bucket=bucket.id, Key="locked/k", Body=b"x")
    life.delete(made)


# --- ECR and Secrets Manager -----------------------------------------------------------------


def test_ecr_repository_lifecycle(ctx, client):
    """A repository gets mutability, scan on push, KMS encryption and tags; updates in place; is adopted; with
    forceDelete (as the program sets it) it is deleted with its images."""
    key = make(ctx, "aws:kms/key:Key", {})
    life = Lifecycle(ctx, "aws:ecr/repository:Repository")
    name = unique("envctl-repo")
    reg = registration(life.handler.type_token, {
        "name": name, "imageTagMutability": "IMMUTABLE", "imageScanningConfiguration": {"scanOnPush": True},
        "encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": key.outputs["arn"]}], "forceDelete": True})
    repo = life.create(reg)
    ecr = client("ecr")
    described = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert repo.outputs["repositoryUrl"] == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{name}"
    assert (repo.outputs["registryId"], repo.outputs["arn"]) == (ACCOUNT, described["repositoryArn"])
    assert described["imageTagMutability"] == "IMMUTABLE"
    assert described["imageScanningConfiguration"] == {"scanOnPush": True}
    assert described["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key.outputs["arn"]}
    assert tags_of(ecr.list_tags_for_resource(resourceArn=repo.outputs["arn"])["tags"]) == TEAM_TAGS
    assert life.find(reg)[0] == name

    repo = life.update(repo, changed(reg, imageTagMutability="MUTABLE", imageScanningConfiguration={"scanOnPush": False}))
    described = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert (described["imageTagMutability"], described["imageScanningConfiguration"]) == ("MUTABLE", {"scanOnPush": False})
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {}, "layers": []}
    ecr.put_image(repositoryName=name, imageManifest=json.dumps(manifest), imageTag="v1")  # force deletes it too
    life.delete(repo)


def test_secret_container_without_value(ctx, client):
    """A secret is made with description, key and tags but no value; updates; is adopted by name; a delete keeps
    the name for the recovery window (AWS refuses CreateSecret until then); a window of 0 frees it at once."""
    key = make(ctx, "aws:kms/key:Key", {})
    life = Lifecycle(ctx, "aws:secretsmanager/secret:Secret")
    name = f"envctl/t1/{unique('token')}"
    reg = registration(life.handler.type_token, {"name": name, "description": "partner token",
                                                 "kmsKeyId": key.outputs["arn"], "recoveryWindowInDays": 7.0})
    secret = life.create(reg)
    manager = client("secretsmanager")
    described = manager.describe_secret(SecretId=secret.id)
    assert secret.id == described["ARN"] and secret.outputs["arn"] == secret.id
    assert (described["Name"], described["Description"], described["KmsKeyId"]) == (name, "partner token", key.outputs["arn"])
    assert tags_of(described["Tags"]) == TEAM_TAGS
    assert not described.get("VersionIdsToStages")
    with pytest.raises(ClientError):
        manager.get_secret_value(SecretId=secret.id)
    assert life.find(reg)[0] == secret.id

    secret = life.update(secret, changed(reg, description="rotated partner token"))
    assert manager.describe_secret(SecretId=secret.id)["Description"] == "rotated partner token"
    with pytest.raises(ClientError):
        manager.get_secret_value(SecretId=secret.id)

    life.delete(secret)  # scheduled for deletion after the recovery window
    assert life.find(reg) is None
    with pytest.raises(ClientError):
        life.create(reg)
    manager.delete_secret(SecretId=secret.id, ForceDeleteWithoutRecovery=True)
    immediate = changed(reg, recoveryWindowInDays=0.0)
    life.delete(life.create(immediate))  # no recovery window: deleted at once, the name is free again
    life.delete(life.create(immediate))


# --- IAM -------------------------------------------------------------------------------------


def _policy_document(action: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})


def _trust(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


def test_iam_policy_versions(ctx, client):
    """A policy is made with tags; each changed document becomes the default version, keeping at most five."""
    life = Lifecycle(ctx, "aws:iam/policy:Policy")
    name = unique("envctl-boundary")
    reg = registration(life.handler.type_token,
                       {"name": name, "description": "boundary", "policy": _policy_document("s3:GetObject")})
    policy = life.create(reg)
    iam = client("iam")
    assert policy.id == f"arn:aws:iam::{ACCOUNT}:policy/{name}" and policy.outputs["arn"] == policy.id
    assert tags_of(iam.list_policy_tags(PolicyArn=policy.id)["Tags"]) == TEAM_TAGS
    assert life.find(reg)[0] == policy.id

    for number in range(6):
        reg = changed(reg, policy=_policy_document(f"s3:Action{number}"))
        policy = life.update(policy, reg)
    versions = iam.list_policy_versions(PolicyArn=policy.id)["Versions"]
    default = next(v for v in versions if v["IsDefaultVersion"])
    document = iam.get_policy_version(PolicyArn=policy.id, VersionId=default["VersionId"])["PolicyVersion"]["Document"]
    assert len(versions) == 5
    assert (document if isinstance(document, dict) else json.loads(document))["Statement"][0]["Action"] == "s3:Action5"
    life.delete(policy)


def test_role_trust_adds_the_sandbox_admin(ctx, client):
    """moto's trust policy also names the sandbox admin (so tests can assume the role); the stored inputs stay the program's."""
    boundary = make(ctx, "aws:iam/policy:Policy", {"name": unique("boundary"), "policy": _policy_document("s3:*")})
    life = Lifecycle(ctx, "aws:iam/role:Role")
    name = unique("envctl-role")
    trust = _trust("ec2.amazonaws.com")
    reg = registration(life.handler.type_token, {"name": name, "assumeRolePolicy": trust, "description": "host",
                                                 "permissionsBoundary": boundary.id, "maxSessionDuration": 7200.0})
    role = life.create(reg)
    iam = client("iam")
    described = iam.get_role(RoleName=name)["Role"]
    statements = described["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in statements] == [{"Service": "ec2.amazonaws.com", "AWS": [ADMIN_ARN]}]
    assert role.inputs["assumeRolePolicy"] == trust and ADMIN_ARN not in json.dumps(role.inputs)
    assert (role.id, role.outputs["arn"], role.outputs["uniqueId"]) == (name, described["Arn"], described["RoleId"])
    assert described["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary.id
    assert (described["Description"], described["MaxSessionDuration"]) == ("host", 7200)
    assert tags_of(described["Tags"]) == TEAM_TAGS
    assert client("sts").assume_role(RoleArn=described["Arn"], RoleSessionName="segregation-test")["Credentials"]
    assert life.find(reg)[0] == name

    role = life.update(role, changed(reg, assumeRolePolicy=_trust("sagemaker.amazonaws.com"), permissionsBoundary=None,
                                     description="changed", tags={"x": "y"}))
    described = iam.get_role(RoleName=name)["Role"]
    principals = [s["Principal"] for s in described["AssumeRolePolicyDocument"]["Statement"]]
    assert principals == [{"Service": "sagemaker.amazonaws.com", "AWS": [ADMIN_ARN]}]
    assert "PermissionsBoundary" not in described and described["Description"] == "changed"
    assert tags_of(described["Tags"]) == {**TEAM_TAGS, "x": "y"}


def test_role_delete_detaches_everything(ctx, client):
    """Deleting a role first detaches its managed policies, deletes its inline ones and leaves its instance profiles."""
    role = make(ctx, "aws:iam/role:Role", {"name": unique("envctl-role"), "assumeRolePolicy": _trust("ec2.amazonaws.com")})
    managed = make(ctx, "aws:iam/policy:Policy", {"name": unique("managed"), "policy": _policy_document("s3:*")})
    iam = client("iam")
    iam.attach_role_policy(RoleName=role.id, PolicyArn=managed.id)
    iam.put_role_policy(RoleName=role.id, PolicyName="inline", PolicyDocument=_policy_document("s3:*"))
    profile = make(ctx, "aws:iam/instanceProfile:InstanceProfile", {"name": unique("profile"), "role": role.id})
    Lifecycle(ctx, "aws:iam/role:Role").delete(role)
    assert iam.get_instance_profile(InstanceProfileName=profile.id)["InstanceProfile"]["Roles"] == []


def test_role_policy_autonamed(ctx, client):
    """An inline policy without a name gets one from its logical name, kept in the outputs for update and delete."""
    role = make(ctx, "aws:iam/role:Role", {"name": unique("envctl-role"), "assumeRolePolicy": _trust("ec2.amazonaws.com")})
    life = Lifecycle(ctx, "aws:iam/rolePolicy:RolePolicy")
    reg = registration(life.handler.type_token, {"role": role.id, "policy": _policy_document("s3:GetObject")},
                       name="t1-airflow-policy")
    made = life.create(reg)
    name = made.outputs["name"]
    assert name.startswith("t1-airflow-policy-") and made.id == f"{role.id}:{name}"
    iam = client("iam")
    made = life.update(made, changed(reg, policy=_policy_document("s3:PutObject")))
    assert iam.get_role_policy(RoleName=role.id, PolicyName=name)["PolicyDocument"]["Statement"][0]["Action"] == "s3:PutObject"
    life.delete(made)


def test_role_policy_attachment(ctx, client):
    """A customer managed policy is attached; an AWS managed one is attached, or put inline when moto lacks it."""
    role = make(ctx, "aws:iam/role:Role", {"name": unique("envctl-role"), "assumeRolePolicy": _trust("ec2.amazonaws.com")})
    managed = make(ctx, "aws:iam/policy:Policy", {"name": unique("managed"), "policy": _policy_document("s3:*")})
    life = Lifecycle(ctx, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    iam = client("iam")

    customer = life.create(registration(life.handler.type_token, {"role": role.id, "policyArn": managed.id}))
    assert customer.id == f"{role.id}/{managed.id}"
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role.id)["AttachedPolicies"]] == [managed.id]

    ssm_core = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    aws_managed = life.create(registration(life.handler.type_token, {"role": role.id, "policyArn": ssm_core}))
    if stand_in := aws_managed.outputs.get("sandboxInlineStandIn"):
        document = iam.get_role_policy(RoleName=role.id, PolicyName=stand_in)["PolicyDocument"]
        assert "ssm:UpdateInstanceInformation" in json.dumps(document)
    else:
        assert ssm_core in [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role.id)["AttachedPolicies"]]
    life.delete(aws_managed)
    life.delete(customer)
    assert iam.list_attached_role_policies(RoleName=role.id)["AttachedPolicies"] == []


def test_instance_profile_swaps_its_role(ctx, client):
    """An instance profile holds its role and tags; a new role replaces the old one in place; delete leaves the role."""
    first = make(ctx, "aws:iam/role:Role", {"name": unique("first"), "assumeRolePolicy": _trust("ec2.amazonaws.com")})
    second = make(ctx, "aws:iam/role:Role", {"name": unique("second"), "assumeRolePolicy": _trust("ec2.amazonaws.com")})
    life = Lifecycle(ctx, "aws:iam/instanceProfile:InstanceProfile")
    name = unique("profile")
    reg = registration(life.handler.type_token, {"name": name, "role": first.id})
    profile = life.create(reg)
    iam = client("iam")
    described = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    assert [r["RoleName"] for r in described["Roles"]] == [first.id]
    assert (profile.outputs["arn"], profile.outputs["uniqueId"]) == (described["Arn"], described["InstanceProfileId"])
    assert tags_of(described["Tags"]) == TEAM_TAGS  # moto has no ListInstanceProfileTags
    assert life.find(reg)[0] == name

    profile = life.update(profile, changed(reg, role=second.id, tags={"x": "y"}))
    described = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    assert [r["RoleName"] for r in described["Roles"]] == [second.id]
    assert tags_of(described["Tags"]) == {**TEAM_TAGS, "x": "y"}
    life.delete(profile)
    assert iam.get_role(RoleName=second.id)


# --- observability ---------------------------------------------------------------------------


def test_log_group_lifecycle(ctx, client):
    """A log group gets retention, KMS key and tags; its arn has no ':*'; retention changes in place."""
    key = make(ctx, "aws:kms/key:Key", {})
    life = Lifecycle(ctx, "aws:cloudwatch/logGroup:LogGroup")
    name = f"/envctl/{unique('t1')}"
    reg = registration(life.handler.type_token, {"name": name, "retentionInDays": 90.0, "kmsKeyId": key.outputs["arn"]})
    group = life.create(reg)
    logs = client("logs")
    described = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]
    assert (described["retentionInDays"], described["kmsKeyId"]) == (90, key.outputs["arn"])
    assert group.outputs["arn"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"
    assert logs.list_tags_log_group(logGroupName=name)["tags"] == TEAM_TAGS
    assert life.find(reg)[0] == name

    group = life.update(group, changed(reg, retentionInDays=30.0))
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["retentionInDays"] == 30
    life.delete(group)


def test_metric_alarm_lifecycle(ctx, client):
    """An autonamed alarm is put with its metric, dimensions, actions and tags; an update overwrites it."""
    life = Lifecycle(ctx, "aws:cloudwatch/metricAlarm:MetricAlarm")
    reg = registration(life.handler.type_token, {
        "comparisonOperator": "GreaterThanThreshold", "period": 60.0, "namespace": "AWS/EC2", "evaluationPeriods": 2.0,
        "statistic": "Maximum", "metricName": "StatusCheckFailed_System", "threshold": 0.0,
        "alarmActions": [f"arn:aws:automate:{REGION}:ec2:recover"], "dimensions": {"InstanceId": "i-0123456789abcdef0"},
        "alarmDescription": "recover"}, name="t1-airflow-recover")
    alarm = life.create(reg)
    cloudwatch = client("cloudwatch")
    described = cloudwatch.describe_alarms(AlarmNames=[alarm.id])["MetricAlarms"][0]
    assert alarm.id.startswith("t1-airflow-recover-")
    assert (described["Period"], described["EvaluationPeriods"], described["AlarmActions"]) == (
        60, 2, [f"arn:aws:automate:{REGION}:ec2:recover"])
    assert described["Dimensions"] == [{"Name": "InstanceId", "Value": "i-0123456789abcdef0"}]
    assert tags_of(cloudwatch.list_tags_for_resource(ResourceARN=described["AlarmArn"])["Tags"]) == TEAM_TAGS

    alarm = life.update(alarm, changed(reg, evaluationPeriods=3.0))
    assert cloudwatch.describe_alarms(AlarmNames=[alarm.id])["MetricAlarms"][0]["EvaluationPeriods"] == 3
    life.delete(alarm)


def test_ssm_parameter_update_keeps_an_ignored_value(ctx, client):
    """A parameter is written with its initial (secret-marked) value; with `value` ignored (the bootstrap
    result, which the host writes) an update changes the description but not the value."""
    life = Lifecycle(ctx, "aws:ssm/parameter:Parameter")
    name = f"/envctl/{unique('t1')}/bootstrap"
    reg = registration(life.handler.type_token, {"name": name, "type": "String", "description": "bootstrap",
                                                 "value": {**SECRET_SIG, "value": '{"status": "pending"}'}})
    parameter = life.create(reg)
    ssm = client("ssm")
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == '{"status": "pending"}'
    assert tags_of(ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]) == TEAM_TAGS
    assert parameter.outputs["arn"] == f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}"
    assert life.find(reg)[0] == name

    ssm.put_parameter(Name=name, Value='{"status": "ok"}', Type="String", Overwrite=True)  # the host reports
    update = changed(reg, description="bootstrap result")
    update.ignore_changes = ["value"]
    parameter = life.update(parameter, update)
    described = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"][0]
    assert described["Description"] == "bootstrap result"
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == '{"status": "ok"}'
    life.delete(parameter)


def test_ssm_parameter_update_writes_the_programs_value(ctx, client):
    """Without ignore_changes an update writes the program's value, as Pulumi does on AWS (the owners
    parameter: an owners change reaches the running host this way)."""
    life = Lifecycle(ctx, "aws:ssm/parameter:Parameter")
    name = f"/envctl/{unique('t1')}/airflow/owners"
    reg = registration(life.handler.type_token, {"name": name, "type": "String", "value": '["a@example.com"]'})
    parameter = life.create(reg)
    ssm = client("ssm")
    parameter = life.update(parameter, changed(reg, value='["a@example.com", "b@example.com"]'))
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == '["a@example.com", "b@example.com"]'
    life.delete(parameter)


def test_budget_lifecycle(ctx, client):
    """A cost budget is created with its limit, filters and notifications, adopted by name, and deleted."""
    life = Lifecycle(ctx, "aws:budgets/budget:Budget")
    name = unique("envctl-t1")
    reg = registration(life.handler.type_token, {
        "name": name, "budgetType": "COST", "timeUnit": "MONTHLY", "limitAmount": "2500", "limitUnit": "USD",
        "costFilters": [{"name": "TagKeyValue", "values": ["user:envctl:team$t1"]}],
        "notifications": [{"subscriberEmailAddresses": ["a@example.com"], "notificationType": "ACTUAL",
                           "thresholdType": "PERCENTAGE", "comparisonOperator": "GREATER_THAN", "threshold": 80.0}]})
    budget = life.create(reg)
    budgets = client("budgets", "us-east-1")
    described = budgets.describe_budget(AccountId=ACCOUNT, BudgetName=name)["Budget"]
    assert budget.id == f"{ACCOUNT}:{name}"
    assert described["BudgetLimit"] == {"Amount": "2500", "Unit": "USD"}
    assert described["CostFilters"] == {"TagKeyValue": ["user:envctl:team$t1"]}
    notifications = budgets.describe_notifications_for_budget(AccountId=ACCOUNT, BudgetName=name)["Notifications"]
    assert notifications == [{"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN", "Threshold": 80.0,
                              "ThresholdType": "PERCENTAGE"}]
    assert life.find(reg)[0] == budget.id
    life.delete(budget)
    assert life.find(reg) is None


# --- SageMaker and Application Auto Scaling --------------------------------------------------


@pytest.mark.parametrize("requested,expected", [
    ("ml.m5.large", "ml.m5.large"),
    ("ml.g5.xlarge", "ml.g4dn.xlarge"),
    ("ml.g6.12xlarge", "ml.g4dn.12xlarge"),
    ("ml.g5.48xlarge", "ml.g4dn.xlarge"),
    ("ml.p4d.24xlarge", "ml.p3.2xlarge"),
    ("ml.p5.48xlarge", "ml.p3.2xlarge"),
    ("ml.inf2.xlarge", "ml.m5.xlarge"),
    ("ml.m7i.2xlarge", "ml.m5.2xlarge"),
    ("ml.c6i.large", "ml.c5.large"),
])
def test_sandbox_instance_type(requested, expected):
    """Instance types moto rejects map to the nearest accepted one; accepted ones stay."""
    assert inference.sandbox_instance_type(requested) == expected


def _model(ctx, role_arn: str) -> StoredResource:
    image = record_pushed_image(ctx.client("ecr", REGION), "envctl-t1", "v1")  # CreateModel needs the image in ECR
    return Lifecycle(ctx, "aws:sagemaker/model:Model").create(registration("aws:sagemaker/model:Model", {
        "executionRoleArn": role_arn,
        "primaryContainer": {"mode": "SingleModel", "image": image,
                             "environment": {"MODEL_NAME": "fraud"}}}, name="t1-inference-model"))


def test_sagemaker_model_and_endpoint_configs(ctx, client):
    """Models and endpoint configs are autonamed; a model is never overwritten; rejected instance types
    are mapped; serverless is translated."""
    role = make(ctx, "aws:iam/role:Role", {"name": unique("sm"), "assumeRolePolicy": _trust("sagemaker.amazonaws.com")})
    model = _model(ctx, role.outputs["arn"])
    sagemaker = client("sagemaker")
    assert model.id.startswith("t1-inference-model-") and len(model.id) == len("t1-inference-model-") + 7
    described = sagemaker.describe_model(ModelName=model.id)
    assert described["PrimaryContainer"]["Environment"] == {"MODEL_NAME": "fraud"}
    assert tags_of(sagemaker.list_tags(ResourceArn=model.outputs["arn"])["Tags"]) == TEAM_TAGS
    named = registration("aws:sagemaker/model:Model", {**model.inputs, "name": model.id})
    with pytest.raises(EnvctlError, match="already exists"):  # moto would overwrite it silently
        Lifecycle(ctx, "aws:sagemaker/model:Model").create(named)
    assert Lifecycle(ctx, "aws:sagemaker/model:Model").find(named)[0] == model.id

    configs = Lifecycle(ctx, "aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    key = make(ctx, "aws:kms/key:Key", {})
    instances = configs.create(registration(configs.handler.type_token, {"kmsKeyArn": key.outputs["arn"], "productionVariants": [
        {"modelName": model.id, "instanceType": "ml.m6i.xlarge", "variantName": "AllTraffic", "initialInstanceCount": 1.0}]}))
    described = sagemaker.describe_endpoint_config(EndpointConfigName=instances.id)
    assert described["ProductionVariants"][0]["InstanceType"] == "ml.m5.xlarge"
    assert described["KmsKeyId"] == key.outputs["arn"]
    assert instances.outputs["sandboxInstanceTypes"] == {"ml.m6i.xlarge": "ml.m5.xlarge"}
    gpus = configs.create(registration(configs.handler.type_token, {"productionVariants": [  # local storage: no KMS key
        {"modelName": model.id, "instanceType": "ml.g5.xlarge", "variantName": "AllTraffic", "initialInstanceCount": 1.0}]}))
    assert gpus.outputs["sandboxInstanceTypes"] == {"ml.g5.xlarge": "ml.g4dn.xlarge"}

    serverless = configs.create(registration(configs.handler.type_token, {"productionVariants": [
        {"modelName": model.id, "variantName": "AllTraffic",
         "serverlessConfig": {"maxConcurrency": 5.0, "memorySizeInMb": 2048.0}}]}))
    variant = sagemaker.describe_endpoint_config(EndpointConfigName=serverless.id)["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert serverless.outputs["sandboxInstanceTypes"] == {}

    for made in (instances, gpus, serverless):
        configs.delete(made)
    Lifecycle(ctx, "aws:sagemaker/model:Model").delete(model)


def test_sagemaker_endpoint_repointed_and_scaled(ctx, client):
    """An endpoint is made, repointed in place to a new config (UpdateEndpoint: same name and ARN),
    adopted, scaled, and deleted."""
    role = make(ctx, "aws:iam/role:Role", {"name": unique("sm"), "assumeRolePolicy": _trust("sagemaker.amazonaws.com")})
    model = _model(ctx, role.outputs["arn"])
    variants = [{"modelName": model.id, "instanceType": "ml.m5.large", "variantName": "AllTraffic", "initialInstanceCount": 1.0}]
    first = make(ctx, "aws:sagemaker/endpointConfiguration:EndpointConfiguration", {"productionVariants": variants})
    second = make(ctx, "aws:sagemaker/endpointConfiguration:EndpointConfiguration", {"productionVariants": variants})

    life = Lifecycle(ctx, "aws:sagemaker/endpoint:Endpoint")
    name = unique("envctl-t1")
    reg = registration(life.handler.type_token, {"name": name, "endpointConfigName": first.id})
    endpoint = life.create(reg)
    sagemaker = client("sagemaker")
    described = sagemaker.describe_endpoint(EndpointName=name)
    assert (described["EndpointStatus"], endpoint.outputs["arn"]) == ("InService", described["EndpointArn"])
    assert tags_of(sagemaker.list_tags(ResourceArn=endpoint.outputs["arn"])["Tags"]) == TEAM_TAGS
    endpoint = life.update(endpoint, changed(reg, endpointConfigName=second.id))
    described = sagemaker.describe_endpoint(EndpointName=name)
    assert (described["EndpointConfigName"], described["EndpointArn"]) == (second.id, endpoint.outputs["arn"])
    assert life.find(reg)[0] == name

    resource_id = f"endpoint/{name}/variant/AllTraffic"
    scaling = {"serviceNamespace": "sagemaker", "resourceId": resource_id,
               "scalableDimension": "sagemaker:variant:DesiredInstanceCount"}
    targets = Lifecycle(ctx, "aws:appautoscaling/target:Target")
    target_reg = registration(targets.handler.type_token, {**scaling, "minCapacity": 1.0, "maxCapacity": 4.0})
    target = targets.create(target_reg)
    autoscaling = client("application-autoscaling")
    assert target.id == resource_id and target.outputs["resourceId"] == resource_id
    target = targets.update(target, changed(target_reg, maxCapacity=6.0))
    described = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource_id])["ScalableTargets"]
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in described] == [(1, 6)]
    assert targets.find(target_reg)[0] == resource_id

    policies = Lifecycle(ctx, "aws:appautoscaling/policy:Policy")
    policy_reg = registration(policies.handler.type_token, {**scaling, "policyType": "TargetTrackingScaling",
        "targetTrackingScalingPolicyConfiguration": {"scaleInCooldown": 300.0, "scaleOutCooldown": 60.0, "targetValue": 100.0,
            "predefinedMetricSpecification": {"predefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}},
        name="t1-inference-scaling-policy")
    policy = policies.create(policy_reg)
    described = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource_id)["ScalingPolicies"]
    assert policy.id.startswith("t1-inference-scaling-policy-") and policy.outputs["arn"] == described[0]["PolicyARN"]
    assert described[0]["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 100.0, "ScaleInCooldown": 300, "ScaleOutCooldown": 60,
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}
    policy = policies.update(policy, changed(policy_reg, targetTrackingScalingPolicyConfiguration={
        **policy_reg.inputs["targetTrackingScalingPolicyConfiguration"], "targetValue": 50.0}))
    described = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource_id)["ScalingPolicies"]
    assert described[0]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 50.0

    policies.delete(policy)
    targets.delete(target)
    life.delete(endpoint)


def test_sagemaker_notebook_instance(ctx, client):
    """A notebook instance is made in a subnet with the team key and tags, adopted by name, and stopped then deleted."""
    role = make(ctx, "aws:iam/role:Role", {"name": unique("sm"), "assumeRolePolicy": _trust("sagemaker.amazonaws.com")})
    key = make(ctx, "aws:kms/key:Key", {})
    life = Lifecycle(ctx, "aws:sagemaker/notebookInstance:NotebookInstance")
    name = unique("envctl-t1-notebook")
    reg = registration(life.handler.type_token, {
        "name": name, "roleArn": role.outputs["arn"], "instanceType": "ml.t3.medium", "rootAccess": "Disabled",
        "directInternetAccess": "Disabled", "subnetId": "subnet-0123456789abcdef0", "securityGroups": ["sg-0123456789abcdef0"],
        "kmsKeyId": key.outputs["arn"]})
    notebook = life.create(reg)
    sagemaker = client("sagemaker")
    described = sagemaker.describe_notebook_instance(NotebookInstanceName=name)
    assert (described["InstanceType"], described["DirectInternetAccess"], described["RootAccess"]) == (
        "ml.t3.medium", "Disabled", "Disabled")
    assert (described["SubnetId"], described["KmsKeyId"]) == ("subnet-0123456789abcdef0", key.outputs["arn"])
    assert tags_of(sagemaker.list_tags(ResourceArn=notebook.outputs["arn"])["Tags"]) == TEAM_TAGS
    assert life.find(reg)[0] == name
    life.delete(notebook)
