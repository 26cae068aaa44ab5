"""envctl password: an owner's initial Airflow password (the only command that prints one)."""

from __future__ import annotations

from typing import Annotated

import typer

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.cli.common import engine_for, load_settings, resolve_team, start

Owner = Annotated[str, typer.Option("--owner", help="The owner's e-mail address (their Airflow user name).", show_default=False)]


def password(team: opt.Team, owner: Owner, target: opt.Target = None) -> None:
    """Print an owner's initial Airflow password on stdout, one line and nothing else."""
    from provisioner.secrets import owner_password

    settings = load_settings(target=target)
    spec = resolve_team(settings, team)
    start(settings, f"password of {owner} for {team}")
    client = engine_for(settings).aws_client("secretsmanager", spec.region)
    value = owner_password(client, team, owner, list(spec.spec.owners))
    output.out.print(value, markup=False, highlight=False, soft_wrap=True)


def login_lines(team: str, url: str, owners: list[str]) -> list[str]:
    """How to log in, for the end of `envctl connect`: the URL, the user name, the password command."""
    first = owners[0]
    others = f" (or another owner: {', '.join(owners[1:])})" if len(owners) > 1 else ""
    return [
        f"open {url}",
        f"user name: your e-mail address, e.g. {first}{others}",
        f"password: envctl password {team} --owner {first}",
    ]
