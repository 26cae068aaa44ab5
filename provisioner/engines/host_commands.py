"""Running a script on a team's Airflow host on AWS: SSM Run Command (the host has no inbound rule
and no SSH; its role has AmazonSSMManagedInstanceCore)."""

from __future__ import annotations

import shlex
import time
from typing import Any

from botocore.exceptions import ClientError

from provisioner.engines.base import HostCommandResult, Progress, no_progress
from provisioner.errors import EnvctlError

DOCUMENT = "AWS-RunShellScript"
POLL_S = 3.0
RUNNING = {"Pending", "InProgress", "Delayed"}


def run_with_ssm(ssm: Any, instance_id: str, script: str, *, comment: str, timeout_s: float,
                 progress: Progress = no_progress, poll_s: float | None = None) -> HostCommandResult:
    """Send script to the instance and wait for its end; the exit status is the script's."""
    # AWS-RunShellScript runs its commands with sh; the script is bash, passed as one quoted word.
    command = f"bash -c {shlex.quote(script)}"
    try:
        sent = ssm.send_command(
            InstanceIds=[instance_id], DocumentName=DOCUMENT, Comment=comment[:100],
            TimeoutSeconds=60,  # to start: the instance must be online in SSM
            Parameters={"commands": [command], "executionTimeout": [str(int(timeout_s))]},
        )["Command"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "InvalidInstanceId":
            raise EnvctlError(f"{instance_id} is not online in Systems Manager, so envctl cannot run commands on it",
                              hint="check that the instance is running and its SSM agent is registered "
                                   "(Systems Manager > Fleet Manager)") from None
        raise EnvctlError(f"ssm send-command to {instance_id} failed: {exc}") from None
    progress(f"ssm command {sent['CommandId']} sent to {instance_id}")
    deadline = time.monotonic() + timeout_s + 120
    status = ""
    while time.monotonic() < deadline:
        time.sleep(POLL_S if poll_s is None else poll_s)
        try:
            invocation = ssm.get_command_invocation(CommandId=sent["CommandId"], InstanceId=instance_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvocationDoesNotExist":
                continue  # for a moment after send-command
            raise EnvctlError(f"ssm get-command-invocation for {sent['CommandId']} failed: {exc}") from None
        if invocation["Status"] != status:
            status = invocation["Status"]
            progress(f"command {status.lower()}")
        if status in RUNNING:
            continue
        output = invocation.get("StandardOutputContent", "") + invocation.get("StandardErrorContent", "")
        code = invocation.get("ResponseCode", -1)
        if status != "Success" and code in (0, -1, None):
            code = 255  # cancelled, timed out or undeliverable: no exit status of the script
            output += f"\nssm: the command ended {status} ({invocation.get('StatusDetails', '')})"
        return HostCommandResult(instance_id=instance_id, exit_code=int(code), output=output)
    raise EnvctlError(f"ssm command {sent['CommandId']} on {instance_id} did not end within {timeout_s + 120:.0f}s",
                      hint=f"aws ssm get-command-invocation --command-id {sent['CommandId']} --instance-id {instance_id}")
