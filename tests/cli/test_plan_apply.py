"""`envctl plan` and `envctl apply` end to end: real git repositories, the CLI, the sandbox.

One sandbox state for the module; two teams (alpha, beta) are created once and shared.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from provisioner.cli.main import app
from provisioner.engines.sandbox.engine import SandboxEngine
from provisioner.settings import load_settings
from tests.fixtures.request_repos import commit_all, edit_request, git, make_repo, request_like, write_request

pytestmark = [pytest.mark.sandbox]

ALPHA = request_like("finance-reports", "alpha", cidr="10.240.0.0/24")
BETA = request_like("finance-reports", "beta", cidr="10.241.0.0/24")
EXAMPLE_TEAMS = ("finance-reports", "fraud", "treasury")


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sandbox-state")


@pytest.fixture(scope="module")
def engine(state_dir, tmp_path_factory):
    engine = SandboxEngine(load_settings({"state_dir": str(state_dir), "target": "sandbox"},
                                         cwd=tmp_path_factory.mktemp("settings")))
    yield engine
    engine.server.stop()


def teams_in(engine: SandboxEngine) -> dict[str, int]:
    return {stack.team: stack.resources for stack in engine.list_stacks()}


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def created(tmp_path_factory, state_dir, engine):
    """alpha and beta requested in one change and applied, two at a time: the JSON result."""
    repo = make_repo(tmp_path_factory.mktemp("created") / "repo", state_dir)
    git(repo, "checkout", "-q", "-b", "request-two")
    write_request(repo, ALPHA)
    write_request(repo, BETA)
    commit_all(repo, "request alpha and beta")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("ENVCTL_CONFIG", raising=False)
        patch.chdir(repo)
        result = invoke("apply", "--changed", "--base", "main", "--parallel", "2", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def project(tmp_path, state_dir, monkeypatch):
    """A repository whose main branch already holds alpha and beta; on a fresh branch."""
    monkeypatch.delenv("ENVCTL_CONFIG", raising=False)
    repo = make_repo(tmp_path / "repo", state_dir, extra={"alpha": ALPHA, "beta": BETA})
    git(repo, "checkout", "-q", "-b", "change")
    monkeypatch.chdir(repo)
    return repo


def test_apply_creates_the_added_teams_in_the_sandbox(created, engine):
    assert created["ok"] is True and created["target"] == "sandbox"
    assert [(r["team"], r["action"], r["outcome"]) for r in created["results"]] == [("alpha", "new", "ok"), ("beta", "new", "ok")]
    assert all(r["summary"]["create"] > 20 for r in created["results"])
    stacks = teams_in(engine)
    assert {"alpha", "beta"} <= set(stacks) and not set(EXAMPLE_TEAMS) & set(stacks)
    assert engine.outputs("alpha")["vpc_id"]


def test_apply_updates_only_the_modified_team(created, project, engine):
    edit_request(project, "beta", airflow={"volume_gb": 40})
    commit_all(project, "more room for beta")
    result = invoke("apply", "--changed", "--base", "main", "--json")
    assert result.exit_code == 0, result.output
    [beta] = json.loads(result.stdout)["results"]
    assert (beta["team"], beta["action"], beta["outcome"]) == ("beta", "change", "ok")
    assert beta["summary"]["create"] == 0 and beta["summary"]["update"] + beta["summary"]["replace"] >= 1


def test_a_fleet_apply_goes_dev_then_prod_with_progress_lines_and_resumes_up_to_date(created, project, engine):
    """Before the removal test below: alpha (dev) and beta (made prod here) both have an environment."""
    edit_request(project, "beta", environment="prod")
    commit_all(project, "beta is a prod team")
    (project / "templates").mkdir()
    (project / "templates" / "settings.j2").write_text("a: 1\n")
    commit_all(project, "a template")
    base = git(project, "rev-parse", "HEAD").strip()
    (project / "templates" / "settings.j2").write_text("a: 2\n")  # a program change: every team is in it

    result = invoke("apply", "--changed", "--base", base, "--parallel", "1")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    wave_1 = lines.index("wave 1 of 2 (dev teams): alpha")
    wave_2 = lines.index("wave 2 of 2 (prod teams): beta")
    alpha = [i for i, line in enumerate(lines) if line.startswith("  alpha: ")]
    beta = [i for i, line in enumerate(lines) if line.startswith("  beta: ")]
    assert alpha and beta and wave_1 < alpha[0] and alpha[-1] < wave_2 < beta[0]
    assert "  alpha: up to date" in lines  # created earlier from the same request and the same envctl
    table = result.stdout.splitlines()
    assert table[0].split() == ["team", "action", "result", "created", "updated", "replaced", "deleted", "time"]
    assert {line.split()[0]: line.split()[2] for line in table[1:] if line.split()[:1] in (["alpha"], ["beta"])} == {
        "alpha": "ok", "beta": "ok"}

    again = invoke("apply", "--changed", "--base", base, "--json")
    assert again.exit_code == 0, again.output
    doc = json.loads(again.stdout)
    assert doc["fleet"] is True and doc["stopped"] is False
    assert [(w["environment"], w["teams"]) for w in doc["waves"]] == [("dev", ["alpha"]), ("prod", ["beta"])]
    assert {r["team"]: r["message"] for r in doc["results"] if r["team"] in ("alpha", "beta")} == {
        "alpha": "up to date", "beta": "up to date"}

    matrix = invoke("waves", "--changed", "--base", base, "--json")
    assert matrix.exit_code == 0, matrix.output
    assert [w["matrix"] for w in json.loads(matrix.stdout)["waves"]] == [
        {"include": [{"team": "alpha", "wave": 1}]}, {"include": [{"team": "beta", "wave": 2}]}]


def test_removal_is_refused_without_allow_destroy_then_destroys_only_that_team(created, project, engine):
    before = teams_in(engine)
    git(project, "rm", "-q", "stacks/alpha.yaml")
    commit_all(project, "alpha is done")

    refused = invoke("apply", "--changed", "--base", "main")
    assert refused.exit_code == 1
    assert "refused" in refused.stdout
    assert "envctl apply --changed --base main --allow-destroy" in refused.stdout
    assert "1 of 1 team(s) did not apply: alpha (refused)" in refused.stderr
    assert teams_in(engine) == before

    destroyed = invoke("apply", "--changed", "--base", "main", "--allow-destroy")
    assert destroyed.exit_code == 0, destroyed.output
    after = teams_in(engine)
    assert "alpha" not in after
    assert after == {team: count for team, count in before.items() if team != "alpha"}


def test_plan_previews_only_the_new_team_and_creates_nothing(project, engine):
    write_request(project, request_like("fraud", "newteam", cidr="10.250.0.0/24"))
    commit_all(project, "request newteam")
    result = invoke("plan", "--changed", "--base", "main", "--markdown", "plan.md", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert [(t["team"], t["action"], t["status"]) for t in plan["teams"]] == [("newteam", "new", "ok")]
    assert plan["teams"][0]["summary"]["create"] > 20
    cost = plan["teams"][0]["monthly_usd"]
    assert cost > 0 and plan["teams"][0]["monthly_usd_delta"] == cost  # a new team adds its whole estimate
    markdown = (project / "plan.md").read_text()
    assert "newteam" in markdown
    assert f"**Cost**: ${cost:,.2f}/month (+${cost:,.2f} against the base)" in markdown
    assert not [team for team in ("alpha", "beta", *EXAMPLE_TEAMS) if team in markdown]
    assert "newteam" not in teams_in(engine)


def test_an_invalid_request_makes_plan_exit_2_and_apply_do_nothing(project, engine):
    before = teams_in(engine)
    write_request(project, request_like("finance-reports", "gamma", cidr="10.252.0.0/24", airflow={"instance_type": "t2.nano"}))
    write_request(project, request_like("finance-reports", "delta", cidr="10.253.0.0/24"))
    commit_all(project, "one bad, one good")

    plan = invoke("plan", "--changed", "--base", "main", "--markdown", "plan.md")
    assert plan.exit_code == 2
    assert "stacks/gamma.yaml: airflow.instance_type:" in plan.stdout
    assert "`stacks/gamma.yaml` · `airflow.instance_type`" in (project / "plan.md").read_text()

    apply = invoke("apply", "--changed", "--base", "main")
    assert apply.exit_code == 2
    assert "nothing was applied" in apply.stderr and "stacks/gamma.yaml: airflow.instance_type:" in apply.stderr
    assert teams_in(engine) == before


def test_git_problems_are_one_line_and_exit_2(project):
    result = invoke("plan", "--changed", "--base", "no-such-branch")
    assert result.exit_code == 2
    assert "--base: 'no-such-branch' is not a commit" in result.stderr and "Traceback" not in result.output
    assert invoke("apply", "--changed").exit_code == 2
    assert invoke("plan", "--base", "main").exit_code == 2


def test_drift_reports_a_resource_deleted_behind_envctls_back_and_an_apply_puts_it_back(created, project, engine):
    """The sandbox's refresh notices resources that vanished (it does not compare settings such as tags)."""
    state = engine.store.load("beta")
    [group] = [r for r in state.resources.values() if r.type == "aws:cloudwatch/logGroup:LogGroup"][:1]
    logs = engine.aws_client("logs", state.region)
    logs.delete_log_group(logGroupName=group.id)

    result = invoke("drift", "--json", "--markdown", "drift.md")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["drifted"] == ["beta"] and report["failed"] == []
    [beta] = [t for t in report["teams"] if t["team"] == "beta"]
    assert beta["changes"] == [{"type": "aws:cloudwatch/logGroup:LogGroup", "name": group.name, "action": "delete",
                                "detail": "gone from the sandbox"}]
    assert all(t["status"] == "in sync" for t in report["teams"] if t["team"] != "beta")
    body = (project / "drift.md").read_text()
    assert "| beta | drifted | 1 |" in body and f"`aws:cloudwatch/logGroup:LogGroup` {group.name}: delete" in body

    repaired = invoke("apply", "stacks/beta.yaml", "--json")
    assert repaired.exit_code == 0, repaired.output
    assert json.loads(repaired.stdout)["results"][0]["summary"]["create"] >= 1
    assert logs.describe_log_groups(logGroupNamePrefix=group.id)["logGroups"]
    again = invoke("drift", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["drifted"] == []
