"""A team's DAG files in its bucket, under the request's `airflow.dags.prefix`: what a folder holds,
what the prefix holds, and the sync between them (`envctl dags deploy`, `envctl dags list`).

The sync has `aws s3 sync --delete` semantics: files of the folder that are new or whose content
differs are uploaded, keys under the prefix that the folder no longer has are deleted (the
bucket is versioned: a delete leaves a delete marker, the old version stays recoverable).
Content is compared by SHA-256, kept in each object's metadata (`x-amz-meta-sha256`): with SSE-KMS
an object's ETag is not the MD5 of its content. An object without that metadata (uploaded by
`aws s3 sync` in CI, say) counts as changed and is uploaded again. Uploads name the team's key
(`--sse aws:kms --sse-kms-key-id`), as the bucket policy requires of an upload that names its
encryption. Uploads go first, deletes last, so a renamed DAG never leaves a gap.

The host's dag-sync timer (templates/envctl-job.sh.j2) copies the prefix to the DAG folder of
Airflow every 20 seconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from provisioner.errors import EnvctlError, InvalidInput

Progress = Callable[[str], None]

# Never deployed: Python's caches and a project's own tooling folders.
SKIPPED_FOLDERS = frozenset({"__pycache__", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv"})
SKIPPED_SUFFIXES = (".pyc", ".pyo")
CHECKSUM_METADATA = "sha256"


@dataclass(frozen=True)
class LocalFile:
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class DeployedFile:
    name: str  # relative to the prefix
    key: str
    size: int
    last_modified: str  # ISO 8601, UTC


@dataclass
class SyncPlan:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "deleted": self.deleted, "unchanged": self.unchanged}


def local_files(folder: Path) -> dict[str, LocalFile]:
    """name (posix, relative to folder) -> file, for every file a deploy uploads; InvalidInput when
    the folder is missing or holds nothing to deploy (a sync of nothing would delete every DAG)."""
    if not folder.is_dir():
        raise InvalidInput(f"{folder}: not a folder; give the folder that holds the DAG files (e.g. dags/)")
    found: dict[str, LocalFile] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part in SKIPPED_FOLDERS for part in relative.parts) or path.suffix in SKIPPED_SUFFIXES:
            continue
        if path.is_file():
            data = path.read_bytes()
            found[relative.as_posix()] = LocalFile(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    if not found:
        raise InvalidInput(f"{folder}: holds no file to deploy; a deploy makes the team's DAG prefix hold exactly "
                           "the folder's files, so an empty folder would delete every DAG",
                           hint="to remove one DAG, delete its file and deploy the folder again")
    return found


def deployed_files(s3: Any, bucket: str, prefix: str) -> list[DeployedFile]:
    """The objects under the prefix, by name."""
    from botocore.exceptions import BotoCoreError, ClientError

    found = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                if entry["Key"].endswith("/"):
                    continue  # a folder marker made by a console, not a file
                found.append(DeployedFile(name=entry["Key"][len(prefix):], key=entry["Key"], size=entry["Size"],
                                          last_modified=entry["LastModified"].isoformat()))
    except (ClientError, BotoCoreError) as error:
        raise EnvctlError(f"could not list s3://{bucket}/{prefix}: {error}") from None
    return sorted(found, key=lambda item: item.name)


def plan_sync(s3: Any, bucket: str, prefix: str, files: dict[str, LocalFile]) -> SyncPlan:
    """What a sync of files to the prefix changes; reads each same-size object's checksum."""
    remote = {item.name: item for item in deployed_files(s3, bucket, prefix)}
    plan = SyncPlan()
    for name, local in files.items():
        there = remote.get(name)
        if there is None:
            plan.added.append(name)
        elif there.size != local.size or _stored_checksum(s3, bucket, there.key) != local.sha256:
            plan.updated.append(name)
        else:
            plan.unchanged += 1
    plan.deleted = sorted(set(remote) - set(files))
    return plan


def apply_sync(s3: Any, bucket: str, prefix: str, kms_key_arn: str, files: dict[str, LocalFile], plan: SyncPlan,
               progress: Progress) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    name = ""
    try:
        for name in plan.added + plan.updated:
            progress(f"uploading {name}")
            local = files[name]
            s3.put_object(Bucket=bucket, Key=prefix + name, Body=local.path.read_bytes(),
                          ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_arn,
                          Metadata={CHECKSUM_METADATA: local.sha256})
        for name in plan.deleted:
            progress(f"deleting {name}")
            s3.delete_object(Bucket=bucket, Key=prefix + name)
    except (ClientError, BotoCoreError) as error:
        raise EnvctlError(f"the sync to s3://{bucket}/{prefix} stopped at {name}: {error}",
                          hint="deploy again: the sync carries on from what is there") from None


def _stored_checksum(s3: Any, bucket: str, key: str) -> str | None:
    return s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get(CHECKSUM_METADATA)
