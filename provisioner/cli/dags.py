"""envctl dags: check and deploy a team's DAGs to its bucket, list them, start a project."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.cli.common import engine_for, load_settings, resolve_team, start

app = typer.Typer(help="A team's DAGs: check and deploy them to the team's bucket, list them, start a project.",
                  no_args_is_help=True)


class CheckKind(str, Enum):
    airflow = "airflow"
    syntax = "syntax"


Folder = Annotated[Path, typer.Argument(help="The folder of DAG files; the team's DAG prefix will hold exactly its files.",
                                        show_default=False)]
Check = Annotated[
    CheckKind,
    typer.Option("--check", case_sensitive=False,
                 help="airflow: Airflow's DagBag in the team's Airflow image (Docker; import errors, cycles, duplicate "
                      "dag_ids). syntax: a weaker check without Docker (syntax errors only)."),
]


def _environment(team: str, target: str | None, action: str):
    """(settings, spec, engine, outputs) of a team whose environment exists."""
    from provisioner.errors import NotFound

    settings = load_settings(target=target)
    spec = resolve_team(settings, team)
    start(settings, f"{action} {team}")
    engine = engine_for(settings)
    outputs = engine.outputs(team)
    if not outputs.get("bucket_name"):
        raise NotFound(f"team {team} has no environment on this target yet", hint=f"run `envctl create {team}` first")
    return settings, spec, engine, outputs


def _airflow_environment(spec, outputs) -> dict[str, str]:
    """What the host's Airflow containers get from envctl (templates/docker-compose.yml.j2), without
    secrets: a DAG that reads these while it is parsed loads in the check as it does on the host."""
    return {"ENVCTL_TEAM": spec.team, "ENVCTL_ENVIRONMENT": spec.spec.environment,
            "ENVCTL_BUCKET": outputs["bucket_name"], "AWS_DEFAULT_REGION": spec.region}


@app.command()
def deploy(team: opt.Team, folder: Folder, check: Check = CheckKind.airflow, target: opt.Target = None,
           as_json: opt.Json = False) -> None:
    """Check the DAGs as the team's Airflow loads them, then sync the folder to the team's DAG prefix
    (new and changed files uploaded, removed ones deleted). Bad DAGs: exit 2, nothing uploaded."""
    from provisioner import dag_check, dags
    from provisioner.errors import InvalidInput

    files = dags.local_files(folder)
    settings, spec, engine, outputs = _environment(team, target, "dags deploy")
    version = spec.spec.airflow.version
    with output.progress(f"checking the DAGs of {team}") as report:
        if check is CheckKind.syntax:
            result = dag_check.check_syntax({name: item.path for name, item in files.items()})
        else:
            result = dag_check.check_with_airflow(
                {name: item.path for name, item in files.items()}, airflow_version=version,
                candidates=dag_check.airflow_images(settings, version), registry=settings.image_registry,
                environment=_airflow_environment(spec, outputs),
                progress=report)
    if result.problems:
        raise InvalidInput(f"{len(result.problems)} problem(s) in {folder} ({result.method}); nothing was uploaded",
                           errors=[problem.describe() for problem in result.problems])
    prefix = spec.spec.airflow.dags.prefix
    s3 = engine.aws_client("s3", spec.region)
    with output.progress(f"syncing {folder} to s3://{outputs['bucket_name']}/{prefix}") as report:
        plan = dags.plan_sync(s3, outputs["bucket_name"], prefix, files)
        dags.apply_sync(s3, outputs["bucket_name"], prefix, outputs["kms_key_arn"], files, plan, report)
    if as_json:
        output.print_json({"team": team, "bucket": outputs["bucket_name"], "prefix": prefix, "check": result.method,
                           "dags": result.dags, **plan.to_json()})
        return
    found = f": {len(result.dags)} DAG(s) ({', '.join(sorted(result.dags))})" if result.dags else ""
    output.out.print(f"checked with {result.method}{found}")
    if not plan.changed:
        output.out.print(f"no change: s3://{outputs['bucket_name']}/{prefix} holds these {plan.unchanged} file(s) already")
        return
    for label, names in (("added", plan.added), ("updated", plan.updated), ("deleted", plan.deleted)):
        for name in names:
            output.out.print(f"{label:8} {prefix}{name}")
    output.out.print(f"{len(plan.added)} added, {len(plan.updated)} updated, {len(plan.deleted)} deleted, "
                     f"{plan.unchanged} unchanged; the host picks them up within a minute")


@app.command(name="list")
def list_dags(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False) -> None:
    """The DAG files deployed to the team's DAG prefix, with their sizes and times."""
    from dataclasses import asdict

    from provisioner import dags

    _, spec, engine, outputs = _environment(team, target, "dags list")
    prefix = spec.spec.airflow.dags.prefix
    found = dags.deployed_files(engine.aws_client("s3", spec.region), outputs["bucket_name"], prefix)
    if as_json:
        output.print_json({"team": team, "bucket": outputs["bucket_name"], "prefix": prefix,
                           "files": [asdict(item) for item in found]})
        return
    if not found:
        output.out.print(f"no DAG files under s3://{outputs['bucket_name']}/{prefix}")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column, justify in (("file", "left"), ("bytes", "right"), ("last modified", "left")):
        table.add_column(column, justify=justify)
    for item in found:
        table.add_row(item.name, str(item.size), item.last_modified)
    output.out.print(table)


@app.command()
def init(team: opt.Team, folder: Annotated[Path, typer.Argument(help="Where to write the starter project.",
                                                                 show_default=False)],
         force: Annotated[bool, typer.Option("--force", help="Overwrite files of the project that exist.")] = False,
         target: opt.Target = None) -> None:
    """Write a starter project for the team: dags/, tests/ (a DAG-integrity test), .github/workflows/
    (deploy on merge with the team's deploy role), README.md."""
    from provisioner.starter import render_starter, starter_context, write_project

    _, spec, _, outputs = _environment(team, target, "dags init")
    written = write_project(render_starter(starter_context(spec, outputs)), folder, force=force)
    for name in written:
        output.out.print(f"wrote {folder / name}")
    if not outputs.get("deploy_role_arn"):
        output.warn(f"{team} has no deploy role, so the workflow cannot deploy yet: add `deploy: {{github: "
                    f"{{repository: <owner>/<repo>}}}}` to stacks/{team}.yaml and apply")
    output.out.print(f"next: envctl dags deploy {team} {folder / 'dags'}")
