"""envctl: the entry point, the lifecycle commands, and the one place errors become exit codes.

Exit codes: 0 ok, 1 operation failed, 2 bad input, 3 lock or conflict.
Heavy modules (pulumi, pulumi_aws, moto, docker) are imported inside commands, never here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from typer.core import TyperGroup

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.errors import EnvctlError, InvalidInput


class EnvctlGroup(TyperGroup):
    """Turns EnvctlError into a one-line message and its exit code, for every command below."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EnvctlError as exc:
            output.error(exc.message, getattr(exc, "errors", None), exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            output.error("interrupted")
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=EnvctlGroup,
    name="envctl",
    help="Segregated team environments on AWS: an Airflow host, SageMaker and an inference endpoint per team.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def load_settings(**flags: Any):
    from provisioner.settings import load_settings as resolve

    return resolve(flags)


def start(settings, action: str) -> None:
    output.header(f"{settings.describe_target()} · {action}")


def resolve_team(settings, team: str):
    from provisioner.spec import load_team

    return load_team(team, settings.stacks_dir, default_region=settings.region, pool=settings.cidr_pool,
                     prefix=settings.team_prefix, root=settings.root)


def engine_for(settings):
    from provisioner.engines import get_engine

    return get_engine(settings)


def sandbox_aws_command(endpoint: str, region: str, aws: str = "aws") -> str:
    """The AWS CLI pointed at the sandbox (moto takes any credentials unless IAM enforcement is on)."""
    return f"AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing {aws} --endpoint-url {endpoint} --region {region}"


def print_result(result, as_json: bool) -> None:
    from provisioner.cli import render

    if as_json:
        output.print_json(result.to_json())
        return
    if result.changed:
        output.out.print(render.changes_table(result))
    for warning in result.warnings:
        output.warn(warning)
    if result.not_materialised:
        output.warn(f"{len(result.not_materialised)} resource(s) recorded but not materialised (no sandbox handler)")
    output.out.print(render.summary_line(result))


# ------------------------------------------------------------------ requests


@app.command()
def validate(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Request files (default: every stacks/*.yaml).", show_default=False)] = None,
    as_json: opt.Json = False,
    stacks_dir: opt.StacksDir = None,
) -> None:
    """Check request files alone and together (schema, file name, unique teams, CIDR overlaps)."""
    from provisioner.spec import request_files, validate_files

    settings = load_settings(stacks_dir=stacks_dir)
    files = list(paths) if paths else request_files(settings.stacks_dir)
    start(settings, f"validate {len(files)} request(s)")
    if not files:
        raise InvalidInput(f"{settings.stacks_dir}: no request files (*.yaml) to validate")
    resolved, errors = validate_files(files, default_region=settings.region, pool=settings.cidr_pool,
                                      prefix=settings.team_prefix, root=settings.root)
    if as_json:
        output.print_json({"valid": not errors, "errors": errors,
                           "teams": [{"team": r.team, "region": r.region, "cidr": r.cidr} for r in resolved]})
    elif not errors:
        output.out.print(f"[green]✓[/] {len(resolved)} request(s) valid: " + ", ".join(sorted(r.team for r in resolved)))
    if errors:
        raise InvalidInput(f"{len(errors)} problem(s) in the requests", errors=errors)


@app.command()
def schema(out: Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of stdout.")] = None) -> None:
    """Print the JSON Schema of a request file (stacks/<team>.yaml)."""
    from provisioner.spec import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if out:
        out.write_text(text)
        output.err.print(f"wrote {out}")
    else:
        sys.stdout.write(text)


# ------------------------------------------------------------------ lifecycle


@app.command()
def preview(
    team: opt.Team,
    offline: Annotated[bool, typer.Option("--offline", help="Run the program under mocks: no AWS, no Pulumi CLI, no sandbox.")] = False,
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
    if not as_json and settings.target == "sandbox":
        endpoint = engine.server.running().endpoint
        output.out.print(f"look at the host: {sandbox_aws_command(endpoint, spec.region)} ec2 describe-instances "
                         f"--filters Name=tag:envctl:team,Values={team}")


@app.command()
def create(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False, hosts: opt.Hosts = None,
           yes: opt.Yes = False) -> None:
    """Create (or converge) a team's environment. Re-running with no change changes nothing."""
    _apply(team, target, as_json, hosts, must_exist=False)


@app.command()
def update(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False, hosts: opt.Hosts = None) -> None:
    """Apply changes of a team's request to its existing environment."""
    _apply(team, target, as_json, hosts, must_exist=True)


@app.command()
def destroy(
    team: opt.Team,
    target: opt.Target = None,
    yes: opt.Yes = False,
    delete_data: Annotated[bool, typer.Option("--delete-data", help="Also delete the team's data bucket and key (kept by default).")] = False,
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


@app.command()
def refresh(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False) -> None:
    """Read the real state of a team's resources back and record drift."""
    settings = load_settings(target=target)
    spec = resolve_team(settings, team)
    start(settings, f"refresh {team}")
    with output.progress(f"refreshing {team}") as report:
        result = engine_for(settings).refresh(spec, report)
    print_result(result, as_json)


@app.command()
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


@app.command()
def status(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False) -> None:
    """A team's environment: resources, last operation, outputs and the host's bootstrap result."""
    settings = load_settings(target=target)
    start(settings, f"status {team}")
    engine = engine_for(settings)
    info = engine.status(team)
    backups = _backup_status(engine, info)
    if backups is not None:
        info["backups"] = backups
    if as_json:
        output.print_json(info)
        return
    from provisioner.cli import render

    output.out.print(render.outputs_table({k: v for k, v in info.items() if not isinstance(v, dict)}))
    for key, value in info.items():
        if isinstance(value, dict) and value:
            output.out.print(f"[bold]{key}[/]")
            output.out.print(render.outputs_table(value))


def _backup_status(engine, info: dict[str, Any]) -> dict[str, Any] | None:
    """The team's backups, when the bucket can be read without starting anything (a stopped sandbox
    is left alone); a read that fails is reported, it does not fail the status."""
    outputs = info.get("outputs") or {}
    if not outputs.get("bucket_name") or info.get("sandbox", {}).get("running") is False:
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    from provisioner.backups import backup_status

    try:
        backups = backup_status(engine.aws_client("s3", outputs.get("region") or "us-east-1"), outputs["bucket_name"])
    except (BotoCoreError, ClientError) as exc:
        return {"error": f"cannot list the backups in s3://{outputs['bucket_name']}: {exc}"}
    if backups["stale"]:
        output.warn(f"the newest backup of {info['team']} ({backups['latest']}) is {backups['age_hours']:.0f} hours old; "
                    "the nightly job may be failing: `journalctl -u envctl-job@daily` on the host")
    return backups


@app.command(name="list")
def list_stacks(target: opt.Target = None, as_json: opt.Json = False) -> None:
    """Every team environment on the target, with the requests that have none yet."""
    from provisioner.stacks import request_files

    settings = load_settings(target=target)
    start(settings, "list")
    stacks = engine_for(settings).list_stacks()
    requested = {p.stem for p in request_files(settings.stacks_dir)}
    rows = [{"team": s.team, "resources": s.resources, "status": s.status, "last_operation": s.last_operation,
             "last_updated": s.last_updated, "requested": s.team in requested} for s in stacks]
    rows += [{"team": t, "resources": 0, "status": "not created", "last_operation": "", "last_updated": "", "requested": True}
             for t in sorted(requested - {s.team for s in stacks})]
    if as_json:
        output.print_json(rows)
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("team", "status", "resources", "last operation", "updated"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["team"], row["status"], str(row["resources"]), row["last_operation"], row["last_updated"])
    output.out.print(table)


@app.command()
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

    from provisioner.errors import MissingTool
    from provisioner.userdata import WEB_PORT

    settings = load_settings(target=target)
    spec = resolve_team(settings, team)
    start(settings, f"connect {team}")
    info = engine_for(settings).status(team)
    if settings.target == "sandbox" and info.get("host", {}).get("airflow_url"):
        output.out.print(f"the sandbox host of {team} answers at {info['host']['airflow_url']}")
        return
    parameters = json.dumps({"portNumber": [str(WEB_PORT)], "localPortNumber": [str(local_port)]})
    command = ["aws", "ssm", "start-session", "--region", spec.region, "--target", info["outputs"]["instance_id"],
               "--document-name", "AWS-StartPortForwardingSession", "--parameters", parameters]
    if not execute:
        output.out.print(shlex.join(command))
        output.err.print(f"then open http://localhost:{local_port}")
        return
    if settings.target == "sandbox":
        raise EnvctlError("the sandbox has no Session Manager; create the team with --hosts to get a local Airflow URL")
    for tool, how in (("aws", "install the AWS CLI v2"),
                      ("session-manager-plugin", "install the Session Manager plugin: https://docs.aws.amazon.com/"
                                                 "systems-manager/latest/userguide/session-manager-working-with-install-plugin.html")):
        if shutil.which(tool) is None:
            raise MissingTool(f"`{tool}` is not installed; {how}")
    output.err.print(f"forwarding localhost:{local_port} to the Airflow UI of {team}; Ctrl-C to stop")
    os.execvp(command[0], command)


def _register_nouns() -> None:
    from provisioner.cli import inference, sandbox, secrets

    app.add_typer(sandbox.app, name="sandbox")
    app.add_typer(secrets.app, name="secrets")
    app.add_typer(inference.app, name="inference")

    from provisioner.cli import backups, doctor, next_steps, requests

    app.command()(doctor.doctor)
    app.command()(requests.plan)
    app.command()(requests.apply)
    app.command()(backups.backups)
    app.command()(backups.backup)
    app.command()(backups.restore)
    app.command(name="next-steps")(next_steps.next_steps_command)


_register_nouns()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
