"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Team = Annotated[str, typer.Argument(help="Team name: the request is stacks/<team>.yaml.", show_default=False)]
Target = Annotated[
    Optional[str],
    typer.Option("--target", "-t", envvar="ENVCTL_TARGET", show_default=False,
                 help="Where to act: sandbox (embedded moto, no AWS account) or aws (Pulumi). Default from envctl.toml."),
]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout (progress stays on stderr).")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
StacksDir = Annotated[
    Optional[Path],
    typer.Option("--stacks-dir", envvar="ENVCTL_STACKS_DIR", show_default=False,
                 help="Folder of request files (default: stacks/)."),
]
Hosts = Annotated[
    Optional[bool],
    typer.Option("--hosts/--no-hosts", show_default=False,
                 help="Sandbox only: also boot each Airflow host as a local container that runs the real userdata."),
]
