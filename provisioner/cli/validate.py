"""envctl validate and schema: request files checked alone and together, and their JSON Schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.cli.common import load_settings, start
from provisioner.errors import InvalidInput


def validate(
    paths: Annotated[
        Optional[list[Path]], typer.Argument(help="Request files (default: every stacks/*.yaml).", show_default=False)
    ] = None,
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


def schema(out: Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of stdout.")] = None) -> None:
    """Print the JSON Schema of a request file (stacks/<team>.yaml)."""
    from provisioner.spec import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if out:
        out.write_text(text)
        output.err.print(f"wrote {out}")
    else:
        sys.stdout.write(text)
