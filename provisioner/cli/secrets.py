"""envctl secrets: a team's secrets in Secrets Manager (set, list, rm). Values are never shown."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.cli.common import engine_for, load_settings, resolve_team, start

app = typer.Typer(help="A team's secrets (values go to AWS Secrets Manager, never to output or state).", no_args_is_help=True)

SecretName = Annotated[
    str, typer.Argument(help="Secret name, e.g. snowflake_password or connections/warehouse.", show_default=False)
]


def _team_secrets(team: str, target: str | None):
    from provisioner.components.names import team_tags
    from provisioner.secrets import TeamSecrets

    settings = load_settings(target=target)
    spec = resolve_team(settings, team)
    start(settings, f"secrets of {team}")
    engine = engine_for(settings)
    outputs = engine.outputs(team)
    client = engine.aws_client("secretsmanager", spec.region)
    tags = team_tags(spec.team, spec.spec.owners[0], spec.spec.cost_center)
    return TeamSecrets(client, team, outputs["kms_key_arn"], tags, list(spec.spec.secrets))


def _read_value(name: str) -> str:
    """From standard input when it is not a terminal, else a hidden prompt asked twice."""
    if not sys.stdin.isatty():
        value = sys.stdin.read()
        return value[:-1] if value.endswith("\n") else value
    first = getpass.getpass(f"value of {name} (hidden): ")
    if getpass.getpass("again: ") != first:
        from provisioner.errors import InvalidInput

        raise InvalidInput("the two values differ; nothing was stored")
    return first


@app.command(name="set")
def set_secret(team: opt.Team, name: SecretName, target: opt.Target = None) -> None:
    """Store a secret's value, read from standard input or a hidden prompt (never an argument)."""
    from provisioner.secrets import check_name, kind_of

    check_name(name)
    secrets = _team_secrets(team, target)
    secret_id = secrets.set(name, _read_value(name))
    output.out.print(f"stored {secret_id}")
    if kind_of(name, secrets.declared) == "undeclared":
        output.warn(f"{name} is not in the team's request (secrets:), so the Airflow host does not load it; "
                    f"add it to stacks/{team}.yaml to make it available as an Airflow variable")


@app.command(name="list")
def list_secrets(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False) -> None:
    """Names and last-changed times of a team's secrets (never their values)."""
    from dataclasses import asdict

    secrets = _team_secrets(team, target)
    found = secrets.list()
    missing = [name for name in secrets.declared if name not in {s.name for s in found}]
    if as_json:
        output.print_json({"team": team, "secrets": [asdict(s) for s in found], "declared_without_secret": missing})
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("name", "kind", "value", "last changed"):
        table.add_column(column)
    for secret in found:
        table.add_row(secret.name, secret.kind, "set" if secret.has_value else "[yellow]empty[/]", secret.last_changed)
    output.out.print(table)
    for name in missing:
        output.warn(f"{name} is declared but has no secret yet: envctl secrets set {team} {name}")


@app.command(name="rm")
def remove_secret(team: opt.Team, name: SecretName, target: opt.Target = None, yes: opt.Yes = False) -> None:
    """Delete a secret (recoverable for 7 days on AWS)."""
    output.confirm(f"Delete the secret {name} of {team}?", command=f"secrets rm {team} {name}", yes=yes)
    secret_id = _team_secrets(team, target).remove(name)
    output.out.print(f"deleted {secret_id} (recoverable for 7 days)")
