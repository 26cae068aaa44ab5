"""envctl backups / backup / restore: the team's Airflow metadata, dumped to and restored from the
team bucket (provisioner/backups.py). Commands run on the host through the engine (SSM on AWS,
the container host in the sandbox)."""

from __future__ import annotations

from typing import Annotated

import typer

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.cli.common import engine_for, load_settings, resolve_team, start

From = Annotated[str, typer.Option("--from", help="The backup: a name from `envctl backups <team>`, or `latest`.",
                                   show_default=False)]


def _last_lines(text: str, count: int = 3) -> list[str]:
    """What to show of a failed script's output: its last error line, then its last lines (without
    psql's caret markers and blank lines)."""
    lines = [line.strip().removeprefix("envctl-restore: ") for line in text.splitlines()]
    lines = [line for line in lines if line and line.strip("^~ ")]
    errors = [line for line in lines if "error" in line.lower()][-1:]
    return errors + [line for line in lines[-count:] if line not in errors]


def _team_backups(team: str, target: str | None, action: str):
    """The engine, the team bucket, an S3 client for it and the team's request (the team must have an environment)."""

    settings = load_settings(target=target)
    spec = resolve_team(settings, team)
    start(settings, f"{action} {team}")
    engine = engine_for(settings)
    outputs = engine.outputs(team)
    return engine, outputs["bucket_name"], engine.aws_client("s3", outputs["region"]), spec


def backups(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False) -> None:
    """List the backups of a team's Airflow metadata (Postgres dumps in the team bucket), oldest first."""
    from dataclasses import asdict

    from provisioner.backups import list_backups

    _, bucket, s3, _ = _team_backups(team, target, "backups")
    found = list_backups(s3, bucket)
    if as_json:
        output.print_json({"team": team, "bucket": bucket, "backups": [asdict(b) for b in found]})
        return
    if not found:
        output.out.print(f"{team} has no backup yet; the host takes one every night, `envctl backup {team}` takes one now")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("name", "size", "written"):
        table.add_column(column)
    for backup in found:
        table.add_row(backup.name, f"{backup.size:,} B", backup.last_modified)
    output.out.print(table)


def backup(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False) -> None:
    """Back up a team's Airflow metadata now: pg_dump on the host, to the team bucket (SSE-KMS)."""
    from provisioner.backups import BACKUP_COMMAND, BACKUP_TIMEOUT_S, backup_key_in, find_backup
    from provisioner.errors import EnvctlError

    engine, bucket, s3, _ = _team_backups(team, target, "backup")
    with output.progress(f"backing up the Airflow metadata of {team}") as report:
        result = engine.run_on_host(team, BACKUP_COMMAND, timeout_s=BACKUP_TIMEOUT_S, progress=report)
    if result.exit_code != 0:
        raise EnvctlError(f"the backup on {result.instance_id} failed (exit {result.exit_code}): "
                          + " | ".join(_last_lines(result.output)))
    written = find_backup(s3, bucket, team, backup_key_in(result.output))
    if as_json:
        output.print_json({"team": team, "backup": written.name, "key": written.key, "size": written.size})
        return
    output.out.print(f"backup [bold]{written.name}[/] written to s3://{bucket}/{written.key} ({written.size:,} B)")


def restore(team: opt.Team, source: From, target: opt.Target = None, yes: opt.Yes = False, as_json: opt.Json = False) -> None:
    """Replace a team's Airflow metadata with a backup (the current one is backed up first).

    If the backup does not load, the metadata from before is put back. Airflow restarts and must
    answer healthy before the restore counts as done."""
    from provisioner.backups import RESTORE_FAILURES, RESTORE_TIMEOUT_S, find_backup, restore_script, saved_before_restore
    from provisioner.errors import EnvctlError

    engine, bucket, s3, spec = _team_backups(team, target, "restore")
    chosen = find_backup(s3, bucket, team, source)  # a bad --from stops here, before anything changes
    output.confirm(f"Replace the Airflow metadata of {team} with the backup {chosen.name} "
                   "(Airflow restarts; the current metadata is backed up first)?", command=f"restore {team}", yes=yes)
    with output.progress(f"restoring {chosen.name} on the Airflow host of {team}") as report:
        script = restore_script(chosen, spec.spec.airflow.version)
        result = engine.run_on_host(team, script, timeout_s=RESTORE_TIMEOUT_S, progress=report)
    steps = [line.removeprefix("envctl-restore: ") for line in result.output.splitlines() if line.startswith("envctl-restore: ")]
    saved = saved_before_restore(result.output)
    if result.exit_code != 0:
        what = RESTORE_FAILURES.get(result.exit_code, f"the restore script exited {result.exit_code}")
        raise EnvctlError(f"restore of {chosen.name} on {result.instance_id}: {what}: "
                          + " | ".join(_last_lines(result.output)),
                          hint=f"the metadata from before the restore is the backup {saved}" if saved else None)
    if as_json:
        output.print_json({"team": team, "restored": chosen.name, "saved_before_restore": saved,
                           "instance_id": result.instance_id, "steps": steps})
        return
    for step in steps:
        output.err.print(f"  {step}", markup=False)
    output.out.print(f"restored [bold]{chosen.name}[/] on {result.instance_id}; Airflow is healthy. "
                     f"The metadata from before is the backup {saved}.")
