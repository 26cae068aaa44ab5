"""The sandbox's fidelity rules: where moto accepts what AWS refuses, the sandbox server refuses it
with AWS's answer (error code, HTTP status), and still allows what AWS allows.

Every registered rule has refusal cases in REFUSALS (the meta-test fails for a rule without one);
each case states AWS's rule. The calls go through a real server (moto behind the fidelity
middleware, as `envctl sandbox start` runs it), with boto3 and with the AWS CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest
from botocore.exceptions import ClientError

from provisioner.components.policies import TeamArns, bucket_policy, host_policy, permissions_boundary
from provisioner.engines.sandbox.fidelity import registry
from provisioner.engines.sandbox.fidelity.policy import NotModelled, condition_holds
from provisioner.engines.sandbox.fidelity.registry import RULES
from provisioner.engines.sandbox.fidelity.request import RULE_HEADER
from provisioner.engines.sandbox.fidelity.rules.sagemaker import has_local_storage
from tests.conftest import SANDBOX_CREDENTIALS, record_pushed_image

pytestmark = [pytest.mark.sandbox]

REGION = "eu-west-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/fidelity-sagemaker"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Sandbox:
    """boto3 clients against the session's sandbox server, and a team-like bucket under the program's policy."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.session = boto3.session.Session(region_name=REGION, **SANDBOX_CREDENTIALS)
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str = REGION) -> Any:
        if (service, region) not in self._clients:
            self._clients[service, region] = self.session.client(service, region_name=region, endpoint_url=self.endpoint)
        return self._clients[service, region]

    def key_arn(self) -> str:
        return self.client("kms").create_key()["KeyMetadata"]["Arn"]

    def team_bucket(self) -> tuple[str, str]:
        """A bucket with the team's default encryption and the program's bucket policy: (bucket, team key ARN)."""
        s3, bucket, key = self.client("s3"), unique("fidelity-team"), self.key_arn()
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}, "BucketKeyEnabled": True}]})
        s3.put_bucket_policy(Bucket=bucket, Policy=bucket_policy(_arns(bucket, key)))
        return bucket, key


def _arns(bucket: str, key: str) -> TeamArns:
    return TeamArns.for_team("fidelity", account_id=ACCOUNT, region=REGION, bucket=bucket, kms_key_arn=key)


@pytest.fixture(scope="module")
def sandbox(moto_endpoint) -> Sandbox:
    return Sandbox(moto_endpoint)


@dataclass(frozen=True)
class Case:
    """One call AWS refuses: what it does, and AWS's error code and HTTP status."""

    name: str
    call: Callable[[Sandbox], Any]
    code: str
    status: int

    def __str__(self) -> str:
        return self.name


# --- the calls -------------------------------------------------------------------------------


def _put_with_other_key(sandbox: Sandbox) -> None:
    bucket, _ = sandbox.team_bucket()
    sandbox.client("s3").put_object(Bucket=bucket, Key="dags/x.py", Body=b"x", ServerSideEncryption="aws:kms",
                                    SSEKMSKeyId=sandbox.key_arn())


def _put_with_sse_s3(sandbox: Sandbox) -> None:
    bucket, _ = sandbox.team_bucket()
    sandbox.client("s3").put_object(Bucket=bucket, Key="dags/x.py", Body=b"x", ServerSideEncryption="AES256")


def _multipart_with_other_key(sandbox: Sandbox) -> None:
    bucket, _ = sandbox.team_bucket()
    sandbox.client("s3").create_multipart_upload(Bucket=bucket, Key="backups/b.tar", ServerSideEncryption="aws:kms",
                                                 SSEKMSKeyId=sandbox.key_arn())


def _copy_with_other_key(sandbox: Sandbox) -> None:
    bucket, _ = sandbox.team_bucket()
    s3 = sandbox.client("s3")
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    s3.copy_object(Bucket=bucket, Key="b", CopySource={"Bucket": bucket, "Key": "a"}, ServerSideEncryption="aws:kms",
                   SSEKMSKeyId=sandbox.key_arn())


def _list_under_a_listing_deny(sandbox: Sandbox) -> None:
    bucket, _ = sandbox.team_bucket()
    s3 = sandbox.client("s3")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
        "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}))
    s3.list_objects_v2(Bucket=bucket)


def _model(image: str) -> Callable[[Sandbox], Any]:
    def call(sandbox: Sandbox) -> Any:
        return sandbox.client("sagemaker").create_model(ModelName=unique("fidelity-model"), ExecutionRoleArn=ROLE_ARN,
                                                        PrimaryContainer={"Image": image})
    return call


def _absent_tag(sandbox: Sandbox) -> Any:
    uri = record_pushed_image(sandbox.client("ecr"), unique("fidelity-repo"), "v1")
    return _model(uri.rsplit(":", 1)[0] + ":default-0123abcd")(sandbox)


def _endpoint_config(variant: dict[str, Any], kms: bool = True) -> Callable[[Sandbox], Any]:
    def call(sandbox: Sandbox) -> Any:
        model = unique("fidelity-model")
        sandbox.client("sagemaker").create_model(ModelName=model, ExecutionRoleArn=ROLE_ARN,
                                                 PrimaryContainer={"Image": "public.ecr.aws/docker/library/python:3.12"})
        extra = {"KmsKeyId": sandbox.key_arn()} if kms else {}
        return sandbox.client("sagemaker").create_endpoint_config(
            EndpointConfigName=unique("fidelity-config"),
            ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": model, **variant}], **extra)
    return call


def _secret_scheduled_for_deletion(sandbox: Sandbox) -> Any:
    secrets, name = sandbox.client("secretsmanager"), unique("fidelity/secret")
    secrets.create_secret(Name=name, SecretString="x")
    secrets.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    return secrets.create_secret(Name=name, SecretString="y")


def _unsubscribe(protocol: str, endpoint: str) -> Callable[[Sandbox], Any]:
    def call(sandbox: Sandbox) -> Any:
        sns = sandbox.client("sns")
        topic = sns.create_topic(Name=unique("fidelity-alerts"))["TopicArn"]
        subscription = sns.subscribe(TopicArn=topic, Protocol=protocol, Endpoint=endpoint, ReturnSubscriptionArn=True)
        return sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
    return call


def _subnet(zone: str) -> Callable[[Sandbox], Any]:
    def call(sandbox: Sandbox) -> Any:
        ec2 = sandbox.client("ec2", "us-west-1")
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        return ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone=zone)
    return call


def _volume(zone: str) -> Callable[[Sandbox], Any]:
    return lambda sandbox: sandbox.client("ec2", "us-west-1").create_volume(Size=1, AvailabilityZone=zone)


def _instance(zone: str) -> Callable[[Sandbox], Any]:
    return lambda sandbox: sandbox.client("ec2", "us-west-1").run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro", Placement={"AvailabilityZone": zone})


def _role_session(sandbox: Sandbox, policy: str, boundary: str | None = None) -> Any:
    """A CloudWatch client as a session of a new role with that inline policy (and boundary)."""
    iam, name = sandbox.client("iam"), unique("fidelity-role")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})
    extra = {}
    if boundary is not None:
        extra["PermissionsBoundary"] = iam.create_policy(PolicyName=unique("fidelity-boundary"),
                                                         PolicyDocument=boundary)["Policy"]["Arn"]
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust, **extra)["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=policy)
    keys = sandbox.client("sts").assume_role(RoleArn=arn, RoleSessionName="i-fidelity")["Credentials"]
    return boto3.client("cloudwatch", region_name=REGION, endpoint_url=sandbox.endpoint, aws_access_key_id=keys["AccessKeyId"],
                        aws_secret_access_key=keys["SecretAccessKey"], aws_session_token=keys["SessionToken"])


HOST_ARNS = TeamArns.for_team("fidelity", account_id=ACCOUNT, region=REGION, bucket="fidelity-bucket",
                              kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/fidelity")
ANY_NAMESPACE = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"}]})


def _put_metric(namespace: str, policy: str = host_policy(HOST_ARNS), boundary: str | None = permissions_boundary(HOST_ARNS),
                ) -> Callable[[Sandbox], Any]:
    def call(sandbox: Sandbox) -> Any:
        return _role_session(sandbox, policy, boundary).put_metric_data(
            Namespace=namespace, MetricData=[{"MetricName": "SchedulerHeartbeat", "Value": 1, "Unit": "Count"}])
    return call


# --- every rule's refusals (the meta-test below requires one per rule) -------------------------

REFUSALS: dict[str, list[Case]] = {
    "bucket_policy_denies": [
        Case("put-naming-another-kms-key", _put_with_other_key, "AccessDenied", 403),
        Case("put-naming-sse-s3", _put_with_sse_s3, "AccessDenied", 403),
        Case("multipart-naming-another-key", _multipart_with_other_key, "AccessDenied", 403),
        Case("copy-naming-another-key", _copy_with_other_key, "AccessDenied", 403),
        Case("listing-denied-over-tls", _list_under_a_listing_deny, "AccessDenied", 403),
    ],
    "model_image_must_exist": [
        Case("no-such-repository", _model(f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/fidelity-none:v1"),
             "ValidationException", 400),
        Case("repository-without-the-tag", _absent_tag, "ValidationException", 400),
    ],
    "no_kms_key_on_local_storage": [
        Case("g4dn-with-kms", _endpoint_config({"InstanceType": "ml.g4dn.xlarge", "InitialInstanceCount": 1}),
             "ValidationException", 400),
        Case("m5d-with-kms", _endpoint_config({"InstanceType": "ml.m5d.large", "InitialInstanceCount": 1}),
             "ValidationException", 400),
        Case("serverless-with-kms", _endpoint_config({"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1}}),
             "ValidationException", 400),
    ],
    "no_create_while_scheduled_for_deletion": [
        Case("secret-in-recovery-window", _secret_scheduled_for_deletion, "InvalidRequestException", 400),
    ],
    "no_unsubscribe_while_pending": [
        Case("pending-email-subscription", _unsubscribe("email", "owner@example.com"), "InvalidParameter", 400),
    ],
    "put_metric_data_in_an_allowed_namespace": [
        Case("host-role-in-another-team's-namespace", _put_metric("envctl/treasury"), "AccessDenied", 403),
        Case("host-role-in-a-namespace-prefixed-by-its-own", _put_metric("envctl/fidelity-x"), "AccessDenied", 403),
        Case("any-namespace-policy-outside-the-boundary", _put_metric("envctl/treasury", ANY_NAMESPACE), "AccessDenied", 403),
        Case("a-role-with-no-metrics-statement", _put_metric("envctl/fidelity", json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"}]})),
             "AccessDenied", 403),
    ],
    "zone_must_be_in_region": [
        Case("subnet-in-another-region's-zone", _subnet("eu-west-1a"), "InvalidParameterValue", 400),
        Case("volume-in-a-missing-zone", _volume("us-west-1c"), "InvalidZone.NotFound", 400),
        Case("instance-in-a-missing-zone", _instance("us-west-1c"), "InvalidParameterValue", 400),
    ],
}

# What AWS allows next to each refusal: the sandbox is not stricter.
ALLOWED: list[Case] = [
    Case("model-with-a-pushed-image", lambda s: _model(record_pushed_image(s.client("ecr"), unique("fidelity-repo"), "v1"))(s),
         "", 200),
    Case("model-from-another-registry", _model("public.ecr.aws/docker/library/python:3.12"), "", 200),
    Case("m5-with-kms", _endpoint_config({"InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1}), "", 200),
    Case("g4dn-without-kms", _endpoint_config({"InstanceType": "ml.g4dn.xlarge", "InitialInstanceCount": 1}, kms=False),
         "", 200),
    Case("unsubscribe-of-a-confirmed-subscription", _unsubscribe("sqs", f"arn:aws:sqs:{REGION}:{ACCOUNT}:fidelity-q"), "", 200),
    Case("host-role-in-its-team's-namespace", _put_metric("envctl/fidelity"), "", 200),
    Case("a-policy-for-any-namespace-without-a-boundary", _put_metric("envctl/treasury", ANY_NAMESPACE, None), "", 200),
    Case("the-sandbox-admin-in-any-namespace", lambda s: s.client("cloudwatch").put_metric_data(
        Namespace="envctl/anyone", MetricData=[{"MetricName": "X", "Value": 1}]), "", 200),
    Case("subnet-in-the-region", _subnet("us-west-1b"), "", 200),
    Case("volume-in-the-region", _volume("us-west-1a"), "", 200),
    Case("instance-in-the-region", _instance("us-west-1a"), "", 200),
]


def _refusal_cases() -> list[Any]:
    return [pytest.param(name, case, id=f"{name}:{case.name}") for name, cases in REFUSALS.items() for case in cases]


# --- the meta-test ---------------------------------------------------------------------------


def test_every_rule_has_a_refusal_case_and_cites_aws():
    """Each registered fidelity rule has at least one refusal case here, and its docstring names the AWS document."""
    assert set(RULES) == set(REFUSALS), "rules without cases (or cases without rules)"
    for name, item in RULES.items():
        assert REFUSALS[name], name
        assert any(title in item.doc for title in ("API Reference", "User Guide", "Developer Guide")), name


@pytest.mark.parametrize("rule_name,case", _refusal_cases())
def test_rule_refuses_as_aws_does(sandbox, rule_name, case):
    """The sandbox answers the call with AWS's error code and HTTP status, and it is this rule that refused
    (not moto, which would accept it)."""
    with pytest.raises(ClientError) as refused:
        case.call(sandbox)
    error = refused.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (case.code, case.status)
    assert error["ResponseMetadata"]["HTTPHeaders"].get(RULE_HEADER) == rule_name


@pytest.mark.parametrize("case", ALLOWED, ids=str)
def test_sandbox_allows_what_aws_allows(sandbox, case):
    """Next to each refusal, the call AWS accepts goes through (the sandbox is not stricter than AWS)."""
    response = case.call(sandbox)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == case.status


# --- the bucket policy (defect 4) ------------------------------------------------------------


def test_uploads_relying_on_default_encryption_or_naming_the_team_key_are_allowed(sandbox):
    """AWS: a Deny whose condition tests a header the request lacks (Null false) does not apply, so a
    plain PutObject gets the bucket's default encryption; naming the team key is allowed too."""
    bucket, key = sandbox.team_bucket()
    s3 = sandbox.client("s3")
    s3.put_object(Bucket=bucket, Key="dags/plain.py", Body=b"x")
    s3.put_object(Bucket=bucket, Key="dags/team.py", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="backups/b.tar", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    part = s3.upload_part(Bucket=bucket, Key="backups/b.tar", UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 10)
    s3.complete_multipart_upload(Bucket=bucket, Key="backups/b.tar", UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert s3.head_object(Bucket=bucket, Key="dags/plain.py")["SSEKMSKeyId"] == key
    assert s3.get_object(Bucket=bucket, Key="dags/team.py")["Body"].read() == b"x"


def test_the_old_if_exists_statement_denies_every_default_encrypted_upload(sandbox):
    """AWS: `StringNotEqualsIfExists` on the key-id header is true when the header is missing, so the
    former DenyOtherKeys statement denied every upload that relied on default encryption."""
    bucket, key = sandbox.team_bucket()
    s3 = sandbox.client("s3")
    old = {"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyOtherKeys", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key}}}]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(old))
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.put_object(Bucket=bucket, Key="dags/plain.py", Body=b"x")


def test_deny_for_another_principal_does_not_apply(sandbox):
    """AWS: a Deny naming another principal does not apply to the caller (no stricter than AWS)."""
    bucket, _ = sandbox.team_bucket()
    s3 = sandbox.client("s3")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/someone-else"}, "Action": "s3:*",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")


def test_a_condition_the_sandbox_cannot_evaluate_is_refused_loudly(sandbox):
    """A Deny with a condition key the sandbox does not model answers 501 naming the key, instead of guessing."""
    bucket, _ = sandbox.team_bucket()
    s3 = sandbox.client("s3")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}}]}))
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket=bucket, Key="k")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert "aws:SourceVpce" in refused.value.response["Error"]["Message"]


@pytest.mark.parametrize("signature", ["s3", "s3v4"])
def test_a_presigned_upload_meets_the_bucket_policy_too(sandbox, signature):
    """A presigned PutObject naming another key is AccessDenied (the policy applies to the signer's request)."""
    import urllib.error
    import urllib.request

    from botocore.config import Config

    bucket, _ = sandbox.team_bucket()
    other = sandbox.key_arn()
    signer = sandbox.session.client("s3", endpoint_url=sandbox.endpoint, config=Config(signature_version=signature))
    url = signer.generate_presigned_url("put_object", Params={
        "Bucket": bucket, "Key": "dags/p.py", "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": other})
    request = urllib.request.Request(url, data=b"x", method="PUT", headers={
        "x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": other})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403 and b"AccessDenied" in refused.value.read()


def _aws_cli(sandbox: Sandbox, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": SANDBOX_CREDENTIALS["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": SANDBOX_CREDENTIALS["aws_secret_access_key"], "AWS_DEFAULT_REGION": REGION,
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    aws = Path(sys.executable).with_name("aws")
    return subprocess.run([str(aws), "--endpoint-url", sandbox.endpoint, *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_aws_cli_s3_cp_gets_aws_answers(sandbox, tmp_path):
    """A user's `aws s3 cp` of a DAG (no --sse, as the docs say) succeeds; with another key it is AccessDenied."""
    bucket, key = sandbox.team_bucket()
    dag = tmp_path / "etl.py"
    dag.write_text("print('dag')\n")
    plain = _aws_cli(sandbox, tmp_path, "s3", "cp", str(dag), f"s3://{bucket}/dags/etl.py")
    assert plain.returncode == 0, plain.stderr
    team = _aws_cli(sandbox, tmp_path, "s3", "cp", str(dag), f"s3://{bucket}/dags/team.py", "--sse", "aws:kms",
                    "--sse-kms-key-id", key)
    assert team.returncode == 0, team.stderr
    other = _aws_cli(sandbox, tmp_path, "s3", "cp", str(dag), f"s3://{bucket}/dags/other.py", "--sse", "aws:kms",
                     "--sse-kms-key-id", sandbox.key_arn())
    assert other.returncode != 0 and "AccessDenied" in other.stderr


# --- what moto already refuses as AWS does (no rule needed; the refusal is still proven) -------


def test_delete_of_a_non_empty_repository_needs_force(sandbox):
    """AWS: DeleteRepository of a repository with images fails with RepositoryNotEmptyException unless force."""
    ecr, name = sandbox.client("ecr"), unique("fidelity-repo")
    record_pushed_image(ecr, name, "v1")
    with pytest.raises(ClientError) as refused:
        ecr.delete_repository(repositoryName=name)
    assert refused.value.response["Error"]["Code"] == "RepositoryNotEmptyException"
    ecr.delete_repository(repositoryName=name, force=True)


def test_create_bucket_of_a_kept_bucket(sandbox):
    """AWS: CreateBucket of a bucket you own fails with 409 BucketAlreadyOwnedByYou outside us-east-1,
    and succeeds (200) in us-east-1."""
    name = unique("fidelity-kept")
    s3 = sandbox.client("s3")
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    with pytest.raises(ClientError) as refused:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    error = refused.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("BucketAlreadyOwnedByYou", 409)
    east, name = sandbox.client("s3", "us-east-1"), unique("fidelity-kept")
    east.create_bucket(Bucket=name)
    assert east.create_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_secret_created_again_after_forced_deletion(sandbox):
    """AWS: once deleted without recovery, the name is free again (the rule refuses only within the window)."""
    secrets, name = sandbox.client("secretsmanager"), unique("fidelity/secret")
    secrets.create_secret(Name=name, SecretString="x")
    secrets.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert secrets.create_secret(Name=name, SecretString="y")["Name"] == name


# --- the pieces ------------------------------------------------------------------------------

KEY = "s3:x-amz-server-side-encryption-aws-kms-key-id"


@pytest.mark.parametrize("operator,values,context,holds", [
    ("StringNotEquals", "k1", {}, True),  # negated operator, key missing: true
    ("StringNotEqualsIfExists", "k1", {}, True),  # IfExists, key missing: true
    ("StringEquals", "k1", {}, False),  # key missing: false
    ("StringEqualsIfExists", "k1", {}, True),
    ("StringNotEquals", "k1", {KEY: "k1"}, False),
    ("StringNotEquals", ["k1", "k2"], {KEY: "k2"}, False),  # matches none of the values
    ("StringEquals", ["k1", "k2"], {KEY: "k2"}, True),  # any of the values
    ("StringLike", "arn:aws:kms:*:key/*", {KEY: "arn:aws:kms:eu-west-1:1:key/a"}, True),
    ("StringNotLike", "arn:aws:kms:*", {KEY: "alias/x"}, True),
    ("Null", "false", {}, False),
    ("Null", "false", {KEY: "k1"}, True),
    ("Null", "true", {}, True),
    ("Bool", "false", {KEY: "true"}, False),
    ("ArnEquals", "arn:aws:kms:eu-west-1:1:key/a", {KEY: "arn:aws:kms:eu-west-1:1:key/a"}, True),
    ("ArnLike", "arn:aws:kms:*:1:key/*", {KEY: "arn:aws:kms:eu-west-1:1:key/a"}, True),
    ("ArnLike", "arn:aws:kms:*:2:key/*", {KEY: "arn:aws:kms:eu-west-1:1:key/a"}, False),
    ("ArnNotEquals", "arn:aws:kms:eu-west-1:1:key/a", {KEY: "arn:aws:kms:eu-west-1:1:key/b"}, True),
    ("ArnNotLike", "arn:aws:kms:*", {}, True),
])
def test_condition_operators_follow_the_iam_user_guide(operator, values, context, holds):
    """IAM User Guide, condition operators: missing keys, IfExists, Null, negation over a list of values, wildcards."""
    assert condition_holds(operator, KEY, values, context) is holds


def test_an_unknown_operator_is_not_guessed():
    """An operator the sandbox does not model raises instead of being treated as true or false."""
    with pytest.raises(NotModelled):
        condition_holds("DateGreaterThan", KEY, "2020-01-01T00:00:00Z", {KEY: "x"})


@pytest.mark.parametrize("instance_type,local", [
    ("ml.g4dn.xlarge", True), ("ml.g5.2xlarge", True), ("ml.m5d.large", True), ("ml.c6gd.large", True),
    ("ml.p3dn.24xlarge", True), ("ml.p4d.24xlarge", True), ("ml.g4ad.xlarge", True),
    ("ml.m5.xlarge", False), ("ml.c5.large", False), ("ml.t2.medium", False), ("ml.inf1.xlarge", False),
    ("ml.p3.2xlarge", False), ("ml.m6i.large", False),
])
def test_local_storage_instance_types(instance_type, local):
    """EC2's instance store list: families with a `d` attribute, and g5/g6/p5/trn1, have local NVMe storage."""
    assert has_local_storage(instance_type) is local


def test_an_extra_operation_is_served_instead_of_moto(sandbox):
    """An operation registered with @operation answers in place of moto (the hook for APIs moto lacks)."""
    key = ("sagemaker", "DescribeEndpoint")
    before = registry.OPERATIONS.get(key)
    registry.OPERATIONS[key] = lambda request: registry.Reply({"EndpointName": request.params["EndpointName"],
                                                                "EndpointArn": "arn:x", "EndpointStatus": "InService",
                                                                "CreationTime": 0, "LastModifiedTime": 0})
    try:
        answer = sandbox.client("sagemaker").describe_endpoint(EndpointName="served-by-the-hook")
    finally:
        if before is None:
            registry.OPERATIONS.pop(key)
        else:
            registry.OPERATIONS[key] = before
    assert (answer["EndpointName"], answer["EndpointStatus"]) == ("served-by-the-hook", "InService")
