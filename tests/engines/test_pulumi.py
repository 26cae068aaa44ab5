"""PulumiEngine over the real Automation API, with the Pulumi CLI replaced by FakePulumi.

The last test runs the real CLI against a moto server; it is skipped where the CLI is missing.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import boto3
import pytest
import yaml

from provisioner.engines.pulumi import PulumiEngine
from provisioner.errors import EnvctlError, InvalidInput, LockConflict, MissingTool, NotFound
from provisioner.settings import Settings
from provisioner.spec import ResolvedSpec, TeamSpec, load_team

from tests.conftest import ROOT
from tests.engines.fake_pulumi import (
    CLI_RULES,
    DIY_TAGS_STDERR,
    LOCK_CONFLICT_STDERR,
    PASSPHRASE_MISSING_STDERR,
    FakePulumi,
    FakeResource,
)

TEAM = "fraud"
BUCKET = "envctl-fraud-123456789012-eu-west-1"


def noop_program(spec, options):
    return lambda: None


@pytest.fixture(autouse=True)
def pulumi_environment(monkeypatch):
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "correct horse battery staple")
    for name in ("PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_BACKEND_URL", "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def aws_account(monkeypatch):
    """AWS for the engine's own calls (before up and preview it looks for data a destroy kept): moto, in process."""
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(target="aws", region="eu-west-1", state_dir=tmp_path / ".envctl", root=tmp_path)


@pytest.fixture
def spec() -> ResolvedSpec:
    team = TeamSpec.model_validate({
        "apiVersion": "envctl/v1", "team": TEAM, "owners": ["ana.lopez@example.com"],
        "cost_center": "CC-1042", "budget_usd_month": 500,
    })
    return ResolvedSpec(spec=team, region="eu-west-1", cidr="10.20.0.0/20")


@pytest.fixture
def engine(settings, fake) -> PulumiEngine:
    return PulumiEngine(settings, fake, program_factory=noop_program)


def work_dir(settings: Settings) -> Path:
    return settings.state_dir / "pulumi" / "work" / TEAM


def existing_stack(fake: FakePulumi, **outputs) -> None:
    fake.add_stack(
        TEAM,
        resources=[FakeResource("aws:s3/bucketV2:BucketV2", "data", id=BUCKET),
                   FakeResource("aws:ec2/instance:Instance", "airflow-host", id="i-0abc")],
        outputs={key: (value, key == "password") for key, value in outputs.items()},
    )


# ---------------------------------------------------------------------- up, preview, refresh


def test_up_creates_the_team_stack_with_region_backend_and_secrets_provider(engine, fake, settings, spec):
    fake.plan("up", [
        FakeResource("pulumi:pulumi:Stack", f"envctl-{TEAM}"),
        FakeResource("pulumi:providers:aws", "default_7_51_1"),
        FakeResource("aws:s3/bucketV2:BucketV2", "data", id=BUCKET),
        FakeResource("aws:ec2/instance:Instance", "airflow-host", id="i-0abc"),
        FakeResource("aws:iam/role:Role", "host", op="create-replacement"),
        FakeResource("aws:iam/role:Role", "host", op="replace"),
        FakeResource("aws:iam/role:Role", "host", op="delete-replaced"),
        FakeResource("aws:ec2/vpc:Vpc", "vpc", op="same"),
    ])
    fake.outputs_after_up = {"bucket_name": (BUCKET, False), "password": ("hunter2", True)}
    progress: list[str] = []

    result = engine.up(spec, progress=progress.append)

    lines = fake.lines()
    assert lines[0] == f"stack select --stack {TEAM}"
    assert lines[1] == f"stack init {TEAM} --secrets-provider passphrase"
    assert f"config set-all --stack {TEAM} --plaintext aws:region=eu-west-1" in lines
    assert not fake.calls_to("stack tag")  # a file:// backend: no stack tags (see the tag tests)
    up = fake.calls_to("up")[0]
    assert up.args[:3] == ["up", "--yes", "--skip-preview"]
    assert up.option("--exec-kind") == "auto.inline" and up.option("--stack") == TEAM
    assert up.option("--event-log") and any(arg.startswith("--client=127.0.0.1:") for arg in up.args)

    assert result.operation == "up" and result.target == "aws"
    assert result.summary == {"create": 2, "update": 0, "replace": 1, "delete": 0, "same": 1}
    by_name = {c.name: c for c in result.changes}
    assert set(by_name) == {"data", "airflow-host", "host", "vpc"}
    assert by_name["data"].urn == f"urn:pulumi:{TEAM}::envctl::aws:s3/bucketV2:BucketV2::data"
    assert by_name["data"].physical_id == BUCKET
    assert result.outputs == {"bucket_name": BUCKET, "password": "[secret]"}
    assert "creating aws:ec2/instance:Instance airflow-host" in progress
    assert progress.count("replacing aws:iam/role:Role host") == 1
    assert "Updating (fake):" in progress


def test_up_writes_a_persistent_work_dir_with_backend_and_salt(engine, fake, settings, spec):
    engine.up(spec)

    project = yaml.safe_load((work_dir(settings) / "Pulumi.yaml").read_text())
    assert project["name"] == "envctl" and project["runtime"] == "python"
    assert project["backend"]["url"] == f"file://{(settings.state_dir / 'pulumi').resolve()}"
    assert (settings.state_dir / "pulumi").is_dir()
    stack_file = yaml.safe_load((work_dir(settings) / f"Pulumi.{TEAM}.yaml").read_text())
    assert stack_file["encryptionsalt"] and stack_file["config"] == {"aws:region": "eu-west-1"}
    assert all(call.cwd == str(work_dir(settings)) for call in fake.calls)


def test_second_up_selects_the_existing_stack_and_keeps_its_salt(engine, fake, settings, spec):
    engine.up(spec)
    salt = (work_dir(settings) / f"Pulumi.{TEAM}.yaml").read_text()
    fake.calls.clear()

    engine.up(spec)

    assert not fake.calls_to("stack init")
    assert yaml.safe_load(salt)["encryptionsalt"] in (work_dir(settings) / f"Pulumi.{TEAM}.yaml").read_text()


def test_preview_reports_planned_changes_and_changes_nothing(engine, fake, spec):
    fake.plan("preview", [FakeResource("aws:s3/bucketV2:BucketV2", "data"),
                          FakeResource("aws:ec2/instance:Instance", "airflow-host", op="update")])
    progress: list[str] = []

    result = engine.preview(spec, progress=progress.append)

    assert result.summary["create"] == 1 and result.summary["update"] == 1
    assert fake.calls_to("preview") and fake.stacks[TEAM].resources == []
    assert "updating aws:ec2/instance:Instance airflow-host" in progress


def test_preview_without_summary_is_an_error(engine, fake, spec):
    fake.omit_summary = True

    with pytest.raises(EnvctlError) as caught:
        engine.preview(spec)

    assert type(caught.value) is EnvctlError
    assert "preview" in caught.value.message and TEAM in caught.value.message


def test_refresh_maps_drift_to_update_and_delete(engine, fake, spec):
    existing_stack(fake, bucket_name=BUCKET)
    fake.plan("refresh", [
        FakeResource("aws:s3/bucketV2:BucketV2", "data", op="refresh", old_outputs={"a": 1}, new_outputs={"a": 1}),
        FakeResource("aws:ec2/instance:Instance", "airflow-host", op="refresh", old_outputs={"t": "m6i.large"},
                     new_outputs={"t": "m6i.xlarge"}),
        FakeResource("aws:ec2/vpc:Vpc", "vpc", op="refresh", old_outputs={"c": 1}, new_outputs=None),
    ])

    result = engine.refresh(spec)

    assert {c.name: c.action for c in result.changes} == {"data": "same", "airflow-host": "update", "vpc": "delete"}
    assert fake.calls_to("refresh")[0].args[:3] == ["refresh", "--skip-preview", "--yes"]
    assert result.outputs == {"bucket_name": BUCKET}


# ---------------------------------------------------------------------- destroy


def test_destroy_reads_outputs_first_then_removes_the_stack(engine, fake):
    existing_stack(fake, bucket_name=BUCKET, kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/k-1")

    result = engine.destroy(TEAM)

    lines = fake.lines()
    first_output = next(i for i, line in enumerate(lines) if line.startswith("stack output"))
    destroy = next(i for i, line in enumerate(lines) if line.startswith("destroy"))
    assert first_output < destroy
    assert lines[-1] == f"stack rm --yes {TEAM}"
    assert TEAM not in fake.stacks
    assert result.summary["delete"] == 2
    assert any(BUCKET in w and "--delete-data" in w for w in result.warnings)


def test_failed_destroy_keeps_the_stack(engine, fake):
    existing_stack(fake, bucket_name=BUCKET)
    fake.fail("destroy", "error: deleting EC2 Instance (i-0abc): operation error EC2: TerminateInstances, 403")

    with pytest.raises(EnvctlError, match="TerminateInstances"):
        engine.destroy(TEAM)

    assert not fake.calls_to("stack rm")
    assert TEAM in fake.stacks


def test_destroy_with_delete_data_empties_and_deletes_bucket_and_schedules_key(engine, fake, monkeypatch):
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        for body in (b"v1", b"v2"):
            s3.put_object(Bucket=BUCKET, Key="dags/etl.py", Body=body)
        s3.delete_object(Bucket=BUCKET, Key="dags/etl.py")  # leaves a delete marker
        kms = boto3.client("kms", region_name="eu-west-1")
        key_arn = kms.create_key()["KeyMetadata"]["Arn"]
        existing_stack(fake, bucket_name=BUCKET, kms_key_arn=key_arn)

        result = engine.destroy(TEAM, delete_data=True)

        assert BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert kms.describe_key(KeyId=key_arn)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert any("3 object versions" in w for w in result.warnings)


def test_run_on_host_sends_the_script_to_the_stack_instance_over_ssm(engine, fake, monkeypatch):
    """The instance and region come from the stack's outputs; the script goes out as SSM Run Command."""
    import shlex

    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("provisioner.engines.host_commands.POLL_S", 0)
    with mock_aws():
        existing_stack(fake, instance_id="i-0abc1234567890def", region="eu-central-1")
        result = engine.run_on_host(TEAM, "echo restored\n", timeout_s=900)
        [command] = boto3.client("ssm", region_name="eu-central-1").list_commands()["Commands"]
    assert (result.instance_id, result.exit_code) == ("i-0abc1234567890def", 0)
    assert command["InstanceIds"] == ["i-0abc1234567890def"] and command["DocumentName"] == "AWS-RunShellScript"
    assert shlex.split(command["Parameters"]["commands"][0]) == ["bash", "-c", "echo restored\n"]


# ---------------------------------------------------------------------- outputs, list, status


def test_outputs_come_from_stack_output_through_the_sdk(engine, fake, settings):
    existing_stack(fake, bucket_name=BUCKET, password="hunter2")

    assert engine.outputs(TEAM) == {"bucket_name": BUCKET, "password": "[secret]"}
    assert f"stack output --json --show-secrets --stack {TEAM}" in fake.lines()
    assert not fake.calls_to("stack init")
    assert not list(settings.state_dir.rglob("*.json"))  # nothing read from (or written as) state files


def test_list_stacks_and_status(engine, fake, spec):
    engine.up(spec)
    fake.add_stack("treasury")

    stacks = {info.team: info for info in engine.list_stacks()}
    status = engine.status(TEAM).to_json()

    assert set(stacks) == {TEAM, "treasury"}
    assert stacks[TEAM].target == "aws" and stacks[TEAM].last_updated
    assert status["team"] == TEAM and status["last_operation"] == "update" and status["last_result"] == "succeeded"
    assert status["backend"].startswith("file://") and status["outputs"] == {}


# ---------------------------------------------------------------------- errors


def test_missing_cli_says_what_to_install_and_points_to_sandbox(settings, spec, tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    with pytest.raises(MissingTool) as caught:
        PulumiEngine(settings, program_factory=noop_program).up(spec)

    message = caught.value.message
    assert caught.value.exit_code == 1
    assert "Pulumi CLI is not installed" in message and "https://www.pulumi.com/docs/install/" in message
    assert "--target sandbox" in message and "\n" not in message


def test_too_old_cli_on_path_is_a_clear_error(settings, spec, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text("#!/bin/sh\necho v3.100.0\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    with pytest.raises(MissingTool) as caught:
        PulumiEngine(settings, program_factory=noop_program).up(spec)

    assert "3.100.0" in caught.value.message and "3.181.0" in caught.value.message
    assert "--target sandbox" in caught.value.message


def test_too_old_injected_cli_is_refused_before_running_anything(settings, spec):
    old = FakePulumi(version="3.150.0")

    with pytest.raises(MissingTool, match="3.181.0"):
        PulumiEngine(settings, old, program_factory=noop_program).up(spec)

    assert old.calls == []


@pytest.mark.parametrize("stderr", [
    LOCK_CONFLICT_STDERR,
    "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end "
    "or delete the lock file with `pulumi cancel`.",
])
def test_locked_stack_is_a_lock_conflict(engine, fake, spec, stderr):
    fake.fail("up", stderr)

    with pytest.raises(LockConflict) as caught:
        engine.up(spec)

    assert caught.value.exit_code == 3
    assert f"team {TEAM}'s stack" in caught.value.message and "pulumi cancel" in caught.value.message


def test_missing_stack_is_not_found(engine, fake, settings):
    with pytest.raises(NotFound) as caught:
        engine.outputs("ghost")

    assert caught.value.message == f"team ghost has no stack on {settings.effective_backend_url}"


def test_generic_failure_shows_the_last_useful_stderr_lines(engine, fake, spec):
    stderr = "\n".join(
        ["\x1b[31merror:\x1b[0m step one failed", "", "Updating (fraud):", "View Live: https://app/x"]
        + [f"detail {n}" for n in range(1, 8)]
        + ["", "error: update failed", "   "]
    )
    fake.fail("up", stderr)

    with pytest.raises(EnvctlError) as caught:
        engine.up(spec)

    message = caught.value.message
    assert type(caught.value) is EnvctlError and caught.value.exit_code == 1
    assert message == f"pulumi up failed for team {TEAM}: detail 3 | detail 4 | detail 5 | detail 6 | detail 7"
    assert "\x1b" not in message and "Traceback" not in message and "code:" not in message


def test_failure_prefers_the_engine_error_diagnostics(engine, fake, spec):
    fake.diagnostics = [("error", "creating S3 Bucket (envctl-fraud): AccessDenied\n"),
                        ("warning", "BucketV2 is deprecated")]
    fake.fail("up", "error: update failed", after_events=True)

    with pytest.raises(EnvctlError, match=r"failed for team fraud: creating S3 Bucket \(envctl-fraud\): AccessDenied$"):
        engine.up(spec)


def test_missing_aws_plugin_is_a_missing_tool(engine, fake, spec):
    fake.fail("up", "error: could not load plugin for aws provider 'default': no resource plugin 'pulumi-resource-aws' found")

    with pytest.raises(MissingTool, match="pulumi plugin install resource aws"):
        engine.up(spec)


# ---------------------------------------------------------------------- passphrase


def test_missing_passphrase_is_invalid_input(engine, fake, spec, monkeypatch):
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")

    with pytest.raises(InvalidInput) as caught:
        engine.up(spec)

    assert caught.value.exit_code == 2
    assert "PULUMI_CONFIG_PASSPHRASE" in caught.value.message and "PULUMI_CONFIG_PASSPHRASE_FILE" in caught.value.message
    assert "\n" not in caught.value.message and fake.calls == []


def test_passphrase_goes_through_env_vars_not_os_environ(engine, fake, spec, tmp_path, monkeypatch):
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text("from a file\n")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(passphrase_file))
    environ_before = dict(os.environ)

    engine.up(spec)

    assert dict(os.environ) == environ_before
    assert all(call.env["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(passphrase_file) for call in fake.calls)
    assert all(call.env["PULUMI_BACKEND_URL"].startswith("file://") for call in fake.calls)


def test_passphrase_from_the_environment_is_passed_to_every_command(engine, fake, spec):
    environ_before = dict(os.environ)

    engine.up(spec)

    assert dict(os.environ) == environ_before
    assert {call.env["PULUMI_CONFIG_PASSPHRASE"] for call in fake.calls} == {"correct horse battery staple"}


def test_kms_secrets_provider_needs_no_passphrase(settings, fake, spec, monkeypatch):
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    kms = Settings(target="aws", region="eu-west-1", state_dir=settings.state_dir,
                   backend_url="s3://acme-envctl-state", secrets_provider="awskms://alias/envctl-state")

    PulumiEngine(kms, fake, program_factory=noop_program).up(spec)

    assert fake.calls_to("stack init")[0].option("--secrets-provider") == "awskms://alias/envctl-state"
    assert "PULUMI_CONFIG_PASSPHRASE" not in fake.calls[0].env
    assert fake.calls[0].env["PULUMI_BACKEND_URL"] == "s3://acme-envctl-state"


# ---------------------------------------------------------------------- stack tags (defect 1)


def _run_fake(fake: FakePulumi, args: list[str], cwd: Path, env: dict[str, str]):
    from pulumi.automation import CommandError

    try:
        return fake.run(args, str(cwd), env)
    except CommandError as exc:
        return exc


@pytest.mark.parametrize("backend", ["file:///tmp/state", "s3://acme-envctl-state", "gs://acme", "azblob://acme",
                                     "postgres://db/envctl"])
def test_fake_cli_refuses_stack_tags_on_a_diy_backend_before_3_211(backend, tmp_path):
    """CLI rule: diy backends refused `stack tag set` ("stack tags not supported in diy mode") until
    pulumi/pulumi#19882 (3.211); the fake refuses them like the 3.200 CLI the workflows used to install."""
    fake = FakePulumi(version="3.200.0")
    fake.add_stack(TEAM)
    env = {"PULUMI_BACKEND_URL": backend}

    newer = FakePulumi(version="3.211.0")
    newer.add_stack(TEAM)
    tag = ["stack", "tag", "set", "envctl:team", TEAM, "--stack", TEAM]

    refused = _run_fake(fake, tag, tmp_path, env)
    accepted = _run_fake(newer, tag, tmp_path, env)

    assert DIY_TAGS_STDERR in str(refused) and fake.stacks[TEAM].tags == {}
    assert accepted.code == 0 and newer.stacks[TEAM].tags == {"envctl:team": TEAM}


@pytest.mark.parametrize("backend", ["", "s3://acme-envctl-state"])
def test_up_works_with_a_cli_that_refuses_stack_tags_on_self_managed_backends(settings, spec, backend, monkeypatch):
    """A 3.181–3.210 CLI on a file:// or s3:// backend: the engine sets no stack tags, so up succeeds."""
    fake = FakePulumi(version="3.181.0")
    diy = Settings(target="aws", region="eu-west-1", state_dir=settings.state_dir, backend_url=backend)

    result = PulumiEngine(diy, fake, program_factory=noop_program).up(spec)

    assert result.operation == "up" and fake.calls_to("up")
    assert not fake.calls_to("stack tag")


def test_pulumi_cloud_backend_gets_the_team_and_cost_center_stack_tags(settings, fake, spec):
    """On Pulumi Cloud (an https:// backend) stack tags are supported by every CLI: the engine sets them."""
    cloud = Settings(target="aws", region="eu-west-1", state_dir=settings.state_dir,
                     backend_url="https://api.pulumi.com")

    PulumiEngine(cloud, fake, program_factory=noop_program).up(spec)

    assert fake.stacks[TEAM].tags == {"envctl:team": TEAM, "envctl:cost-center": "CC-1042"}


@pytest.mark.parametrize("version", ["3.180.9", "4.0.0", "2.25.2"])
def test_unusable_injected_cli_is_refused_with_the_install_hint(settings, spec, version):
    """Too old (no --client for inline refresh/destroy) or another major: refused before any command."""
    cli = FakePulumi(version=version)

    with pytest.raises(MissingTool) as caught:
        PulumiEngine(settings, cli, program_factory=noop_program).up(spec)

    message = caught.value.message
    assert version in message and "3.181.0" in message and "https://www.pulumi.com/docs/install/" in message
    assert "\n" not in message and cli.calls == []


@pytest.mark.parametrize("version", ["3.100.0", "4.1.0"])
def test_envctl_refuses_an_unusable_cli_on_path_in_one_line_with_exit_1(tmp_path, monkeypatch, version):
    """Through the command line: one error line naming the version and the install hint, exit 1, no traceback."""
    from typer.testing import CliRunner

    from provisioner.cli.main import app

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(f"#!/bin/sh\necho v{version}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks")
    shutil.copy(ROOT / "envctl.toml", tmp_path / "envctl.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENVCTL_CONFIG", raising=False)

    result = CliRunner().invoke(app, ["preview", TEAM, "--target", "aws"])

    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1, result.output
    assert len(errors) == 1 and version in errors[0] and "https://www.pulumi.com/docs/install/" in errors[0]
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------- secrets provider on a fresh work dir (defect 10)


def test_fake_cli_rekeys_a_stack_from_a_fresh_work_dir_without_the_fallback(tmp_path):
    """CLI rule: without Pulumi.<stack>.yaml (and without PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER) the CLI
    builds a new passphrase manager: no passphrase → an error; with one → the update re-keys the state."""
    fake = FakePulumi()
    fake.add_stack(TEAM, secrets_provider="awskms://alias/envctl-state")
    (tmp_path / "Pulumi.yaml").write_text("name: envctl\nruntime: python\n")
    env = {"PULUMI_BACKEND_URL": "s3://acme-envctl-state"}
    up = ["up", "--yes", "--skip-preview", "--stack", TEAM]

    no_passphrase = _run_fake(fake, up, tmp_path, env)
    rekeyed = _run_fake(fake, up, tmp_path, {**env, "PULUMI_CONFIG_PASSPHRASE": "x"})

    assert PASSPHRASE_MISSING_STDERR in str(no_passphrase)
    assert rekeyed.code == 0 and fake.stacks[TEAM].rekeyed
    assert "secretsprovider" not in fake.stacks[TEAM].secrets


@pytest.mark.parametrize("provider", ["awskms://alias/envctl-state", "passphrase"])
def test_fresh_work_dir_keeps_the_secrets_provider_recorded_in_the_state(settings, fake, spec, provider, monkeypatch):
    """A CI runner: the stack exists, the work dir is new. The engine's env makes the CLI use (and write back)
    the state's secrets manager: no re-key, no passphrase needed for a KMS-keyed stack."""
    if provider != "passphrase":
        monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    fake.add_stack(TEAM, secrets_provider=provider)
    recorded = dict(fake.stacks[TEAM].secrets)
    fresh = Settings(target="aws", region="eu-west-1", state_dir=settings.state_dir,
                     backend_url="s3://acme-envctl-state", secrets_provider=provider)
    assert not (work_dir(settings) / f"Pulumi.{TEAM}.yaml").exists()

    PulumiEngine(fresh, fake, program_factory=noop_program).up(spec)

    assert not fake.stacks[TEAM].rekeyed and fake.stacks[TEAM].secrets == recorded
    stack_file = yaml.safe_load((work_dir(settings) / f"Pulumi.{TEAM}.yaml").read_text())
    assert {key: stack_file[key] for key in recorded} == recorded
    assert {call.env["PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER"] for call in fake.calls} == {"true"}


def test_a_passphrase_stack_run_without_its_passphrase_is_invalid_input(settings, fake, spec, monkeypatch):
    """envctl.toml says KMS, the state says passphrase: the CLI needs the passphrase; envctl says so, exit 2."""
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    fake.add_stack(TEAM, secrets_provider="passphrase")
    kms = Settings(target="aws", region="eu-west-1", state_dir=settings.state_dir,
                   backend_url="s3://acme-envctl-state", secrets_provider="awskms://alias/envctl-state")

    with pytest.raises(InvalidInput) as caught:
        PulumiEngine(kms, fake, program_factory=noop_program).up(spec)

    assert caught.value.exit_code == 2 and "PULUMI_CONFIG_PASSPHRASE" in caught.value.message
    assert TEAM in caught.value.message and "\n" not in caught.value.message


# ---------------------------------------------------------------------- the real CLI


@pytest.mark.pulumi_cli
@pytest.mark.skipif(shutil.which("pulumi") is None,
                    reason="the Pulumi CLI is not installed on this machine; the real-engine path runs where it is")
def test_real_cli_up_outputs_destroy_against_moto(tmp_path, monkeypatch):
    from moto.server import ThreadedMotoServer

    from provisioner.program import BuildOptions

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        settings = Settings(target="aws", region="us-east-1", state_dir=tmp_path / ".envctl", root=ROOT)
        spec = load_team(TEAM, ROOT / "stacks", default_region="us-east-1", pool="10.0.0.0/8", prefix=20, root=ROOT)
        engine = PulumiEngine(settings, build_options=BuildOptions(endpoint_url=endpoint))
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

        up = engine.up(spec)
        assert up.summary["create"] > 0
        bucket = up.outputs["bucket_name"]
        s3.head_bucket(Bucket=bucket)
        assert engine.outputs(TEAM) == up.outputs
        assert [info.team for info in engine.list_stacks()] == [TEAM]

        down = engine.destroy(TEAM, delete_data=True)
        assert down.summary["delete"] > 0
        assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert engine.list_stacks() == []
    finally:
        server.stop()


def test_every_rule_of_the_fake_cli_has_a_test_proving_the_refusal():
    """Meta-test: the fake CLI is never more lenient than the real one without a test saying so."""
    proofs = {
        "diy-stack-tags": test_fake_cli_refuses_stack_tags_on_a_diy_backend_before_3_211,
        "secrets-manager-of-a-fresh-work-dir": test_fake_cli_rekeys_a_stack_from_a_fresh_work_dir_without_the_fallback,
    }

    assert set(proofs) == set(CLI_RULES)
    assert all(proof.__doc__ and "CLI rule" in proof.__doc__ for proof in proofs.values())


# ---------------------------------------------------------------------- the workflows (item 8)


@pytest.mark.parametrize("workflow", ["plan.yml", "apply.yml", "drift.yml"])
def test_workflows_install_the_sdks_cli_version_and_keep_the_state_secrets_provider(workflow):
    """CI installs the CLI of the installed SDK's version (which the engine accepts), sets the fallback to the
    state's secrets manager for fresh runners, and runs the doctor before any preview or apply."""
    from importlib import metadata

    from semver import VersionInfo

    from provisioner.engines.pulumi import cli_supported

    document = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())
    def reaches_aws(job: dict) -> bool:  # plan.yml's offline job runs envctl too, with no way to AWS
        return "write" in (job.get("permissions") or document.get("permissions") or {}).get("id-token", "")

    jobs = [job for job in document["jobs"].values()
            if reaches_aws(job) and any("envctl " in s.get("run", "") for s in job["steps"])]
    assert jobs
    for job in jobs:  # apply.yml: the planner and each wave's team jobs; plan.yml: the online preview
        steps = job["steps"]
        pin = next(i for i, s in enumerate(steps) if s.get("id") == "pulumi")
        install = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("pulumi/actions"))
        doctor = next(i for i, s in enumerate(steps) if "envctl doctor --target aws" in s.get("run", ""))
        envctl = next(i for i, s in enumerate(steps) if "envctl " in s.get("run", "") and i != doctor)

        assert "version('pulumi')" in steps[pin]["run"] and pin < install < doctor < envctl
        assert steps[install]["with"]["pulumi-version"] == "${{ steps.pulumi.outputs.cli }}"
        assert {**document.get("env", {}), **job.get("env", {})}["PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER"] == "true"
    assert cli_supported(VersionInfo.parse(metadata.version("pulumi")))


# --- The Pulumi engine's destroy --delete-data deletes the model versions the team's job registered first
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
