"""The moto server's mends (engines/sandbox/moto_fixes.py): what AWS accepts, the sandbox accepts."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from provisioner.engines.sandbox import moto_fixes


def _suspended_bucket_with_a_delete_marker(s3) -> str:
    bucket = "envctl-fraud-123456789012-eu-west-1"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="dags/old.py", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="dags/old.py")  # as `envctl dags deploy` removes a DAG: a delete marker
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    return bucket


def _empty(s3, bucket: str) -> None:
    page = s3.list_object_versions(Bucket=bucket)
    objects = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
    s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


def test_without_the_mend_moto_cannot_empty_a_suspended_bucket_holding_a_delete_marker(monkeypatch):
    from moto.s3.models import FakeDeleteMarker

    monkeypatch.delattr(FakeDeleteMarker, "dispose", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        bucket = _suspended_bucket_with_a_delete_marker(s3)
        with pytest.raises(AttributeError, match="dispose"):
            _empty(s3, bucket)


def test_with_the_mend_the_bucket_empties_and_deletes_as_on_aws(monkeypatch):
    from moto.s3.models import FakeDeleteMarker

    monkeypatch.delattr(FakeDeleteMarker, "dispose", raising=False)
    moto_fixes.install()
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        bucket = _suspended_bucket_with_a_delete_marker(s3)
        _empty(s3, bucket)
        listing = s3.list_object_versions(Bucket=bucket)
        assert not listing.get("Versions") and not listing.get("DeleteMarkers")
        s3.delete_bucket(Bucket=bucket)
        assert bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
