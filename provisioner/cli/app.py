"""The envctl command line: the root Typer, each noun's commands added to it, and the one place
errors become exit codes.

Exit codes: 0 ok, 1 operation failed, 2 bad input, 3 lock or conflict.
Imports run one way: this module → the command modules → provisioner.cli.common; no command module
imports this one. Heavy modules (pulumi, pulumi_aws, moto, docker, boto3) are imported inside
commands, never at import time.
"""

from __future__ import annotations

from typing import Any

import click
import typer
from typer.core import TyperGroup

from provisioner.cli import (backups, cost, dags, doctor, drift, inference, invoke, lifecycle, login, logs, next_steps, output,
                             pausing, plan_apply, sandbox, secrets, validate)
from provisioner.cli import report as report_command
from provisioner.errors import EnvctlError


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

# In the order `envctl --help` lists them.
COMMANDS = {
    "validate": validate.validate,
    "schema": validate.schema,
    "preview": lifecycle.preview,
    "create": lifecycle.create,
    "update": lifecycle.update,
    "destroy": lifecycle.destroy,
    "refresh": lifecycle.refresh,
    "outputs": lifecycle.outputs,
    "status": lifecycle.status,
    "list": lifecycle.list_stacks,
    "connect": lifecycle.connect,
    "password": login.password,
}
NOUNS = {"sandbox": sandbox.app, "secrets": secrets.app, "inference": inference.app, "dags": dags.app}
MORE_COMMANDS = {
    "doctor": doctor.doctor,
    "plan": plan_apply.plan,
    "apply": plan_apply.apply,
    "waves": plan_apply.waves,
    "drift": drift.drift,
    "backups": backups.backups,
    "backup": backups.backup,
    "restore": backups.restore,
    "next-steps": next_steps.next_steps_command,
    "invoke": invoke.invoke,
    "logs": logs.logs,
    "cost": cost.cost,
    "report": report_command.report,
    "pause": pausing.pause,
    "resume": pausing.resume,
}

for name, command in COMMANDS.items():
    app.command(name=name)(command)
for name, noun in NOUNS.items():
    app.add_typer(noun, name=name)
for name, command in MORE_COMMANDS.items():
    app.command(name=name)(command)
