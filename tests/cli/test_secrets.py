"""Secrets end to end on the sandbox: the value reaches Secrets Manager and nothing else."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
from typer.testing import CliRunner

from provisioner.cli.main import app
from tests.conftest import fraud_in_a_sandbox, sandbox_client

pytestmark = [pytest.mark.sandbox]

SECRET_VALUE = "s3cr3t-value-$(touch /tmp/pwned)-'quoted'"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project with fraud created in its own sandbox."""
    with fraud_in_a_sandbox(tmp_path_factory) as root:
        yield root


@pytest.fixture
def runner(project, monkeypatch):
    monkeypatch.chdir(project)
    return CliRunner()


def test_set_stores_the_value_encrypted_with_the_team_key_and_never_prints_it(runner, project):
    result = runner.invoke(app, ["secrets", "set", "fraud", "snowflake_password"], input=SECRET_VALUE + "\n")
    assert result.exit_code == 0, result.output
    assert "stored envctl/fraud/snowflake_password" in result.stdout
    assert SECRET_VALUE not in result.output
    sm = sandbox_client(project, "secretsmanager")
    assert sm.get_secret_value(SecretId="envctl/fraud/snowflake_password")["SecretString"] == SECRET_VALUE
    outputs = json.loads(runner.invoke(app, ["outputs", "fraud", "--json"]).stdout)
    assert sm.describe_secret(SecretId="envctl/fraud/snowflake_password")["KmsKeyId"] == outputs["kms_key_arn"]


def test_list_shows_names_and_kinds_never_values(runner, project):
    runner.invoke(app, ["secrets", "set", "fraud", "snowflake_password"], input=SECRET_VALUE)
    runner.invoke(app, ["secrets", "set", "fraud", "connections/warehouse"], input="postgres://u:p@h/db")
    result = runner.invoke(app, ["secrets", "list", "fraud", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    kinds = {s["name"]: (s["kind"], s["has_value"]) for s in doc["secrets"]}
    assert kinds["snowflake_password"] == ("declared", True)
    assert kinds["partner_api_token"] == ("declared", False)
    assert kinds["connections/warehouse"] == ("connection", True)
    assert kinds["airflow/fernet_key"] == ("airflow", False)
    assert SECRET_VALUE not in result.output and "postgres://" not in result.output


def test_the_value_is_in_no_state_file_log_or_userdata(runner, project):
    runner.invoke(app, ["secrets", "set", "fraud", "snowflake_password"], input=SECRET_VALUE)
    for path in (project / ".envctl").rglob("*"):
        if path.is_file():
            assert SECRET_VALUE.encode() not in path.read_bytes(), path
    state = json.loads((project / ".envctl" / "sandbox" / "stacks" / "fraud.json").read_text())
    instance = next(r for r in state["resources"] if r["type"] == "aws:ec2/instance:Instance")
    raw = base64.b64decode(instance["inputs"]["userDataBase64"])
    script = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()
    assert "snowflake_password" in script and SECRET_VALUE not in script


def test_bad_names_and_empty_values_are_refused(runner):
    bad = runner.invoke(app, ["secrets", "set", "fraud", "Bad-Name"], input="x")
    assert bad.exit_code == 2 and "secret name 'Bad-Name' is not allowed" in bad.stderr
    empty = runner.invoke(app, ["secrets", "set", "fraud", "other_secret"], input="")
    assert empty.exit_code == 2 and "the secret value is empty" in empty.stderr


def test_undeclared_secret_warns_and_declared_secret_cannot_be_removed(runner):
    result = runner.invoke(app, ["secrets", "set", "fraud", "adhoc_token"], input="abc")
    assert result.exit_code == 0 and "not in the team's request" in result.stderr
    refused = runner.invoke(app, ["secrets", "rm", "fraud", "snowflake_password", "--yes"])
    assert refused.exit_code == 2 and "declared in the team's request" in refused.stderr
    removed = runner.invoke(app, ["secrets", "rm", "fraud", "adhoc_token", "--yes"])
    assert removed.exit_code == 0 and "deleted envctl/fraud/adhoc_token" in removed.stdout


def test_connect_prints_the_port_forwarding_command(runner):
    result = runner.invoke(app, ["connect", "fraud", "--local-port", "18080"])
    assert result.exit_code == 0, result.output
    assert "aws ssm start-session --region eu-west-1 --target i-" in result.stdout
    assert "AWS-StartPortForwardingSession" in result.stdout and '"localPortNumber": ["18080"]' in result.stdout


def test_status_reports_the_bootstrap_result(runner):
    doc = json.loads(runner.invoke(app, ["status", "fraud", "--json"]).stdout)
    assert doc["bootstrap"] == {"status": "pending"}  # nothing boots without --hosts; the host writes it
