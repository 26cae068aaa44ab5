"""envctl next-steps (the end of `make demo`): real values, and a sandbox command that works as printed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from provisioner.cli.main import app
from provisioner.cli.next_steps import next_steps, program_name
from tests.conftest import ROOT, fraud_in_a_sandbox


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project with fraud created in its own sandbox (no hosts)."""
    with fraud_in_a_sandbox(tmp_path_factory) as root:
        yield root


@pytest.mark.sandbox
def test_next_steps_print_the_running_sandbox_and_a_command_that_works(project, monkeypatch):
    """The sandbox line carries the real endpoint, region and bucket, and runs as printed (the AWS CLI
    lists the team bucket); without a host it says how to get one; destroy is spelled out."""
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["next-steps", "fraud"])
    assert result.exit_code == 0, result.output
    server = json.loads((project / ".envctl" / "sandbox" / "server.json").read_text())
    outputs = json.loads(CliRunner().invoke(app, ["outputs", "fraud", "--json"]).stdout)
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.startswith("  ") and line.split()}
    sandbox = lines["the"]
    assert f"--endpoint-url http://{server['host']}:{server['port']} --region eu-west-1" in sandbox
    assert sandbox.endswith(f"s3 ls s3://{outputs['bucket_name']}")
    assert "no host runs in the sandbox; with a Docker engine: envctl create fraud --hosts" in result.stdout
    assert "envctl sandbox status" in result.stdout
    assert "destroy          envctl destroy fraud --yes" in result.stdout
    command = sandbox.split(None, 2)[2].replace(" aws ", f" {ROOT / '.venv' / 'bin' / 'aws'} ", 1)
    listed = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr


@pytest.mark.sandbox
def test_next_steps_of_a_team_without_environment_is_a_clear_error(project, monkeypatch):
    """A team that was never created: exit 1 with how to create it, no traceback."""
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["next-steps", "nobody"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output


def test_with_a_host_the_airflow_url_comes_first():
    """A status report with a sandbox host gives its Airflow URL and how to see it again."""
    info = {"team": "fraud", "target": "sandbox", "airflow_url": "http://127.0.0.1:49153",
            "sandbox": {"endpoint": "http://127.0.0.1:5123", "running": True}, "outputs": {"region": "eu-west-1"}}
    lines = next_steps(info, "envctl")
    assert lines[1] == "  Airflow UI       http://127.0.0.1:49153  (again: envctl status fraud)"
    assert "--endpoint-url http://127.0.0.1:5123 --region eu-west-1 s3 ls" in lines[2]


def test_on_aws_the_ui_is_reached_through_connect():
    """On the aws target: `envctl connect`, and every command keeps --target aws; no sandbox line."""
    lines = next_steps({"team": "fraud", "target": "aws", "outputs": {}}, "envctl")
    assert lines[1] == "  Airflow UI       envctl connect fraud --target aws  (SSM port forwarding)"
    assert lines[-1] == "  destroy          envctl destroy fraud --target aws --yes"
    assert not any("sandbox" in line for line in lines)


def test_program_name_is_the_path_make_demo_used(monkeypatch, tmp_path):
    """Run as `.venv/bin/envctl` from the project (as `make demo` does), the steps say `.venv/bin/envctl`."""
    script = tmp_path / ".venv" / "bin" / "envctl"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "argv", [".venv/bin/envctl", "next-steps", "fraud"])
    assert program_name() == ".venv/bin/envctl"
    monkeypatch.setattr(sys, "argv", ["/usr/bin/python3", "-m", "pytest"])
    assert program_name() == "envctl"
