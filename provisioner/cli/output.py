"""All output goes through here: results on stdout, progress and errors on stderr."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from rich.console import Console

def _console(**kwargs: Any) -> Console:
    # emoji=False: ARNs such as arn:aws:secretsmanager:…:secret:… would print ":secret:" as ㊙.
    console = Console(soft_wrap=True, highlight=False, emoji=False, **kwargs)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160  # logs and CI: rich would cut tables at 80 columns
    return console


out = _console()
err = _console(stderr=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def header(text: str) -> None:
    """The first line of every command: what it acts on."""
    err.print(f"[bold]envctl[/] · {text}")


def error(message: str, details: list[str] | None = None, hint: str | None = None) -> None:
    err.print(f"[red]error:[/] {message}", markup=True, highlight=False)
    for line in details or []:
        err.print(f"  {line}", markup=False)
    if hint:
        err.print(f"[dim]hint:[/] {hint}")


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {message}")


@contextmanager
def progress(title: str) -> Iterator[Any]:
    """A callable that reports progress: a spinner on a terminal, plain lines otherwise."""
    if err.is_terminal:
        with err.status(title) as status:
            def update(message: str) -> None:
                status.update(f"{title} · {message}")
            yield update
    else:
        err.print(title)

        def line(message: str) -> None:
            err.print(f"  {message}", markup=False)
        yield line


def confirm(question: str, *, command: str, yes: bool) -> None:
    """Ask question on a terminal (no aborts); without a terminal, only --yes confirms (exit 2)."""
    if yes:
        return
    if not sys.stdin.isatty():
        from provisioner.errors import InvalidInput

        raise InvalidInput(f"{command}: confirmation needed; pass --yes to confirm without a terminal")
    import typer

    typer.confirm(question, abort=True, err=True)
