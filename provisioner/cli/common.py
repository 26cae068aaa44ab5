"""What every command does first, declared once: settings, the team's request, the engine, the
header line, and how an operation's result is printed. Imports nothing of the commands."""

from __future__ import annotations

from typing import Any

from provisioner.cli import output


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
