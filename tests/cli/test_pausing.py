"""envctl pause / resume on a sandbox without hosts: moto's instance really stops and starts, the endpoint
goes and comes back with its model and configuration kept, the notebook stops and starts, an update
keeps the pause, and status, list and cost say so."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from provisioner.cli.main import app
from provisioner.inference_image import default_image_tag
from tests.conftest import fraud_in_a_sandbox, record_pushed_image, sandbox_client

pytestmark = [pytest.mark.sandbox]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """fraud created in its own sandbox, with envctl's default image recorded so that it has an endpoint."""
    with fraud_in_a_sandbox(tmp_path_factory) as root:
        record_pushed_image(sandbox_client(root, "ecr"), "envctl-fraud", default_image_tag())
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(root)
            patch.setenv("ENVCTL_SANDBOX_HOSTS", "false")
            result = CliRunner().invoke(app, ["update", "fraud"])
        assert result.exit_code == 0, result.output
        yield root


@pytest.fixture
def runner(project, monkeypatch):
    monkeypatch.chdir(project)
    monkeypatch.setenv("ENVCTL_SANDBOX_HOSTS", "false")
    return CliRunner()


def host_state(project) -> str:
    ec2 = sandbox_client(project, "ec2")
    reservations = ec2.describe_instances(Filters=[
        {"Name": "tag:envctl:team", "Values": ["fraud"]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])["Reservations"]
    return " ".join(i["State"]["Name"] for r in reservations for i in r["Instances"])


def notebook_status(project) -> str:
    return sandbox_client(project, "sagemaker").describe_notebook_instance(
        NotebookInstanceName="envctl-fraud-notebook")["NotebookInstanceStatus"]


def endpoints(project) -> tuple[list[str], int, int]:
    sagemaker = sandbox_client(project, "sagemaker")
    names = [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]]
    return names, len(sagemaker.list_endpoint_configs()["EndpointConfigs"]), len(sagemaker.list_models()["Models"])


def status(runner) -> dict:
    result = runner.invoke(app, ["status", "fraud", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_pause_update_and_resume(runner, project):
    """One story, in order: running -> pause -> update keeps it paused -> pause again says so -> resume."""
    assert host_state(project) == "running" and notebook_status(project) == "InService"
    assert endpoints(project) == (["envctl-fraud"], 1, 1)
    assert status(runner)["paused"] is False

    paused = runner.invoke(app, ["pause", "fraud"])
    assert paused.exit_code == 0, paused.output
    assert "fraud is paused" in paused.stdout and "writing the pause record" in paused.stderr
    assert host_state(project) == "stopped" and notebook_status(project) == "Stopped"
    assert endpoints(project) == ([], 1, 1), "the endpoint goes; its configuration and model stay"
    report = status(runner)
    assert report["paused"] is True and report["paused_since"].endswith("Z")
    reasons = report["health_reasons"]
    assert report["health"] == "down" and len(reasons) == 1 and "paused since" in reasons[0], reasons
    assert "envctl resume fraud" in reasons[0]
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0 and "ok, paused" in listed.stdout, listed.output
    rows = json.loads(runner.invoke(app, ["list", "--json"]).stdout)
    assert [row["paused"] for row in rows if row["team"] == "fraud"] == [True]

    cost = runner.invoke(app, ["cost", "fraud", "--json"])
    assert cost.exit_code == 0, cost.output
    estimate = json.loads(cost.stdout)
    items = {item["item"]: item for item in estimate["items"]}
    assert estimate["paused"] is True and items["Airflow host"]["monthly_usd"] == 0
    assert items["data volume"]["monthly_usd"] > 0 and items["endpoint instances"]["monthly_usd"] == 0

    updated = runner.invoke(app, ["update", "fraud"])
    assert updated.exit_code == 0, updated.output
    assert host_state(project) == "stopped" and endpoints(project)[0] == [], "an update must not undo the pause"

    again = runner.invoke(app, ["pause", "fraud"])
    assert again.exit_code == 0 and "already paused" in again.stdout, again.output
    assert report["paused_since"] in again.stdout, "the pause keeps its first time"

    resumed = runner.invoke(app, ["resume", "fraud", "--json"])
    assert resumed.exit_code == 0, resumed.output
    outcome = json.loads(resumed.stdout)
    assert outcome["paused"] is False and outcome["paused_since"] == report["paused_since"]
    assert host_state(project) == "running" and notebook_status(project) == "InService"
    assert endpoints(project) == (["envctl-fraud"], 1, 1)
    assert status(runner)["paused"] is False
    assert json.loads(runner.invoke(app, ["cost", "fraud", "--json"]).stdout)["paused"] is False

    not_paused = runner.invoke(app, ["resume", "fraud"])
    assert not_paused.exit_code == 0 and "was not paused" in not_paused.stdout, not_paused.output


def test_pausing_an_unknown_team_is_bad_input(runner, project):
    result = runner.invoke(app, ["pause", "nosuchteam"])
    assert result.exit_code == 2 and "nosuchteam" in result.output


def test_pausing_a_team_without_an_environment_is_bad_input_and_writes_no_record(runner, project):
    result = runner.invoke(app, ["pause", "treasury"])
    assert result.exit_code == 2 and "no environment" in result.output, result.output
    names = [p["Name"] for p in sandbox_client(project, "ssm").describe_parameters()["Parameters"]]
    assert "/envctl-pause/treasury" not in names


def test_a_team_destroyed_while_paused_comes_back_running(runner, project):
    """The pause record goes with the environment: a later create starts the team running (last: destroys fraud)."""
    assert runner.invoke(app, ["pause", "fraud"]).exit_code == 0
    destroyed = runner.invoke(app, ["destroy", "fraud", "--yes"])
    assert destroyed.exit_code == 0, destroyed.output
    names = [p["Name"] for p in sandbox_client(project, "ssm").describe_parameters()["Parameters"]]
    assert "/envctl-pause/fraud" not in names
    created = runner.invoke(app, ["create", "fraud"])
    assert created.exit_code == 0, created.output
    assert host_state(project) == "running" and status(runner)["paused"] is False
