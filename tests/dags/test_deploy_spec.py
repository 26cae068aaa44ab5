"""`deploy:` in a request: a GitHub repository (and branch or environment) for the team's own CI."""

from __future__ import annotations

import pytest
import yaml

from provisioner.spec import validate_files
from tests.conftest import ROOT

FRAUD = yaml.safe_load((ROOT / "stacks" / "fraud.yaml").read_text())


def errors_of(tmp_path, deploy) -> list[str]:
    path = tmp_path / "fraud.yaml"
    path.write_text(yaml.safe_dump({**FRAUD, "deploy": deploy}))
    return validate_files([path], default_region="eu-west-1", pool="10.0.0.0/8", prefix=20, root=tmp_path)[1]


def test_a_repository_alone_deploys_from_main(tmp_path):
    path = tmp_path / "fraud.yaml"
    path.write_text(yaml.safe_dump({**FRAUD, "deploy": {"github": {"repository": "acme/fraud-dags"}}}))
    (resolved,), errors = validate_files([path], default_region="eu-west-1", pool="10.0.0.0/8", prefix=20, root=tmp_path)
    assert errors == []
    github = resolved.spec.deploy.github
    assert (github.repository, github.branch, github.environment) == ("acme/fraud-dags", "main", None)


@pytest.mark.parametrize("deploy, field, words", [
    ({"github": {"repository": "fraud-dags"}}, "deploy.github.repository", "must match"),
    ({"github": {"repository": "acme/fraud dags"}}, "deploy.github.repository", "must match"),
    ({"github": {"repository": "acme/x", "branch": "feature/*"}}, "deploy.github.branch", "must match"),
    ({"github": {"repository": "acme/x", "branch": "a..b"}}, "deploy.github.branch", "not a git branch name"),
    ({"github": {"repository": "acme/x", "environment": "prod env"}}, "deploy.github.environment", "must match"),
    ({"github": {"repository": "acme/x", "token": "x"}}, "deploy.github.token", "unknown field"),
    ({"gitlab": {"repository": "acme/x"}}, "deploy.gitlab", "unknown field"),
    ({}, "deploy.github", "missing"),
])
def test_a_wrong_deploy_field_is_named(tmp_path, deploy, field, words):
    errors = errors_of(tmp_path, deploy)
    assert any(e.startswith(f"fraud.yaml: {field}: ") and words in e for e in errors), errors
