"""envctl next-steps: what to do with a team's environment now (`make demo` ends with it).

Real values only: the Airflow URL and the sandbox endpoint come from `envctl status`'s report.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.cli.common import engine_for, load_settings, start


def program_name() -> str:
    """How the reader runs envctl: `envctl` when PATH finds this one, else the path used (`.venv/bin/envctl`)."""
    used = Path(sys.argv[0])
    found = shutil.which("envctl")
    if used.name != "envctl" or (found and Path(found).resolve() == used.resolve()):
        return "envctl"
    try:
        return str(used.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(used)


def next_steps(info: dict[str, Any], prog: str) -> list[str]:
    """The lines to print for a team's status report (as `envctl status --json` prints it)."""
    from provisioner.engines.sandbox.server_control import aws_command as sandbox_aws_command

    team = info["team"]
    outputs = info.get("outputs") or {}
    sandbox = info["target"] == "sandbox"
    target = "" if sandbox else f" --target {info['target']}"
    lines = [f"next steps for {team}:"]
    if info.get("airflow_url"):
        lines.append(f"  Airflow UI       {info['airflow_url']}  (again: {prog} status {team})")
    elif sandbox:
        lines.append(f"  Airflow UI       no host runs in the sandbox; with a Docker engine: {prog} create {team} --hosts")
    else:
        lines.append(f"  Airflow UI       {prog} connect {team}{target}  (SSM port forwarding)")
    if sandbox:
        endpoint = (info.get("sandbox") or {}).get("endpoint")
        if endpoint:
            aws = Path(prog).parent / "aws"  # the dev extra installs the AWS CLI next to envctl
            command = sandbox_aws_command(endpoint, outputs.get("region") or "us-east-1",
                                          aws=str(aws) if prog != "envctl" and aws.exists() else "aws")
            bucket = outputs.get("bucket_name")
            lines.append(f"  the sandbox      {command} {'s3 ls s3://' + bucket if bucket else 's3 ls'}")
        else:
            lines.append(f"  the sandbox      not running: {prog} sandbox start")
        lines.append(f"                   {prog} sandbox status")
    lines.append(f"  status           {prog} status {team}{target}")
    lines.append(f"  destroy          {prog} destroy {team}{target} --yes")
    return lines


def next_steps_command(team: opt.Team, target: opt.Target = None) -> None:
    """What to do next with a team's environment: its Airflow UI, the sandbox, how to destroy it."""

    settings = load_settings(target=target)
    start(settings, f"next steps {team}")
    info = engine_for(settings).status(team).to_json()
    for line in next_steps(info, program_name()):
        output.out.print(line, markup=False)
