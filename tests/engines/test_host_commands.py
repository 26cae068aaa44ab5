"""Commands on a host over SSM: the request reaches SSM (moto) as AWS-RunShellScript with the script
as one quoted word; statuses and exit codes come back as the script's (SSM's answers stubbed where
moto only ever says Success)."""

from __future__ import annotations

import shlex
from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import Stubber

from provisioner.engines.host_commands import run_with_ssm
from provisioner.errors import EnvctlError
from tests.conftest import SANDBOX_CREDENTIALS

COMMAND_ID = "0b4a7f1e-2f0d-4c55-9d0c-6b1c2f3e4a5b"
INSTANCE_ID = "i-0123456789abcdef0"
SCRIPT = "set -euo pipefail\nKEY='backups/postgres/x'\\''y.sql.gz'\necho \"$KEY\"\n"


def _ssm(endpoint=None):
    return boto3.client("ssm", region_name="eu-west-1", endpoint_url=endpoint or "https://ssm.eu-west-1.amazonaws.com",
                        **SANDBOX_CREDENTIALS)


def test_the_script_reaches_ssm_as_one_bash_word(moto_endpoint):
    ssm = _ssm(moto_endpoint)
    said = []
    result = run_with_ssm(ssm, "i-0123456789abcdef0", SCRIPT, comment="envctl fraud", timeout_s=600,
                          progress=said.append, poll_s=0)
    assert (result.exit_code, result.instance_id) == (0, "i-0123456789abcdef0")
    command = ssm.list_commands(InstanceId="i-0123456789abcdef0")["Commands"][-1]
    assert command["DocumentName"] == "AWS-RunShellScript" and command["Comment"] == "envctl fraud"
    assert command["Parameters"]["executionTimeout"] == ["600"]
    [line] = command["Parameters"]["commands"]
    assert shlex.split(line) == ["bash", "-c", SCRIPT]
    assert any(message.startswith("ssm command ") for message in said)


def _invocation(status: str, code: int, out: str = "", err: str = "") -> dict:
    return {"CommandId": COMMAND_ID, "InstanceId": INSTANCE_ID, "Status": status, "StatusDetails": status, "ResponseCode": code,
            "StandardOutputContent": out, "StandardErrorContent": err}


def _stubbed(*invocations, first_error: str | None = None) -> tuple:
    ssm = _ssm()
    stubber = Stubber(ssm)
    sent = {"Command": {"CommandId": COMMAND_ID, "RequestedDateTime": datetime.now(timezone.utc)}}
    stubber.add_response("send_command", sent)
    if first_error:
        stubber.add_client_error("get_command_invocation", service_error_code=first_error)
    for invocation in invocations:
        stubber.add_response("get_command_invocation", invocation)
    stubber.activate()
    return ssm, stubber


def test_a_failing_script_returns_its_exit_code_and_output():
    ssm, stubber = _stubbed(_invocation("Pending", -1), _invocation("InProgress", -1),
                            _invocation("Failed", 4, "envctl-restore: did not load\n", "psql: error\n"),
                            first_error="InvocationDoesNotExist")
    result = run_with_ssm(ssm, INSTANCE_ID, SCRIPT, comment="envctl fraud", timeout_s=60, poll_s=0)
    assert result.exit_code == 4 and result.output == "envctl-restore: did not load\npsql: error\n"
    stubber.assert_no_pending_responses()


def test_a_command_that_timed_out_has_no_success_code():
    ssm, _ = _stubbed(_invocation("TimedOut", -1, "waiting\n"))
    result = run_with_ssm(ssm, INSTANCE_ID, SCRIPT, comment="envctl fraud", timeout_s=60, poll_s=0)
    assert result.exit_code == 255 and "ended TimedOut" in result.output


def test_an_instance_not_in_ssm_is_one_clear_error():
    ssm = _ssm()
    stubber = Stubber(ssm)
    stubber.add_client_error("send_command", service_error_code="InvalidInstanceId")
    stubber.activate()
    with pytest.raises(EnvctlError, match="not online in Systems Manager") as caught:
        run_with_ssm(ssm, INSTANCE_ID, SCRIPT, comment="envctl fraud", timeout_s=60, poll_s=0)
    assert "Fleet Manager" in caught.value.hint
