"""The Pulumi engine after a destroy that kept the team's data (moto in process as AWS, FakePulumi as the CLI).

AWS refuses CreateBucket of a bucket you own (outside us-east-1), CreateAlias of an alias that
exists and CreateSecret of a name that exists or is scheduled for deletion; a new key cannot read
what the kept one encrypted. So before `up` the engine finds what was kept and the program imports
it (Pulumi's `import_`), and `--delete-data` deletes all of it.
"""

from __future__ import annotations

import boto3
import pytest

from provisioner.engines.mocked import run_program
from provisioner.engines.offline import OfflineMaterialiser
from provisioner.engines.pulumi import PulumiEngine
from provisioner.settings import Settings
from provisioner.spec import load_team

from tests.conftest import ROOT
from tests.engines.fake_pulumi import FakeResource

TEAM, REGION = "fraud", "eu-west-1"
BUCKET = f"envctl-{TEAM}-123456789012-{REGION}"
ALIAS = f"alias/envctl-{TEAM}"
FERNET, SNOWFLAKE = f"envctl/{TEAM}/airflow/fernet_key", f"envctl/{TEAM}/snowflake_password"


@pytest.fixture(autouse=True)
def aws(monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "correct horse battery staple")
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


@pytest.fixture
def spec():
    return load_team(TEAM, ROOT / "stacks", default_region=REGION, pool="10.0.0.0/8", prefix=20, root=ROOT)


@pytest.fixture
def built(tmp_path, fake):
    """An engine whose program factory records the BuildOptions it is given (FakePulumi runs no program)."""
    options: list = []

    def factory(spec, build_options):
        options.append(build_options)
        return lambda: None

    settings = Settings(target="aws", region=REGION, state_dir=tmp_path / ".envctl", root=tmp_path)
    return PulumiEngine(settings, fake, program_factory=factory), options


def kept_by_a_destroy() -> dict[str, str]:
    """What a destroy without --delete-data leaves: bucket, key, alias, secrets (one scheduled for deletion)."""
    boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    kms = boto3.client("kms")
    key = kms.create_key(Description=f"envctl {TEAM}: bucket, volumes, secrets, logs")["KeyMetadata"]
    kms.create_alias(AliasName=ALIAS, TargetKeyId=key["KeyId"])
    manager = boto3.client("secretsmanager")
    fernet = manager.create_secret(Name=FERNET, SecretString="fernet-1")["ARN"]
    snowflake = manager.create_secret(Name=SNOWFLAKE, SecretString="pw-1")["ARN"]
    manager.delete_secret(SecretId=SNOWFLAKE, RecoveryWindowInDays=7)
    return {"key_id": key["KeyId"], "key_arn": key["Arn"], FERNET: fernet, SNOWFLAKE: snowflake}


def test_up_adopts_what_a_destroy_kept_and_the_program_imports_it(built, spec):
    """The program gets the kept ids (the secret in its recovery window restored first, value kept), and
    its registrations carry them as import ids: the bucket, key, alias and secrets are imported, not created."""
    engine, options = built
    kept = kept_by_a_destroy()

    result = engine.up(spec)

    given = options[-1].kept
    assert (given.bucket, given.key_id, given.key_alias) == (BUCKET, kept["key_id"], ALIAS)
    assert given.secrets == {FERNET: kept[FERNET], SNOWFLAKE: kept[SNOWFLAKE]}
    manager = boto3.client("secretsmanager")
    assert "DeletedDate" not in manager.describe_secret(SecretId=SNOWFLAKE)
    assert manager.get_secret_value(SecretId=SNOWFLAKE)["SecretString"] == "pw-1"
    assert any(f"restored secret {SNOWFLAKE}" in w for w in result.warnings)

    from provisioner.program import build

    run = run_program(lambda: build(spec, options[-1]) and None, OfflineMaterialiser(REGION), project="envctl",
                      stack=TEAM, config={"aws:region": REGION})
    imports = {r.type: r.import_id for r in run.registrations if r.custom and r.type != "aws:secretsmanager/secret:Secret"}
    assert imports["aws:s3/bucket:Bucket"] == BUCKET and imports["aws:kms/key:Key"] == kept["key_id"]
    assert imports["aws:kms/alias:Alias"] == ALIAS
    assert imports["aws:ecr/repository:Repository"] == "" and imports["aws:ec2/instance:Instance"] == ""
    secrets = {r.inputs["name"]: r.import_id for r in run.registrations if r.type == "aws:secretsmanager/secret:Secret"}
    assert secrets[FERNET] == kept[FERNET] and secrets[SNOWFLAKE] == kept[SNOWFLAKE]
    assert secrets[f"envctl/{TEAM}/partner_api_token"] == ""  # never made: created


def test_preview_changes_nothing_and_says_the_create_restores_the_secret(built, spec):
    """A preview restores nothing: a secret in its recovery window stays there, and the warning says what `up` does."""
    engine, options = built
    kept = kept_by_a_destroy()

    result = engine.preview(spec)

    assert SNOWFLAKE not in options[-1].kept.secrets and options[-1].kept.bucket == BUCKET
    assert "DeletedDate" in boto3.client("secretsmanager").describe_secret(SecretId=kept[SNOWFLAKE])
    assert any(f"secret {SNOWFLAKE} is scheduled for deletion" in w for w in result.warnings)


def test_a_stack_that_holds_its_data_looks_up_only_its_secrets(built, fake, spec):
    """Once the stack holds the bucket (its outputs name it), the bucket and key are not looked up again,
    but its secrets are: a secret dropped from the request was kept (retain_on_delete), and CreateSecret
    of a name that exists, or is scheduled for deletion, fails on AWS when the request names it again."""
    engine, options = built
    kept = kept_by_a_destroy()
    fake.add_stack(TEAM, resources=[FakeResource("aws:s3/bucket:Bucket", "data", id=BUCKET)],
                   outputs={"bucket_name": (BUCKET, False)})

    engine.up(spec)

    given = options[-1].kept
    assert (given.bucket, given.key_id, given.key_alias) == (None, None, None)
    assert given.secrets == {FERNET: kept[FERNET], SNOWFLAKE: kept[SNOWFLAKE]}
    restored = boto3.client("secretsmanager").describe_secret(SecretId=kept[SNOWFLAKE])
    assert "DeletedDate" not in restored


def test_destroy_with_delete_data_deletes_the_alias_and_every_team_secret(built, fake):
    """--delete-data leaves nothing a later create could adopt: alias deleted, key scheduled for deletion,
    every secret under envctl/<team>/ deleted without recovery (another team's untouched)."""
    engine, _ = built
    kept = kept_by_a_destroy()
    manager = boto3.client("secretsmanager")
    manager.create_secret(Name=f"envctl/{TEAM}/connections/warehouse", SecretString="{}")  # made by `envctl secrets set`
    manager.create_secret(Name="envctl/treasury/airflow/fernet_key", SecretString="other team")
    fake.add_stack(TEAM, resources=[FakeResource("aws:s3/bucket:Bucket", "data", id=BUCKET)],
                   outputs={"bucket_name": (BUCKET, False), "kms_key_arn": (kept["key_arn"], False),
                            "region": (REGION, False)})

    result = engine.destroy(TEAM, delete_data=True)

    kms = boto3.client("kms")
    assert ALIAS not in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    assert kms.describe_key(KeyId=kept["key_id"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    left = [s["Name"] for s in manager.list_secrets(IncludePlannedDeletion=True)["SecretList"]]
    assert left == ["envctl/treasury/airflow/fernet_key"]
    assert any("deleted 3 secrets" in w for w in result.warnings)
