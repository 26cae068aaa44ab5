"""`envctl dags init`: the starter project is templates/starter/ rendered for the team."""

from __future__ import annotations

import pytest
import yaml

from provisioner.errors import InvalidInput
from provisioner.starter import STARTER, render_starter, starter_context, write_project

OUTPUTS = {
    "bucket_name": "envctl-fraud-123456789012-eu-west-1",
    "kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/abc",
    "ecr_repository_url": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/envctl-fraud",
    "sagemaker_role_arn": "arn:aws:iam::123456789012:role/envctl-fraud-sagemaker",
}
ROLE = "arn:aws:iam::123456789012:role/envctl-fraud-deploy"


@pytest.fixture
def context(resolved_spec):
    spec = resolved_spec(deploy={"github": {"repository": "acme/fraud-dags", "branch": "release"}})
    return starter_context(spec, {**OUTPUTS, "deploy_role_arn": ROLE})


def test_the_context_has_what_the_templates_are_promised(resolved_spec):
    context = starter_context(resolved_spec(), OUTPUTS)
    assert {"team", "region", "bucket", "dag_prefix", "airflow_version", "kms_key_arn", "deploy_role_arn",
            "ecr_repository_url", "endpoint_name"} <= set(context)
    assert context["deploy_role_arn"] is None and context["endpoint_name"] == "envctl-fraud"
    assert context["bucket"] == OUTPUTS["bucket_name"] and context["dag_prefix"] == "dags/"


def test_templates_are_rendered_and_team_placeholders_replaced(tmp_path):
    source = tmp_path / "starter"
    (source / "dags").mkdir(parents=True)
    (source / "dags" / "__team___hello.py.j2").write_text("DAG_ID = '{{ team }}_hello'  # {{ bucket }}\n")
    (source / "data.csv").write_text("a,b\n{{ not rendered }}\n")
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o755)
    files = {f.relative: f for f in render_starter({"team": "fraud", "bucket": "b1"}, source)}
    assert set(files) == {"dags/fraud_hello.py", "data.csv", "run.sh"}
    assert files["dags/fraud_hello.py"].content == b"DAG_ID = 'fraud_hello'  # b1\n"
    assert files["data.csv"].content == b"a,b\n{{ not rendered }}\n"
    assert files["run.sh"].executable and not files["data.csv"].executable


def test_an_undefined_name_fails_the_render_naming_the_template(tmp_path):
    (tmp_path / "x.txt.j2").write_text("line one\n{{ nowhere }}\n")
    with pytest.raises(InvalidInput) as failed:
        render_starter({"team": "fraud"}, tmp_path)
    assert "x.txt.j2" in failed.value.message and "nowhere" in failed.value.message


def test_existing_files_are_refused_by_name_and_nothing_is_written(tmp_path, context):
    files = render_starter(context)
    target = tmp_path / "project"
    (target / "tests").mkdir(parents=True)
    (target / "tests" / "test_dag_integrity.py").write_text("mine\n")
    with pytest.raises(InvalidInput) as refused:
        write_project(files, target, force=False)
    assert refused.value.exit_code == 2
    assert refused.value.errors == [str(target / "tests" / "test_dag_integrity.py")]
    assert sorted(p.name for p in target.rglob("*") if p.is_file()) == ["test_dag_integrity.py"]
    assert (target / "tests" / "test_dag_integrity.py").read_text() == "mine\n"
    write_project(files, target, force=True)
    assert (target / "tests" / "test_dag_integrity.py").read_text() != "mine\n"


def test_the_workflow_tests_then_deploys_with_the_team_role(tmp_path, context):
    write_project(render_starter(context), tmp_path, force=False)
    workflow = yaml.safe_load((tmp_path / ".github" / "workflows" / "deploy.yml").read_text())
    assert workflow[True]["push"]["branches"] == ["release"]  # PyYAML reads the key `on` as True
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    assert workflow["env"]["DEPLOY_ROLE_ARN"] == ROLE and workflow["env"]["KMS_KEY_ARN"] == OUTPUTS["kms_key_arn"]
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "test"
    steps = {step.get("uses", step.get("name")): step for step in deploy["steps"]}
    assert steps["aws-actions/configure-aws-credentials@v4"]["with"]["role-to-assume"] == "${{ env.DEPLOY_ROLE_ARN }}"
    sync = steps["Sync dags/ to the team's DAG prefix"]["run"]
    assert '--delete' in sync and '--sse aws:kms --sse-kms-key-id "${KMS_KEY_ARN}"' in sync
    assert "tests/" in workflow["jobs"]["test"]["steps"][-1]["run"]
    assert "acme/fraud-dags" in (tmp_path / "README.md").read_text()


def test_without_a_deploy_role_the_workflow_stops_with_a_message(tmp_path, resolved_spec):
    write_project(render_starter(starter_context(resolved_spec(), OUTPUTS)), tmp_path, force=False)
    workflow = yaml.safe_load((tmp_path / ".github" / "workflows" / "deploy.yml").read_text())
    assert workflow["env"]["DEPLOY_ROLE_ARN"] == ""
    first = workflow["jobs"]["deploy"]["steps"][0]
    assert first["if"] == "env.DEPLOY_ROLE_ARN == ''" and "exit 1" in first["run"]


def test_this_branch_writes_only_its_own_part_of_the_starter():
    """dags/ and sample-request.json belong to the retraining work; this part writes the rest."""
    mine = {p.relative_to(STARTER).as_posix() for p in STARTER.rglob("*") if p.is_file()}
    assert {"tests/test_dag_integrity.py", ".github/workflows/deploy.yml.j2", "README.md.j2"} <= mine
