"""Backups of a team's Airflow metadata: the Postgres dumps in the team bucket, and the scripts
`envctl backup` and `envctl restore` run on the team's host.

The host writes every dump (nightly job, `envctl backup`, the safety copy before a restore) as
`backups/postgres/<UTC time>[-<label>].sql.gz`, SSE-KMS with the team key; see
templates/envctl-job.sh.j2 and templates/host-commands/restore.sh.j2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from provisioner.errors import EnvctlError, InvalidInput

BACKUP_PREFIX = "backups/postgres/"
BACKUP_SUFFIX = ".sql.gz"
_NAME = re.compile(r"\d{8}T\d{6}Z(?:-[a-z][a-z0-9-]*)?")
LATEST = "latest"
STALE_AFTER_HOURS = 26  # the nightly job runs at 02:00 UTC; a missed night shows by the next morning

BACKUP_COMMAND = "set -euo pipefail\n/usr/local/sbin/envctl-job backup\n"
# The restore script waits for Airflow's health for up to 15 minutes after loading the dump.
RESTORE_TIMEOUT_S = 30 * 60
BACKUP_TIMEOUT_S = 15 * 60

# What each exit status of the restore script means (templates/host-commands/restore.sh.j2).
RESTORE_FAILURES = {
    3: "nothing was changed",
    4: "the backup did not load; the metadata from before the restore is back",
    5: "the metadata was restored but Airflow did not come back healthy",
    6: "neither the backup nor the saved metadata loaded; Airflow is stopped",
}


@dataclass(frozen=True)
class Backup:
    name: str  # e.g. 20261122T020000Z, or 20261122T171502Z-pre-restore
    key: str
    size: int
    last_modified: str  # ISO 8601, UTC

    @property
    def label(self) -> str:
        return self.name.partition("-")[2]


def list_backups(s3: Any, bucket: str) -> list[Backup]:
    """The bucket's backups, oldest first (names start with their UTC time)."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=BACKUP_PREFIX):
        for item in page.get("Contents", []):
            name = item["Key"].removeprefix(BACKUP_PREFIX).removesuffix(BACKUP_SUFFIX)
            if _NAME.fullmatch(name) and item["Key"].endswith(BACKUP_SUFFIX):
                found.append(Backup(name, item["Key"], item["Size"],
                                    item["LastModified"].strftime("%Y-%m-%dT%H:%M:%SZ")))
    return sorted(found, key=lambda backup: backup.name)


def find_backup(s3: Any, bucket: str, team: str, ref: str) -> Backup:
    """The backup `ref` names: `latest` (the newest without a label), a name, or its key."""
    backups = list_backups(s3, bucket)
    if ref == LATEST:
        unlabelled = [backup for backup in backups if not backup.label]
        if not unlabelled:
            raise InvalidInput(f"--from latest: {team} has no backup in s3://{bucket}/{BACKUP_PREFIX} yet",
                               hint=f"`envctl backup {team}` takes one now")
        return unlabelled[-1]
    name = ref.removeprefix(BACKUP_PREFIX).removesuffix(BACKUP_SUFFIX)
    if not _NAME.fullmatch(name):
        raise InvalidInput(f"--from {ref!r}: not a backup name; names look like 20261122T020000Z, or use `latest`",
                           hint=f"`envctl backups {team}` lists them")
    for backup in backups:
        if backup.name == name:
            return backup
    newest = ", ".join(backup.name for backup in backups[-5:]) or "none yet"
    raise InvalidInput(f"--from {ref}: {team} has no such backup in s3://{bucket}/{BACKUP_PREFIX} "
                       f"(the newest: {newest})", hint=f"`envctl backups {team}` lists them")


def backup_status(s3: Any, bucket: str, now: datetime | None = None) -> dict[str, Any]:
    """What `envctl status` says of the backups: how many, the newest, and whether it is stale."""
    found = list_backups(s3, bucket)
    if not found:
        return {"count": 0, "latest": None, "stale": False}
    latest = found[-1]
    written = datetime.strptime(latest.last_modified, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    age_hours = ((now or datetime.now(timezone.utc)) - written).total_seconds() / 3600
    return {"count": len(found), "latest": latest.name, "latest_written": latest.last_modified,
            "age_hours": round(age_hours, 1), "stale": age_hours > STALE_AFTER_HOURS}


def restore_script(backup: Backup, airflow_version: str) -> str:
    from provisioner.userdata import HEALTH_TIMEOUT_MINUTES, health_url, render_host_command

    return render_host_command("restore", key=backup.key, health_url=health_url(airflow_version),
                               health_timeout_s=HEALTH_TIMEOUT_MINUTES * 60)


def backup_key_in(output: str) -> str:
    """The key `envctl-job backup` printed (its last line naming a backup)."""
    keys = [line.strip() for line in output.splitlines() if line.strip().startswith(BACKUP_PREFIX)]
    if not keys:
        raise EnvctlError("the host's backup job printed no backup key: " + " | ".join(output.strip().splitlines()[-5:]))
    return keys[-1]


def saved_before_restore(output: str) -> str:
    """The name of the safety copy the restore script reports, '' when it made none."""
    match = re.search(r"current metadata saved as (\S+)", output)
    return match.group(1).removeprefix(BACKUP_PREFIX).removesuffix(BACKUP_SUFFIX) if match else ""
