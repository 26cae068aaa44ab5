"""The drift report in the library (provisioner/pull_requests/drift.py) against the stub engine: every
team with an environment refreshed, drifted teams with their resources, a failure and an environment
without a request reported, teams without an environment left alone. The sandbox end to end is in
tests/cli/test_plan_apply.py."""

from __future__ import annotations

import pytest

from provisioner.engines.base import ResourceChange
from provisioner.pull_requests.drift import check_drift, render_drift_markdown
from provisioner.settings import load_settings
from tests.fixtures.request_repos import make_repo
from tests.fixtures.stub_engine import StubEngine


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.delenv("ENVCTL_CONFIG", raising=False)
    project = make_repo(tmp_path / "repo", tmp_path / "state")
    monkeypatch.chdir(project)
    return load_settings(cwd=project)


def test_drift_refreshes_every_environment_and_reports_what_differs(settings):
    engine = StubEngine(stacks={"fraud": 30, "treasury": 30, "orphan": 5},
                        failures={"treasury": RuntimeError("the state is locked")})
    engine.drift["fraud"] = [
        ResourceChange(urn="urn:fraud:sg", type="aws:ec2/securityGroup:SecurityGroup", name="fraud-sg", action="update",
                       detail="ingress"),
        ResourceChange(urn="urn:fraud:vpc", type="aws:ec2/vpc:Vpc", name="fraud-vpc", action="same")]
    report = check_drift(settings, engine, parallel=2)
    assert [(t.team, t.status) for t in report.teams] == [("fraud", "drifted"), ("orphan", "no request"),
                                                          ("treasury", "failed")]
    assert sorted(engine.calls) == [("refresh", "fraud"), ("refresh", "treasury")]  # finance-reports has no environment
    doc = report.to_json()
    assert doc["drifted"] == ["fraud", "orphan"] and doc["failed"] == ["treasury"]
    assert doc["teams"][0]["changes"] == [{"type": "aws:ec2/securityGroup:SecurityGroup", "name": "fraud-sg",
                                           "action": "update", "detail": "ingress"}]
    assert report.teams[2].message == "unexpected RuntimeError: the state is locked"
    markdown = render_drift_markdown(report)
    assert "2 of 3 team(s) drifted, 1 could not be checked." in markdown
    assert "| fraud | drifted | 1 |" in markdown
    assert "- `aws:ec2/securityGroup:SecurityGroup` fraud-sg: update (ingress)" in markdown
    assert "`envctl apply stacks/fraud.yaml`" in markdown


def test_no_drift_is_every_team_in_sync(settings):
    report = check_drift(settings, StubEngine(stacks={"fraud": 30}))
    assert [(t.team, t.status, t.drifted) for t in report.teams] == [("fraud", "in sync", False)]
    assert report.drifted == [] and "0 of 1 team(s) drifted." in render_drift_markdown(report)
