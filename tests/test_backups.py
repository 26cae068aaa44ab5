"""Backups: names in the team bucket (moto), the restore script (bash, shellcheck, quoting)."""

from __future__ import annotations

import subprocess
import uuid

import boto3
import pytest

from provisioner.backups import (
    BACKUP_PREFIX,
    backup_key_in,
    find_backup,
    list_backups,
    restore_script,
    saved_before_restore,
)
from provisioner.errors import EnvctlError, InvalidInput
from tests.conftest import SANDBOX_CREDENTIALS

NAMES = ["20261120T020000Z", "20261121T020000Z", "20261121T101500Z-pre-restore", "20261122T020000Z"]


@pytest.fixture
def bucket(moto_endpoint):
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1", **SANDBOX_CREDENTIALS)
    name = f"envctl-test-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    for backup in reversed(NAMES):  # written out of order: the listing sorts by time
        s3.put_object(Bucket=name, Key=f"{BACKUP_PREFIX}{backup}.sql.gz", Body=b"x" * len(backup))
    s3.put_object(Bucket=name, Key=f"{BACKUP_PREFIX}notes.txt", Body=b"not a backup")
    s3.put_object(Bucket=name, Key="dags/20261122T020000Z.sql.gz", Body=b"elsewhere")
    return s3, name


def test_list_backups_oldest_first_and_only_backups(bucket):
    s3, name = bucket
    found = list_backups(s3, name)
    assert [b.name for b in found] == NAMES
    assert found[2].label == "pre-restore" and found[0].label == ""
    assert found[-1].key == f"{BACKUP_PREFIX}20261122T020000Z.sql.gz" and found[-1].size == len(NAMES[-1])


@pytest.mark.parametrize("ref", ["20261121T020000Z", "20261121T020000Z.sql.gz", f"{BACKUP_PREFIX}20261121T020000Z.sql.gz"])
def test_find_backup_by_name_file_name_or_key(bucket, ref):
    s3, name = bucket
    assert find_backup(s3, name, "fraud", ref).name == "20261121T020000Z"


def test_latest_is_the_newest_unlabelled_backup(bucket):
    s3, name = bucket
    s3.put_object(Bucket=name, Key=f"{BACKUP_PREFIX}20261123T000000Z-pre-restore.sql.gz", Body=b"safety copy")
    assert find_backup(s3, name, "fraud", "latest").name == "20261122T020000Z"


@pytest.mark.parametrize("ref", ["../../etc/passwd", "20261122T020000Z; rm -rf /", "yesterday", "20261122T020000Z-UPPER", ""])
def test_a_malformed_reference_is_bad_input(bucket, ref):
    s3, name = bucket
    with pytest.raises(InvalidInput, match="not a backup name") as caught:
        find_backup(s3, name, "fraud", ref)
    assert caught.value.exit_code == 2 and "envctl backups fraud" in caught.value.hint


def test_an_unknown_backup_names_the_newest_ones(bucket):
    s3, name = bucket
    with pytest.raises(InvalidInput) as caught:
        find_backup(s3, name, "fraud", "20201122T020000Z")
    assert "no such backup" in caught.value.message and "20261122T020000Z" in caught.value.message


def test_latest_without_backups_says_how_to_take_one(moto_endpoint):
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1", **SANDBOX_CREDENTIALS)
    name = f"envctl-empty-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with pytest.raises(InvalidInput, match="no backup") as caught:
        find_backup(s3, name, "fraud", "latest")
    assert caught.value.hint == "`envctl backup fraud` takes one now"


def test_restore_script_is_bash_that_shellcheck_accepts(shellcheck, tmp_path, bucket):
    s3, name = bucket
    path = tmp_path / "restore.sh"
    path.write_text(restore_script(find_backup(s3, name, "fraud", "latest"), "2.10.5"))
    subprocess.run(["bash", "-n", str(path)], check=True)
    result = subprocess.run([shellcheck, "--shell=bash", "--severity=info", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_restore_script_quotes_the_key(tmp_path):
    """Even a key that find_backup would refuse reaches the script as one inert word."""
    from provisioner.backups import Backup

    marker = tmp_path / "pwned"
    key = f"backups/postgres/x'$(touch {marker})\"`touch {marker}`\".sql.gz"
    script = restore_script(Backup("x", key, 0, ""), "3.0.6")
    key_line = next(line for line in script.splitlines() if line.startswith("KEY="))
    printed = subprocess.run(["bash", "-c", f"{key_line}\nprintf %s \"$KEY\""], capture_output=True, text=True, check=True)
    assert printed.stdout == key and not marker.exists()


def test_backup_key_and_safety_copy_are_read_from_the_host_output():
    assert backup_key_in("warning: x\nbackups/postgres/20261122T020000Z.sql.gz\n") == "backups/postgres/20261122T020000Z.sql.gz"
    with pytest.raises(EnvctlError, match="printed no backup key"):
        backup_key_in("pg_dump: error: connection refused\n")
    output = "envctl-restore: current metadata saved as backups/postgres/20261122T101500Z-pre-restore.sql.gz\n"
    assert saved_before_restore(output) == "20261122T101500Z-pre-restore"
    assert saved_before_restore("envctl-restore: Postgres does not answer; nothing was changed") == ""


def test_backup_status_counts_and_flags_a_stale_newest_backup(bucket):
    from datetime import datetime, timedelta, timezone

    from provisioner.backups import STALE_AFTER_HOURS, backup_status

    s3, name = bucket
    written = datetime.strptime(list_backups(s3, name)[-1].last_modified, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    fresh = backup_status(s3, name, now=written + timedelta(hours=3))
    assert (fresh["count"], fresh["latest"], fresh["age_hours"], fresh["stale"]) == (4, NAMES[-1], 3.0, False)
    assert backup_status(s3, name, now=written + timedelta(hours=STALE_AFTER_HOURS + 1))["stale"] is True
