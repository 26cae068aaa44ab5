"""The lifecycle of one team's environment: preview, create, update, destroy, refresh, outputs,
status, list and connect. Each talks to an Engine (provisioner/engines/base.py) only."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.cli.common import engine_for, load_settings, print_result, resolve_team, start
from provisioner.errors import EnvctlError, InvalidInput

if TYPE_CHECKING:
    from provisioner.engines.base import EnvironmentStatus


def preview(
    team: opt.Team,
    offline: Annotated[
        bool, typer.Option("--offline", help="Run the program under mocks: no AWS, no Pulumi CLI, no sandbox.")
    ] = False,
    target: opt.Target = None,
    as_json: opt.Json = False,
) -> None:
    """Show what create/update would change (or, --offline, every resource the request makes)."""
    settings = load_settings(target=target)
    spec = resolve_team(settings, team)
    if offline:
        from provisioner.cli import render
        from provisioner.engines.offline import offline_registrations

        output.header(f"offline preview (mocks, no AWS) · {team}")
        registrations = offline_registrations(spec, project=settings.project)
        if as_json:
            output.print_json(render.registrations_json(team, registrations))
        else:
            output.out.print(render.resource_tree(team, registrations))
        return
    start(settings, f"preview {team}")
    engine = engine_for(settings)
    with output.progress(f"previewing {team}") as report:
        result = engine.preview(spec, report)
    print_result(result, as_json)


def _apply(team: str, target: Optional[str], as_json: bool, hosts: Optional[bool], *, must_exist: bool) -> None:
    settings = load_settings(target=target, sandbox_hosts=hosts)
    spec = resolve_team(settings, team)
    verb = "update" if must_exist else "create"
    start(settings, f"{verb} {team}")
    engine = engine_for(settings)
    if must_exist and team not in {s.team for s in engine.list_stacks()}:
        raise InvalidInput(f"team {team} has no environment on this target yet; use `envctl create {team}`")
    with output.progress(f"{verb} {team}") as report:
        result = engine.up(spec, report)
    print_result(result, as_json)
    hint = None if as_json else engine.inspect_hint(spec.region)
    if hint:
        output.out.print(f"look at the host: {hint} ec2 describe-instances --filters Name=tag:envctl:team,Values={team}")


def create(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False, hosts: opt.Hosts = None,
           yes: opt.Yes = False) -> None:
    """Create (or converge) a team's environment. Re-running with no change changes nothing.

    It asks for no confirmation: --yes is accepted and changes nothing, so scripts can pass it to every command."""
    _apply(team, target, as_json, hosts, must_exist=False)


def update(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False, hosts: opt.Hosts = None) -> None:
    """Apply changes of a team's request to its existing environment."""
    _apply(team, target, as_json, hosts, must_exist=True)


def destroy(
    team: opt.Team,
    target: opt.Target = None,
    yes: opt.Yes = False,
    delete_data: Annotated[
        bool, typer.Option("--delete-data", help="Also delete the team's data bucket and key (kept by default).")
    ] = False,
    as_json: opt.Json = False,
) -> None:
    """Delete a team's environment. The data bucket and its key are kept unless --delete-data."""
    settings = load_settings(target=target)
    start(settings, f"destroy {team}")
    kept = "including its data bucket" if delete_data else "keeping its data bucket and key"
    output.confirm(f"Destroy the environment of {team} on {settings.target}, {kept}?", command=f"destroy {team}", yes=yes)
    engine = engine_for(settings)
    with output.progress(f"destroying {team}") as report:
        result = engine.destroy(team, delete_data=delete_data, progress=report)
    print_result(result, as_json)


def refresh(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False) -> None:
    """Read the real state of a team's resources back and record drift."""
    settings = load_settings(target=target)
    spec = resolve_team(settings, team)
    start(settings, f"refresh {team}")
    with output.progress(f"refreshing {team}") as report:
        result = engine_for(settings).refresh(spec, report)
    print_result(result, as_json)


def outputs(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False) -> None:
    """Print a team's stack outputs (ids, ARNs, names)."""
    settings = load_settings(target=target)
    start(settings, f"outputs {team}")
    values = engine_for(settings).outputs(team)
    if as_json:
        output.print_json(values)
    else:
        from provisioner.cli import render

        output.out.print(render.outputs_table(values))


def status(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False) -> None:
    """A team's environment: resources, last operation, outputs and the host's bootstrap result."""
    settings = load_settings(target=target)
    start(settings, f"status {team}")
    engine = engine_for(settings)
    report = engine.status(team)
    info = report.to_json()
    backups = _backup_status(engine, report)
    if backups is not None:
        info["backups"] = backups
    info.update(_health(engine, report, backups).to_json())
    if as_json:
        output.print_json(info)
        return
    from provisioner.cli import render

    output.out.print(render.outputs_table({k: v for k, v in info.items() if not isinstance(v, dict) and k != "health_reasons"}))
    for reason in info["health_reasons"]:
        output.out.print(f"  - {reason}", markup=False, highlight=False)
    for key, value in info.items():
        if isinstance(value, dict) and value:
            output.out.print(f"[bold]{key}[/]")
            output.out.print(render.outputs_table(value))


def _health(engine, status: EnvironmentStatus, backups: dict[str, Any] | None):
    """The verdict and its reasons (provisioner/health.py)."""
    from provisioner.health import gather

    return gather(engine, status, backups)


def _list_health(engine, team: str) -> dict[str, Any]:
    """`envctl list`'s health of one team (a team whose status cannot be read is unknown, with why)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from provisioner.backups import backup_status

    try:
        report = engine.status(team)
        backups = None
        if report.outputs.get("bucket_name") and report.reachable:
            try:
                backups = backup_status(engine.aws_client("s3", report.outputs.get("region") or "us-east-1"),
                                        report.outputs["bucket_name"])
            except (BotoCoreError, ClientError) as exc:
                backups = {"error": f"cannot list the backups in s3://{report.outputs['bucket_name']}: {exc}"}
        return _health(engine, report, backups).to_json()
    except EnvctlError as exc:
        return {"health": "unknown", "health_reasons": [exc.message]}


def _backup_status(engine, status: EnvironmentStatus) -> dict[str, Any] | None:
    """The team's backups, when the bucket can be read without starting anything (a stopped sandbox
    is left alone); a read that fails is reported, it does not fail the status."""
    outputs = status.outputs
    if not outputs.get("bucket_name") or not status.reachable:
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    from provisioner.backups import backup_status

    try:
        backups = backup_status(engine.aws_client("s3", outputs.get("region") or "us-east-1"), outputs["bucket_name"])
    except (BotoCoreError, ClientError) as exc:
        return {"error": f"cannot list the backups in s3://{outputs['bucket_name']}: {exc}"}
    if backups["stale"]:
        output.warn(f"the newest backup of {status.team} ({backups['latest']}) is {backups['age_hours']:.0f} hours old; "
                    "the nightly job may be failing: `journalctl -u envctl-job@daily` on the host")
    return backups


def list_stacks(target: opt.Target = None, as_json: opt.Json = False) -> None:
    """Every team environment on the target, with the requests that have none yet."""
    from provisioner.request_files import request_files

    settings = load_settings(target=target)
    start(settings, "list")
    engine = engine_for(settings)
    stacks = engine.list_stacks()
    requested = {p.stem for p in request_files(settings.stacks_dir)}
    rows = [{"team": s.team, "resources": s.resources, "status": s.status, "last_operation": s.last_operation,
             "last_updated": s.last_updated, "requested": s.team in requested, "paused": s.paused,
             **_list_health(engine, s.team)} for s in stacks]
    rows += [{"team": t, "resources": 0, "status": "not created", "last_operation": "", "last_updated": "", "requested": True,
              "health": "", "health_reasons": [], "paused": False}
             for t in sorted(requested - {s.team for s in stacks})]
    if as_json:
        output.print_json(rows)
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("team", "status", "health", "resources", "last operation", "updated"):
        table.add_column(column)
    for row in rows:
        status = f"{row['status']}, paused" if row["paused"] else row["status"]
        table.add_row(row["team"], status, row["health"], str(row["resources"]), row["last_operation"],
                      row["last_updated"])
    output.out.print(table)


def connect(
    team: opt.Team,
    target: opt.Target = None,
    local_port: Annotated[int, typer.Option("--local-port", help="Local port for the Airflow UI.")] = 8080,
    execute: Annotated[bool, typer.Option("--exec", help="Run the session instead of printing the command.")] = False,
) -> None:
    """Reach a team's Airflow UI through SSM port forwarding (the host has no inbound rule)."""
    import os
    import shlex
    import shutil

    from provisioner.cli.login import login_lines
    from provisioner.errors import MissingTool
    from provisioner.userdata import WEB_PORT

    settings = load_settings(target=target)
    spec = resolve_team(settings, team)
    start(settings, f"connect {team}")
    info = engine_for(settings).status(team)
    owners = list(spec.spec.owners)
    if info.host_url:
        output.out.print(f"the {info.target} host of {team} answers at {info.host_url}")
        for line in login_lines(team, info.host_url, owners):
            output.out.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    parameters = json.dumps({"portNumber": [str(WEB_PORT)], "localPortNumber": [str(local_port)]})
    command = ["aws", "ssm", "start-session", "--region", spec.region, "--target", info.outputs["instance_id"],
               "--document-name", "AWS-StartPortForwardingSession", "--parameters", parameters]
    if not execute:
        output.out.print(shlex.join(command), markup=False, highlight=False, soft_wrap=True)
        output.err.print("run it (or `envctl connect --exec`), then:")
        for line in login_lines(team, f"http://localhost:{local_port}", owners):
            output.err.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    if info.no_sessions:
        raise EnvctlError(info.no_sessions)
    for tool, how in (("aws", "install the AWS CLI v2"),
                      ("session-manager-plugin", "install the Session Manager plugin: https://docs.aws.amazon.com/"
                                                 "systems-manager/latest/userguide/session-manager-working-with-install-plugin.html")):
        if shutil.which(tool) is None:
            raise MissingTool(f"`{tool}` is not installed; {how}")
    output.err.print(f"forwarding localhost:{local_port} to the Airflow UI of {team}; Ctrl-C to stop")
    for line in login_lines(team, f"http://localhost:{local_port}", owners):
        output.err.print(line, markup=False, highlight=False, soft_wrap=True)
    os.execvp(command[0], command)
