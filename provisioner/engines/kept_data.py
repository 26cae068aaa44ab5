"""The team's data that a destroy keeps: found again before a create, deleted on `--delete-data`.

A destroy without `--delete-data` keeps the bucket, the KMS key, its alias and the secrets
(retain_on_delete). Before the next create, both engines look for them with their own boto3
clients (AWS, or the sandbox's moto server) and hand their ids to the program, which imports
them instead of creating them:

- the bucket by its name (deterministic: team, account, region), with HeadBucket;
- the key through the kept alias, else (an alias deleted by hand or by an older envctl) the
  newest enabled customer managed key tagged for the team;
- the secrets by name, those scheduled for deletion too: AWS refuses CreateSecret for such a
  name until its recovery window ends, so an apply restores them (RestoreSecret), which also
  brings their values back; a preview changes nothing and only says so.

`delete_kept_data` is `destroy --delete-data`: every object version and the bucket, the
alias, the key scheduled for deletion, every secret under the team's prefix deleted without
recovery, so that a later create starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from provisioner.components.kept import KeptData
from provisioner.components.names import AIRFLOW_INTERNAL_SECRETS, OWNER_PASSWORDS_SECRET, TeamNames
from provisioner.engines.base import Progress, no_progress

ClientFor = Callable[[str, str], Any]  # (service, region) -> a boto3 client
KEY_DELETION_WINDOW_DAYS = 7  # AWS's shortest window for ScheduleKeyDeletion
ADOPTABLE_KEY_STATES = ("Enabled", "Disabled")  # not PendingDeletion: --delete-data meant it to go


@dataclass
class FoundData:
    kept: KeptData
    notes: list[str] = field(default_factory=list)  # what to tell the user


def team_secret_names(team: str, declared: Iterable[str]) -> list[str]:
    """The secrets the program makes for a team: its declared ones and Airflow's own (the owners' passwords too)."""
    names = TeamNames(team)
    airflow = (*AIRFLOW_INTERNAL_SECRETS, OWNER_PASSWORDS_SECRET)
    return [names.secret(name) for name in declared] + [names.airflow_secret(name) for name in airflow]


def find_kept_data(client_for: ClientFor, team: str, region: str, secret_names: Iterable[str], *, restore: bool,
                   secrets_only: bool = False, progress: Progress = no_progress) -> FoundData:
    """What an earlier destroy kept of `team` in `region`; with restore, secrets scheduled for deletion are restored.

    secrets_only: the stack already holds the bucket and key. Its secrets are still looked up on
    every run: a secret dropped from the request is kept (retain_on_delete), so the request that
    names it again must adopt it, or CreateSecret fails for a name that exists. Importing a
    secret the stack already holds under the same id changes nothing (Pulumi treats a resource
    whose state has the import id like any other).
    """
    names = TeamNames(team)
    notes: list[str] = []
    secrets = _kept_secrets(client_for("secretsmanager", region), secret_names, restore, notes, progress)
    if secrets_only:
        return FoundData(KeptData(secrets=secrets), notes)
    account = client_for("sts", region).get_caller_identity()["Account"]
    bucket = names.bucket(account, region)
    kms = client_for("kms", region)
    alias, key_id = _key_by_alias(kms, names.kms_alias)
    if key_id is None:
        key_id = _key_by_tags(kms, team)
    return FoundData(KeptData(bucket=bucket if _bucket_exists(client_for("s3", region), bucket) else None,
                              key_id=key_id, key_alias=alias, secrets=secrets), notes)


def _kept_secrets(manager: Any, secret_names: Iterable[str], restore: bool, notes: list[str],
                  progress: Progress) -> dict[str, str]:
    """name -> ARN of each named secret that exists (restored first if scheduled for deletion and restore)."""
    secrets: dict[str, str] = {}
    for name in secret_names:
        secret = _describe_secret(manager, name)
        if secret is None:
            continue
        if secret.get("DeletedDate"):
            if not restore:
                notes.append(f"secret {name} is scheduled for deletion; the create restores it with its value")
                continue
            progress(f"restoring secret {name} (scheduled for deletion by an earlier destroy)")
            manager.restore_secret(SecretId=secret["ARN"])
            notes.append(f"restored secret {name}, which was scheduled for deletion")
        secrets[name] = secret["ARN"]
    return secrets


def delete_kept_data(client_for: ClientFor, team: str, region: str, *, bucket: str | None, key_arn: str | None,
                     progress: Progress = no_progress) -> list[str]:
    """Delete what a destroy kept (`--delete-data`); returns what to tell the user."""
    notes = []
    if bucket:
        s3 = client_for("s3", region)
        if _bucket_exists(s3, bucket):
            progress(f"deleting bucket {bucket} and every object version in it")
            notes.append(f"deleted bucket {bucket} ({delete_bucket(s3, bucket)} object versions)")
    kms = client_for("kms", region)
    alias = TeamNames(team).kms_alias
    if _key_by_alias(kms, alias)[0]:
        key_arn = key_arn or kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]
        kms.delete_alias(AliasName=alias)
        notes.append(f"deleted key alias {alias}")
    if key_arn:
        progress(f"scheduling deletion of KMS key {key_arn}")
        schedule_key_deletion(kms, key_arn)
        notes.append(f"KMS key {key_arn} is scheduled for deletion in {KEY_DELETION_WINDOW_DAYS} days")
    if deleted := delete_team_secrets(client_for("secretsmanager", region), team, progress):
        notes.append(f"deleted {deleted} secrets under {TeamNames(team).secrets_prefix} without recovery")
    return notes


def delete_team_secrets(manager: Any, team: str, progress: Progress = no_progress) -> int:
    """Every secret under the team's prefix, those scheduled for deletion too, deleted at once (no recovery window)."""
    prefix = TeamNames(team).secrets_prefix
    deleted = 0
    pages = manager.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "name", "Values": [prefix]}], IncludePlannedDeletion=True)
    for page in pages:
        for secret in page.get("SecretList", []):
            if secret["Name"].startswith(prefix):  # the name filter matches prefixes of words too
                progress(f"deleting secret {secret['Name']}")
                manager.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
                deleted += 1
    return deleted


def delete_model_versions(sagemaker: Any, group: str) -> int:
    """Delete the versions the team's retraining job registered in its model package group (team data, like
    the bucket's objects: only with --delete-data); AWS refuses to delete a group that holds any. Returns how many."""
    from botocore.exceptions import ClientError

    deleted = 0
    try:
        pages = list(sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group))
    except ClientError:
        return 0  # no such group: nothing registered
    for page in pages:
        for package in page["ModelPackageSummaryList"]:
            sagemaker.delete_model_package(ModelPackageName=package["ModelPackageArn"])
            deleted += 1
    return deleted


def delete_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker, then the bucket; returns how many were deleted."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        versions = page.get("Versions", []) + page.get("DeleteMarkers", [])
        keys = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[start:start + 1000], "Quiet": True})
        deleted += len(keys)
    s3.delete_bucket(Bucket=bucket)
    return deleted


def schedule_key_deletion(kms: Any, key_arn: str) -> None:
    # The key id (the ARN's last part): AWS takes either, moto only the id.
    key_id = key_arn.rsplit("/", 1)[-1]
    try:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=KEY_DELETION_WINDOW_DAYS)
    except kms.exceptions.KMSInvalidStateException:
        return  # already pending deletion


def _bucket_exists(s3: Any, bucket: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise
    return True


def _key_by_alias(kms: Any, alias: str) -> tuple[str | None, str | None]:
    """(the alias if it exists, the id of its key if that key can be adopted)."""
    try:
        metadata = kms.describe_key(KeyId=alias)["KeyMetadata"]
    except kms.exceptions.NotFoundException:
        return None, None
    return alias, metadata["KeyId"] if metadata["KeyState"] in ADOPTABLE_KEY_STATES else None


def _key_by_tags(kms: Any, team: str) -> str | None:
    """The newest adoptable customer managed key tagged as the team's and envctl's."""
    candidates = []
    for page in kms.get_paginator("list_keys").paginate():
        for key in page["Keys"]:
            metadata = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
            if metadata.get("KeyManager") != "CUSTOMER" or metadata["KeyState"] not in ADOPTABLE_KEY_STATES:
                continue
            tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])}
            if tags.get("envctl:team") == team and tags.get("envctl:managed-by") == "envctl":
                candidates.append((metadata["CreationDate"], metadata["KeyId"]))
    return max(candidates)[1] if candidates else None


def _describe_secret(manager: Any, name: str) -> dict[str, Any] | None:
    try:
        return manager.describe_secret(SecretId=name)
    except manager.exceptions.ResourceNotFoundException:
        return None
