"""`envctl dags deploy|list|init` on the sandbox, through the engine's clients and the bucket policy."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from provisioner.cli.main import app
from tests.conftest import fraud_in_a_sandbox, sandbox_client

pytestmark = [pytest.mark.sandbox]

DAG = """from datetime import datetime
from airflow import DAG
from airflow.operators.empty import EmptyOperator

with DAG("{dag_id}", start_date=datetime(2026, 1, 1), schedule=None, tags=["t"], default_args={{"owner": "fraud"}}):
    EmptyOperator(task_id="noop")
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    with fraud_in_a_sandbox(tmp_path_factory) as root:
        yield root


@pytest.fixture
def runner(project, monkeypatch):
    monkeypatch.chdir(project)
    return CliRunner()


def listed(runner) -> dict[str, int]:
    result = runner.invoke(app, ["dags", "list", "fraud", "--json"])
    assert result.exit_code == 0, result.output
    return {item["name"]: item["size"] for item in json.loads(result.stdout)["files"]}


def deploy(runner, folder, *extra):
    return runner.invoke(app, ["dags", "deploy", "fraud", str(folder), "--check", "syntax", *extra])


def test_deploy_uploads_updates_deletes_and_says_so(runner, project, tmp_path):
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "fraud_a.py").write_text(DAG.format(dag_id="fraud_a"))
    (folder / "fraud_b.py").write_text(DAG.format(dag_id="fraud_b"))
    first = deploy(runner, folder)
    assert first.exit_code == 0, first.output
    assert "added    dags/fraud_a.py" in first.stdout and "added    dags/fraud_b.py" in first.stdout
    assert "syntax only (weaker" in first.stdout
    assert listed(runner) == {"fraud_a.py": len(DAG.format(dag_id="fraud_a")), "fraud_b.py": len(DAG.format(dag_id="fraud_b"))}
    outputs = json.loads(runner.invoke(app, ["outputs", "fraud", "--json"]).stdout)
    s3 = sandbox_client(project, "s3")
    head = s3.head_object(Bucket=outputs["bucket_name"], Key="dags/fraud_a.py")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == outputs["kms_key_arn"]

    (folder / "fraud_b.py").unlink()
    (folder / "fraud_a.py").write_text(DAG.format(dag_id="fraud_a") + "# changed\n")
    second = deploy(runner, folder)
    assert second.exit_code == 0, second.output
    assert "updated  dags/fraud_a.py" in second.stdout and "deleted  dags/fraud_b.py" in second.stdout
    assert set(listed(runner)) == {"fraud_a.py"}

    third = deploy(runner, folder, "--json")
    assert third.exit_code == 0, third.output
    assert json.loads(third.stdout)["added"] == [] and json.loads(third.stdout)["unchanged"] == 1
    assert "no change" in deploy(runner, folder).stdout


def test_a_broken_dag_exits_2_naming_file_and_line_and_uploads_nothing(runner, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "fraud_ok.py").write_text(DAG.format(dag_id="fraud_ok"))
    (folder / "zz_broken.py").write_text("from airflow import DAG\ndef broken(:\n")
    before = runner.invoke(app, ["dags", "list", "fraud"]).stdout
    result = deploy(runner, folder)
    assert result.exit_code == 2, result.output
    assert "zz_broken.py:2: SyntaxError" in result.output and "nothing was uploaded" in result.output
    assert runner.invoke(app, ["dags", "list", "fraud"]).stdout == before


def test_the_airflow_check_without_a_docker_engine_says_what_it_needs(runner, tmp_path, monkeypatch):
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "fraud_x.py").write_text(DAG.format(dag_id="fraud_x"))
    before = runner.invoke(app, ["dags", "list", "fraud"]).stdout
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    result = runner.invoke(app, ["dags", "deploy", "fraud", str(folder)])
    assert result.exit_code == 1, result.output
    assert "needs a Docker engine" in result.output and "--check syntax" in result.output
    monkeypatch.delenv("DOCKER_HOST")
    assert runner.invoke(app, ["dags", "list", "fraud"]).stdout == before


def test_init_writes_the_starter_and_refuses_to_overwrite(runner, tmp_path):
    target = tmp_path / "starter"
    first = runner.invoke(app, ["dags", "init", "fraud", str(target)])
    assert first.exit_code == 0, first.output
    workflow = (target / ".github" / "workflows" / "deploy.yml").read_text()
    outputs = json.loads(runner.invoke(app, ["outputs", "fraud", "--json"]).stdout)
    assert outputs["bucket_name"] in workflow and outputs["kms_key_arn"] in workflow
    assert (target / "tests" / "test_dag_integrity.py").is_file() and (target / "README.md").is_file()
    assert "has no deploy role" in first.output  # fraud's request has no deploy:
    again = runner.invoke(app, ["dags", "init", "fraud", str(target)])
    assert again.exit_code == 2 and "deploy.yml" in again.output and "--force" in again.output
    assert runner.invoke(app, ["dags", "init", "fraud", str(target), "--force"]).exit_code == 0


def test_an_unknown_team_or_folder_is_bad_input(runner, tmp_path):
    assert runner.invoke(app, ["dags", "list", "nobody"]).exit_code == 2
    assert runner.invoke(app, ["dags", "deploy", "fraud", str(tmp_path / "missing")]).exit_code == 2
