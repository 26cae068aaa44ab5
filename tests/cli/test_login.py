"""Logging in: `envctl password` prints an owner's password and nothing else; `envctl connect` says how."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from provisioner.cli.main import app
from tests.conftest import fraud_in_a_sandbox, sandbox_client

pytestmark = [pytest.mark.sandbox]

OWNER = "ana.lopez@example.com"
PASSWORD = "Zq7-generated_on-the-host"
SECRET_ID = "envctl/fraud/airflow/owner_passwords"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project with fraud created in its own sandbox (no host: the test plays the host)."""
    with fraud_in_a_sandbox(tmp_path_factory) as root:
        yield root


@pytest.fixture
def runner(project, monkeypatch):
    monkeypatch.chdir(project)
    return CliRunner()


def test_before_the_host_generated_it_there_is_no_password_yet(runner, project):
    """The secret exists without a value until the host boots: exit 1, saying so, printing nothing on stdout."""
    sm = sandbox_client(project, "secretsmanager")
    assert "SecretVersionsToStages" not in sm.describe_secret(SecretId=SECRET_ID)
    result = runner.invoke(app, ["password", "fraud", "--owner", OWNER])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert f"no password for {OWNER} yet" in result.stderr


def test_password_prints_the_owners_password_and_nothing_else(runner, project):
    """One line on stdout, the value the host stored for that owner; the header goes to stderr."""
    sm = sandbox_client(project, "secretsmanager")
    sm.put_secret_value(SecretId=SECRET_ID, SecretString=json.dumps({OWNER: PASSWORD, "ml-fraud@example.com": "other-pw"}))
    result = runner.invoke(app, ["password", "fraud", "--owner", OWNER])
    assert result.exit_code == 0, result.output
    assert result.stdout == PASSWORD + "\n"
    assert PASSWORD not in result.stderr


def test_an_unknown_owner_exits_2_naming_the_owners(runner):
    result = runner.invoke(app, ["password", "fraud", "--owner", "someone@example.com"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "'someone@example.com' is not an owner of fraud; owners: ana.lopez@example.com, ml-fraud@example.com" in result.stderr


def test_connect_ends_with_the_url_the_user_name_and_the_password_command(runner):
    """Without a sandbox host, connect prints the Session Manager command; then how to log in, last."""
    result = runner.invoke(app, ["connect", "fraud", "--local-port", "8123"])
    assert result.exit_code == 0, result.output
    assert "AWS-StartPortForwardingSession" in result.stdout
    assert result.stderr.strip().splitlines()[-3:] == [
        "open http://localhost:8123",
        "user name: your e-mail address, e.g. ana.lopez@example.com (or another owner: ml-fraud@example.com)",
        "password: envctl password fraud --owner ana.lopez@example.com",
    ]
    assert PASSWORD not in result.output
