"""End to end against a real AWS account: create a small team, check it works, destroy it.

Opt-in (`make test-aws`, marker `real_aws`): it needs the Pulumi CLI and its aws plugin, a Docker
engine (to build and push the default inference image), AWS credentials allowed to create team
environments, and `ENVCTL_TEST_AWS_ACCOUNT=<account id>` naming the account the credentials reach, so
that nobody is billed by accident. Otherwise it is skipped with the reason.

It costs roughly $0.10–0.30 and 25–45 minutes per run (docs/operations.md, "The real-AWS test").
Whatever happens, the team is destroyed and its kept data deleted at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.real_aws

CREATE_TIMEOUT_S = 60 * 60
BOOTSTRAP_TIMEOUT_S = 30 * 60
ENDPOINT_TIMEOUT_S = 30 * 60


def _missing() -> str | None:
    """Why this machine cannot run the test, or None."""
    if shutil.which("pulumi") is None:
        return "the Pulumi CLI is not on PATH (https://www.pulumi.com/docs/install/)"
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        account = boto3.client("sts", region_name=_region()).get_caller_identity()["Account"]
    except (BotoCoreError, ClientError) as exc:
        return f"no usable AWS credentials: {exc}"
    if os.environ.get("ENVCTL_TEST_AWS_ACCOUNT") != account:
        return f"set ENVCTL_TEST_AWS_ACCOUNT={account} to confirm this account may be billed (about $0.30 a run)"
    from provisioner.errors import MissingTool
    from provisioner.local_images import connect_docker

    try:
        connect_docker()
    except MissingTool as exc:
        return f"{exc.message} (the default inference image is built and pushed locally)"
    return None


def _region() -> str:
    return os.environ.get("ENVCTL_TEST_AWS_REGION") or os.environ.get("AWS_REGION") or os.environ.get(
        "AWS_DEFAULT_REGION") or "us-east-1"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project with one small request: t3.medium host, no notebook, serverless inference."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("real-aws")
    team = f"e2e-{secrets.token_hex(3)}"
    (root / "stacks").mkdir()
    (root / "stacks" / f"{team}.yaml").write_text(json.dumps({
        "apiVersion": "envctl/v1", "team": team, "owners": [os.environ.get("ENVCTL_TEST_OWNER", "envctl-e2e@example.com")],
        "cost_center": "CC-E2E", "environment": "dev", "budget_usd_month": 50,
        "airflow": {"instance_type": "t3.medium", "volume_gb": 20},
        "sagemaker": {"notebook": {"enabled": False},
                      "inference": {"enabled": True, "image": "default",
                                    "serverless": {"memory_mb": 2048, "max_concurrency": 1}}},
    }, indent=1))
    (root / "envctl.toml").write_text(f'target = "aws"\nregion = "{_region()}"\nsecrets_provider = "passphrase"\n')
    env = {**os.environ, "ENVCTL_TARGET": "aws", "PULUMI_CONFIG_PASSPHRASE": secrets.token_urlsafe(24)}
    env.pop("ENVCTL_CONFIG", None)
    return root, team, env


def envctl(project, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    root, _, env = project
    done = subprocess.run([sys.executable, "-m", "provisioner.cli.main", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"envctl {' '.join(args)} (in {root}) exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done


def test_create_bootstrap_invoke_destroy_leaves_only_the_kept_data(project):
    """The whole day-one path on AWS: create, host reports success, endpoint answers the pushed default
    image, destroy removes everything but the team's bucket and KMS key."""
    import boto3

    root, team, _ = project
    region = _region()
    outputs: dict = {}
    try:
        envctl(project, "doctor", "--target", "aws")
        envctl(project, "create", team, timeout=CREATE_TIMEOUT_S)
        outputs = json.loads(envctl(project, "outputs", team, "--json").stdout)
        outputs = outputs.get("outputs", outputs)

        result = _wait_for_bootstrap(boto3.client("ssm", region_name=region), outputs["bootstrap_parameter"])
        assert result["status"] == "succeeded", result

        envctl(project, "inference", "push", team, timeout=CREATE_TIMEOUT_S)
        envctl(project, "update", team, timeout=CREATE_TIMEOUT_S)
        sagemaker = boto3.client("sagemaker", region_name=region)
        sagemaker.get_waiter("endpoint_in_service").wait(
            EndpointName=outputs["endpoint_name"], WaiterConfig={"Delay": 30, "MaxAttempts": ENDPOINT_TIMEOUT_S // 30})
        answer = boto3.client("sagemaker-runtime", region_name=region).invoke_endpoint(
            EndpointName=outputs["endpoint_name"], ContentType="application/json",
            Body=json.dumps({"instances": [[1.0, 2.0, 3.0]]}))
        assert len(json.loads(answer["Body"].read())["predictions"]) == 1

        envctl(project, "destroy", team, "--yes", timeout=CREATE_TIMEOUT_S)
        assert _left_behind(region, team, outputs) == []
        s3, kms = boto3.client("s3", region_name=region), boto3.client("kms", region_name=region)
        s3.head_bucket(Bucket=outputs["bucket_name"])  # kept
        assert kms.describe_key(KeyId=outputs["kms_key_arn"])["KeyMetadata"]["KeyState"] == "Enabled"  # kept
    finally:
        _clean_up(project, region, outputs)


def _wait_for_bootstrap(ssm, name: str) -> dict:
    """The host's result (`report_result` in userdata/01-strict.sh.j2): succeeded or failed, as JSON."""
    deadline = time.monotonic() + BOOTSTRAP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            value = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
        except (ssm.exceptions.ParameterNotFound, json.JSONDecodeError):
            value = {}
        if value.get("status") in ("succeeded", "failed"):
            return value
        time.sleep(20)
    raise AssertionError(f"the host wrote no result to {name} in {BOOTSTRAP_TIMEOUT_S // 60} minutes")


def _left_behind(region: str, team: str, outputs: dict) -> list[str]:
    """Resources of the team that still exist (terminated and deleted ones do not count)."""
    import boto3

    ec2 = boto3.client("ec2", region_name=region)
    tag = [{"Name": "tag:envctl:team", "Values": [team]}]
    left = [f"vpc {v['VpcId']}" for v in ec2.describe_vpcs(Filters=tag)["Vpcs"]]
    left += [f"instance {i['InstanceId']}" for r in ec2.describe_instances(Filters=tag)["Reservations"]
             for i in r["Instances"] if i["State"]["Name"] not in ("terminated", "shutting-down")]
    left += [f"NAT gateway {n['NatGatewayId']}" for n in ec2.describe_nat_gateways(Filters=tag)["NatGateways"]
             if n["State"] not in ("deleted", "deleting")]
    left += [f"Elastic IP {a['AllocationId']}" for a in ec2.describe_addresses(Filters=tag)["Addresses"]]
    left += [f"volume {v['VolumeId']}" for v in ec2.describe_volumes(Filters=tag)["Volumes"]]
    sagemaker = boto3.client("sagemaker", region_name=region)
    left += [f"endpoint {e['EndpointName']}" for e in sagemaker.list_endpoints(NameContains=team)["Endpoints"]]
    repository = outputs.get("ecr_repository_url", "").rsplit("/", 1)[-1]
    pages = boto3.client("ecr", region_name=region).get_paginator("describe_repositories").paginate()
    left += [f"ECR repository {r['repositoryName']}" for page in pages for r in page["repositories"]
             if r["repositoryName"] == repository]
    secrets_manager = boto3.client("secretsmanager", region_name=region)
    left += [f"secret {s['Name']}" for s in secrets_manager.list_secrets(
        Filters=[{"Key": "tag-key", "Values": ["envctl:team"]}, {"Key": "tag-value", "Values": [team]}])["SecretList"]]
    return left


def _clean_up(project, region: str, outputs: dict) -> None:
    """Destroy whatever is left and delete the kept data, so a failed run costs nothing further."""
    import boto3

    root, team, env = project
    subprocess.run([sys.executable, "-m", "provisioner.cli.main", "destroy", team, "--yes", "--delete-data"],
                   cwd=root, env=env, capture_output=True, text=True, timeout=CREATE_TIMEOUT_S)
    if outputs.get("bucket_name") and outputs.get("kms_key_arn"):
        from provisioner.engines.pulumi import _delete_bucket, _schedule_key_deletion

        s3 = boto3.client("s3", region_name=region)
        if outputs["bucket_name"] in {b["Name"] for b in s3.list_buckets()["Buckets"]}:  # not yet deleted above
            _delete_bucket(s3, outputs["bucket_name"])
        _schedule_key_deletion(boto3.client("kms", region_name=region), outputs["kms_key_arn"])
