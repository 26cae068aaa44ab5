"""The envctl command line through typer's CliRunner: exit codes, messages, JSON on stdout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from provisioner.cli.main import app
from tests.conftest import ROOT


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A throw-away project: the example requests and envctl.toml, state under it."""
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks")
    shutil.copy(ROOT / "envctl.toml", tmp_path / "envctl.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENVCTL_CONFIG", raising=False)
    return tmp_path


def test_help_lists_the_lifecycle(runner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("create", "preview", "update", "destroy", "refresh", "outputs", "status", "list", "validate", "sandbox"):
        assert command in result.output


def test_validate_passes_on_the_examples(runner, project):
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.output
    assert "3 request(s) valid: finance-reports, fraud, treasury" in result.stdout
    assert "target sandbox" in result.stderr.splitlines()[0]


def test_validate_reports_every_error_with_file_and_field_and_exits_2(runner, project):
    path = project / "stacks" / "fraud.yaml"
    raw = yaml.safe_load(path.read_text())
    raw.update(not_a_field=1, airflow={**raw["airflow"], "instance_type": "t2.nano"})
    path.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 2
    assert "stacks/fraud.yaml: not_a_field: unknown field" in result.stderr
    assert "stacks/fraud.yaml: airflow.instance_type: 't2.nano' is not allowed; allowed: 't3.medium'" in result.stderr
    assert "Traceback" not in result.output


def test_validate_json(runner, project):
    result = runner.invoke(app, ["validate", "--json"])
    doc = json.loads(result.stdout)
    assert doc["valid"] is True and {t["team"] for t in doc["teams"]} == {"fraud", "treasury", "finance-reports"}


def test_unknown_team_is_bad_input(runner, project):
    result = runner.invoke(app, ["preview", "nosuchteam", "--offline"])
    assert result.exit_code == 2
    assert "no request for team 'nosuchteam'; known teams: finance-reports, fraud, treasury" in result.stderr


def test_invalid_target_is_bad_input(runner, project):
    result = runner.invoke(app, ["list", "--target", "gcp"])
    assert result.exit_code == 2
    assert "target: 'gcp' is not allowed; allowed: sandbox, aws" in result.stderr


def test_offline_preview_tree_and_json(runner, project):
    tree = runner.invoke(app, ["preview", "fraud", "--offline"])
    assert tree.exit_code == 0, tree.output
    assert "aws:ec2/instance:Instance" in tree.stdout and "fraud-network-vpc" in tree.stdout
    result = runner.invoke(app, ["preview", "fraud", "--offline", "--json"])
    doc = json.loads(result.stdout)
    instance = next(r for r in doc["resources"] if r["type"] == "aws:ec2/instance:Instance")
    assert instance["userData"].startswith("#!/bin/bash") and instance["parent"].endswith("AirflowHost::fraud-airflow")
    policies = [r for r in doc["resources"] if r["type"] == "aws:iam/rolePolicy:RolePolicy"]
    assert all(json.loads(p["inputs"]["policy"])["Statement"] for p in policies)


def test_destroy_without_confirmation_and_no_terminal_is_refused(runner, project):
    result = runner.invoke(app, ["destroy", "fraud"])
    assert result.exit_code == 2
    assert "pass --yes" in result.stderr


def test_settings_precedence_flag_over_env_over_file(project, monkeypatch):
    from provisioner.settings import load_settings

    (project / "envctl.toml").write_text('target = "aws"\nregion = "us-west-2"\n')
    assert load_settings({}).target == "aws"
    monkeypatch.setenv("ENVCTL_TARGET", "sandbox")
    assert load_settings({}).target == "sandbox"
    assert load_settings({"target": "aws"}).target == "aws"
    assert load_settings({}).region == "us-west-2"


def test_unknown_setting_in_envctl_toml_is_named(runner, project):
    (project / "envctl.toml").write_text('tagret = "aws"\n')
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 2 and "envctl.toml: tagret: unknown setting" in result.stderr


def test_aws_target_without_pulumi_cli_says_what_to_do(runner, project, monkeypatch):
    """No Pulumi CLI: one clear line that names the install and the sandbox alternative."""
    monkeypatch.setenv("PATH", str(project))  # nothing called pulumi here
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test")
    result = runner.invoke(app, ["preview", "fraud", "--target", "aws"])
    assert result.exit_code == 1
    assert "Pulumi CLI" in result.stderr and "--target sandbox" in result.stderr
    assert "Traceback" not in result.output


def test_light_commands_do_not_import_heavy_modules():
    """--help, validate and list stay fast: pulumi_aws, moto and docker are imported lazily."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from provisioner.cli.main import app\n"
        "for args in (['--help'], ['validate'], ['list']):\n"
        "    CliRunner().invoke(app, args)\n"
        "heavy = [m for m in ('pulumi_aws', 'moto', 'docker', 'pulumi', 'boto3') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_arns_print_as_they_are():
    """A Secrets Manager ARN (":secret:" in it) is printed verbatim, not turned into an emoji."""
    import io

    from provisioner.cli import output

    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:envctl/fraud/x-AbCdEf"
    console = output._console(file=io.StringIO())
    console.print(arn)
    assert console.file.getvalue().strip() == arn
