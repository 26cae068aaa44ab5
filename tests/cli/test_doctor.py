"""envctl doctor: its checks against a moto server standing in for AWS, and its command line."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from provisioner import doctor
from provisioner.cli.main import app
from provisioner.settings import Settings
from tests.conftest import ROOT, SANDBOX_CREDENTIALS, free_port

REGION = "eu-west-1"
STATE_BUCKET = "acme-envctl-state"


@pytest.fixture(scope="module")
def moto():
    """A moto server of this module's own (the quota test fills a region's VPCs)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def client(moto):
    from botocore.config import Config

    config = Config(retries={"max_attempts": 1})  # moto answers 500 to what it lacks: no retry backoff

    def make(service, region):
        return boto3.client(service, region_name=region, endpoint_url=moto, config=config, **SANDBOX_CREDENTIALS)

    return make


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks")
    shutil.copy(ROOT / "envctl.toml", tmp_path / "envctl.toml")
    monkeypatch.chdir(tmp_path)
    for name in ("ENVCTL_CONFIG", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_ACCESS_TOKEN", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "doctor")
    return tmp_path


def fake_cli(tmp_path: Path, version: str, plugins: list[dict] | None = None) -> str:
    """A `pulumi` executable that answers `version` and `plugin ls --json` as the real CLI does."""
    bin_dir = tmp_path / f"bin-{version}"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    listed = json.dumps(plugins or [])
    script.write_text(f"#!/bin/sh\ncase \"$1\" in\n  version) echo v{version} ;;\n"
                      f"  plugin) echo '{listed}' ;;\n  *) exit 2 ;;\nesac\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def by_name(checks):
    return {check.name: check for check in checks}


def aws_settings(project: Path, **overrides) -> Settings:
    values = dict(target="aws", region=REGION, state_dir=project / ".envctl", stacks_dir=project / "stacks", root=project)
    return Settings(**{**values, **overrides})


# ---------------------------------------------------------------------- the AWS checks against moto


def test_aws_checks_pass_against_the_sandbox_with_an_s3_backend_and_kms_key(project, client, tmp_path):
    """Credentials, zones, quotas, backend (probe written and deleted) and the KMS key, all read from moto."""
    s3 = client("s3", REGION)
    s3.create_bucket(Bucket=STATE_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    kms = client("kms", REGION)
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/envctl-state", TargetKeyId=key["KeyId"])
    settings = aws_settings(project, backend_url=f"s3://{STATE_BUCKET}?region={REGION}",
                            secrets_provider=f"awskms://alias/envctl-state?region={REGION}")
    sdk = metadata.version("pulumi")
    pulumi = fake_cli(tmp_path, sdk, [{"name": "aws", "kind": "resource", "version": metadata.version("pulumi_aws")}])

    checks = by_name(doctor.run_checks(settings, "aws", client=client, pulumi=pulumi))

    assert checks["pulumi-cli"].status == "ok" and "no stack tags (self-managed backend)" in checks["pulumi-cli"].detail
    assert checks["pulumi-aws-plugin"].status == "ok"
    assert checks["aws-credentials"].status == "ok" and "123456789012" in checks["aws-credentials"].detail
    zones = checks[f"availability-zones {REGION}"]
    assert zones.status == "ok" and "m6i.large: eu-west-1a, eu-west-1b, eu-west-1c" in zones.detail
    quotas = checks[f"quotas {REGION}"]
    assert "more team environment(s) fit" in quotas.detail and "VPCs per Region" in quotas.detail
    assert quotas.status in ("ok", "warn")  # moto lacks the EIP quota and SageMaker's list: warn, not crash
    assert checks["cost-allocation-tag"].status == "warn" and "envctl:team" in checks["cost-allocation-tag"].fix
    assert checks["backend"].status == "ok"
    assert s3.list_objects_v2(Bucket=STATE_BUCKET).get("KeyCount", 0) == 0  # the probe is gone
    assert checks["secrets-provider"].status == "ok" and key["Arn"] in checks["secrets-provider"].detail
    assert not doctor.failed(checks.values())


def test_quota_check_fails_when_no_further_team_fits(project, client):
    """AWS's default is 5 VPCs per region; a region already holding 5 takes no further team (moto applies 5)."""
    region = "ap-southeast-2"
    ec2 = client("ec2", region)
    while len(ec2.describe_vpcs()["Vpcs"]) < 5:
        ec2.create_vpc(CidrBlock=f"10.{len(ec2.describe_vpcs()['Vpcs'])}.0.0/16")

    check = doctor.check_quotas(client, region, [])

    assert check.status == "fail" and "0 more team environment(s) fit" in check.detail
    assert "VPCs per Region 5/5" in check.detail and "Service Quotas" in check.fix


def test_zone_check_fails_for_an_instance_type_no_zone_of_the_region_offers(project, client, resolved_spec):
    """DescribeInstanceTypeOfferings decides: moto's me-central-1 offers m6i but no t3 type."""
    region = "me-central-1"
    offers = client("ec2", region).describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["t3.large", "m6i.large"]}])
    assert {o["InstanceType"] for o in offers["InstanceTypeOfferings"]} == {"m6i.large"}
    small = resolved_spec(region=region, airflow={"instance_type": "t3.large"})
    large = resolved_spec(region=region, airflow={"instance_type": "m6i.large"})

    refused = doctor.check_zones(client, region, [small, large])
    accepted = doctor.check_zones(client, region, [large])

    assert refused.status == "fail" and "t3.large" in refused.detail and "instance_type" in refused.fix
    assert accepted.status == "ok"


def test_missing_state_bucket_and_kms_key_fail_with_their_fix(project, client):
    """A backend that cannot be written and a key that does not exist are failures, each naming what to do."""
    settings = aws_settings(project, backend_url="s3://no-such-envctl-state",
                            secrets_provider="awskms://alias/no-such-key?region=eu-west-1")

    backend = doctor.check_backend(settings, client)
    secrets = doctor.check_secrets_provider(settings, client)

    assert backend.status == "fail" and "no-such-envctl-state" in backend.detail and "s3:PutObject" in backend.fix
    assert secrets.status == "fail" and "alias/no-such-key" in secrets.detail and "kms:DescribeKey" in secrets.fix


@pytest.mark.parametrize(("version", "status"), [("3.100.0", "fail"), ("4.0.0", "fail"), ("3.200.0", "warn")])
def test_pulumi_cli_version_is_checked_against_the_engine_and_the_sdk(project, tmp_path, version, status):
    """Too old or another major: fail with the install hint; usable but not the SDK's version: warn."""
    check = doctor.check_pulumi_cli(fake_cli(tmp_path, version), aws_settings(project))

    assert check.status == status and version in check.detail
    assert metadata.version("pulumi") in check.fix


def test_missing_aws_plugin_is_a_warning_with_the_install_command(tmp_path):
    """The CLI would download the plugin on first use (needs github.com): warn and show the install line."""
    check = doctor.check_aws_plugin(fake_cli(tmp_path, "3.272.0", [{"name": "aws", "kind": "resource", "version": "6.0.0"}]))

    assert check.status == "warn" and "6.0.0" in check.detail
    assert check.fix == f"pulumi plugin install resource aws {metadata.version('pulumi_aws')}"


def test_file_backend_on_a_ci_runner_fails(project, client, monkeypatch):
    """A GitHub runner's disk goes away with the job: a file:// state backend there loses every stack."""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")

    check = doctor.check_backend(aws_settings(project), client)

    assert check.status == "fail" and "ENVCTL_BACKEND_URL" in check.fix


def test_passphrase_provider_without_a_passphrase_fails(project, client, monkeypatch):
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")

    check = doctor.check_secrets_provider(aws_settings(project), client)

    assert check.status == "fail" and "PULUMI_CONFIG_PASSPHRASE" in check.fix


# ---------------------------------------------------------------------- the command line


def test_doctor_aws_without_pulumi_exits_1_and_names_it(project, tmp_path, monkeypatch):
    """No pulumi on PATH, no credentials: exit 1, the Pulumi CLI named with its fix, no traceback."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    result = CliRunner().invoke(app, ["doctor", "--target", "aws"])

    assert result.exit_code == 1, result.output
    assert "✗ pulumi-cli: the Pulumi CLI is not on PATH" in result.stdout
    assert "https://www.pulumi.com/docs/install/" in result.stdout
    assert "Traceback" not in result.output


def test_doctor_aws_json_against_the_sandbox_endpoint(project, moto, tmp_path, monkeypatch):
    """--json: every check with name, status, detail and fix; the AWS checks reach ENVCTL_ENDPOINT_URL."""
    pulumi = fake_cli(tmp_path, metadata.version("pulumi"))
    monkeypatch.setenv("PATH", f"{Path(pulumi).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ENVCTL_ENDPOINT_URL", moto)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)

    result = CliRunner().invoke(app, ["doctor", "--target", "aws", "--json"])

    document = json.loads(result.stdout)
    statuses = {check["name"]: check["status"] for check in document["checks"]}
    assert all(set(check) == {"name", "status", "detail", "fix"} for check in document["checks"])
    assert statuses["aws-credentials"] == "ok" and statuses[f"availability-zones {REGION}"] == "ok"
    assert document["ok"] is (result.exit_code == 0) and result.exit_code in (0, 1)


def test_doctor_sandbox_json_lists_its_checks(project):
    """The sandbox target: requests, moto server, Docker, state dir; rc 0 unless one fails."""
    result = CliRunner().invoke(app, ["doctor", "--target", "sandbox", "--json"])

    document = json.loads(result.stdout)
    names = [check["name"] for check in document["checks"]]
    assert names == ["requests", "moto-server", "docker", "state-dir"]
    assert all(check["status"] in ("ok", "warn", "fail") for check in document["checks"])
    assert result.exit_code == (1 if any(c["status"] == "fail" for c in document["checks"]) else 0)


def test_doctor_with_an_unknown_target_is_bad_input(project):
    result = CliRunner().invoke(app, ["doctor", "--target", "mars"])

    assert result.exit_code == 2 and "target" in result.stderr and "Traceback" not in result.output


def test_state_dir_that_cannot_be_written_fails(project, tmp_path):
    """A state dir under a regular file cannot be made, even by root: fail with the setting to change."""
    (tmp_path / "a-file").write_text("")

    check = doctor.sandbox_checks(aws_settings(project, target="sandbox", state_dir=tmp_path / "a-file" / "state"))[-1]

    assert check.name == "state-dir" and check.status == "fail" and "state_dir" in check.fix


def test_doctor_imports_neither_pulumi_aws_nor_moto(project):
    """The sandbox doctor stays light: no pulumi_aws, no moto import (only find_spec)."""
    code = ("import sys; from typer.testing import CliRunner; from provisioner.cli.main import app; "
            "CliRunner().invoke(app, ['doctor', '--target', 'sandbox']); "
            "print(sorted(m for m in ('pulumi_aws', 'moto') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr
