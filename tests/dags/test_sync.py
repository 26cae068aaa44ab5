"""The sync of a DAG folder to the team's prefix: what changes, against a real moto S3 with the bucket policy."""

from __future__ import annotations

import boto3
import pytest

from provisioner import dag_check, dags
from provisioner.components import policies
from provisioner.errors import InvalidInput
from tests.conftest import SANDBOX_CREDENTIALS

pytestmark = [pytest.mark.sandbox]
BUCKET = "envctl-synctest-123456789012-eu-west-1"


@pytest.fixture
def bucket(moto_endpoint):
    """A team bucket with the team's policy (the fidelity rules evaluate it), emptied afterwards."""
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1", **SANDBOX_CREDENTIALS)
    kms = boto3.client("kms", endpoint_url=moto_endpoint, region_name="eu-west-1", **SANDBOX_CREDENTIALS)
    key = kms.create_key()["KeyMetadata"]["Arn"]
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    arns = policies.TeamArns.for_team("synctest", account_id="123456789012", region="eu-west-1", bucket=BUCKET,
                                      kms_key_arn=key)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=policies.bucket_policy(arns))
    yield s3, key
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for entry in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=entry["Key"])
    s3.delete_bucket_policy(Bucket=BUCKET)
    s3.delete_bucket(Bucket=BUCKET)


def sync(s3, key, folder):
    files = dags.local_files(folder)
    plan = dags.plan_sync(s3, BUCKET, "dags/", files)
    dags.apply_sync(s3, BUCKET, "dags/", key, files, plan, lambda _: None)
    return plan


def test_added_updated_deleted_and_no_change(tmp_path, bucket):
    s3, key = bucket
    (tmp_path / "a.py").write_text("a = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("b = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    first = sync(s3, key, tmp_path)
    assert (first.added, first.updated, first.deleted) == (["a.py", "sub/b.py"], [], [])
    assert [f.name for f in dags.deployed_files(s3, BUCKET, "dags/")] == ["a.py", "sub/b.py"]
    head = s3.head_object(Bucket=BUCKET, Key="dags/a.py")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key

    again = sync(s3, key, tmp_path)
    assert not again.changed and again.unchanged == 2

    (tmp_path / "a.py").write_text("a = 2\n")  # same size, other content
    (tmp_path / "sub" / "b.py").unlink()
    (tmp_path / "c.py").write_text("c = 1\n")
    third = sync(s3, key, tmp_path)
    assert (third.added, third.updated, third.deleted, third.unchanged) == (["c.py"], ["a.py"], ["sub/b.py"], 0)
    assert s3.get_object(Bucket=BUCKET, Key="dags/a.py")["Body"].read() == b"a = 2\n"
    assert [f.name for f in dags.deployed_files(s3, BUCKET, "dags/")] == ["a.py", "c.py"]


def test_an_object_without_a_checksum_counts_as_changed(tmp_path, bucket):
    """Uploaded by `aws s3 sync` (CI), say: no sha256 metadata, so it is uploaded again."""
    s3, key = bucket
    (tmp_path / "a.py").write_text("a = 1\n")
    s3.put_object(Bucket=BUCKET, Key="dags/a.py", Body=b"a = 1\n")
    assert sync(s3, key, tmp_path).updated == ["a.py"]


def test_the_bucket_policy_refuses_another_key(tmp_path, bucket, moto_endpoint):
    """The uploads name the team key because the policy denies any other: the rule is live here."""
    s3, _ = bucket
    kms = boto3.client("kms", endpoint_url=moto_endpoint, region_name="eu-west-1", **SANDBOX_CREDENTIALS)
    other = kms.create_key()["KeyMetadata"]["Arn"]
    (tmp_path / "a.py").write_text("a = 1\n")
    from provisioner.errors import EnvctlError

    with pytest.raises(EnvctlError) as refused:
        sync(s3, other, tmp_path)
    assert "AccessDenied" in refused.value.message and dags.deployed_files(s3, BUCKET, "dags/") == []


def test_a_folder_with_nothing_to_deploy_is_refused(tmp_path):
    with pytest.raises(InvalidInput):
        dags.local_files(tmp_path / "missing")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"\0")
    with pytest.raises(InvalidInput) as empty:
        dags.local_files(tmp_path)
    assert "delete every DAG" in empty.value.message


def test_the_syntax_check_names_file_and_line(tmp_path):
    (tmp_path / "good.py").write_text("x = 1\n")
    (tmp_path / "zz_broken.py").write_text("from airflow import DAG\ndef broken(:\n")
    (tmp_path / "notes.md").write_text("def broken(:\n")
    report = dag_check.check_syntax({name: f.path for name, f in dags.local_files(tmp_path).items()})
    assert [p.describe() for p in report.problems] == ["zz_broken.py:2: SyntaxError: invalid syntax"]
    assert "weaker" in report.method
