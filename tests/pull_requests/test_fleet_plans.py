"""Fleet plans: a change to envctl's program, planned by comparing every team's offline run of the
change's code with the offline run of the merge base's code (real git repositories holding envctl's
code, real offline runs in worker processes), and the plan workflow that runs such a change without
AWS credentials."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from provisioner.cli.main import app
from provisioner.pull_requests.changes import PROGRAM_CHANGE, changed_requests
from provisioner.pull_requests.markdown import MARKDOWN_MARKER, render_markdown
from provisioner.pull_requests.plan import plan_requests
from provisioner.settings import load_settings
from tests.conftest import ROOT
from tests.fixtures.request_repos import add_program, commit_all, git, make_repo

TEAMS = ["finance-reports", "fraud", "treasury"]
COMPOSE = Path("templates") / "docker-compose.yml.j2"


@pytest.fixture(scope="module")
def program_repo(tmp_path_factory):
    """A project holding the example requests and envctl's code, on main; tests work on copies' branches."""
    root = tmp_path_factory.mktemp("fleet")
    repo = make_repo(root / "repo", root / "state")
    add_program(repo)
    return repo


def clone_of(program_repo: Path, clone: Path) -> Path:
    git(program_repo, "clone", "-q", str(program_repo), str(clone))
    git(clone, "config", "user.email", "test@example.com")
    git(clone, "config", "user.name", "test")
    git(clone, "checkout", "-q", "-b", "change")
    return clone


@pytest.fixture
def repo(program_repo, tmp_path, monkeypatch):
    monkeypatch.delenv("ENVCTL_CONFIG", raising=False)
    clone = clone_of(program_repo, tmp_path / "clone")
    monkeypatch.chdir(clone)
    return clone


@pytest.fixture(scope="module")
def template_plan(program_repo, tmp_path_factory):
    """The offline plan of a change to the compose template (one plan, read by several tests)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("ENVCTL_CONFIG", raising=False)
        clone = clone_of(program_repo, tmp_path_factory.mktemp("template") / "clone")
        change_compose(clone)
        return offline_plan(clone)


def offline_plan(repo: Path):
    settings = load_settings(cwd=repo)
    return plan_requests(settings, changed_requests(settings, "origin/main"), None, offline=True)


def change_compose(repo: Path) -> None:
    path = repo / COMPOSE
    text = path.read_text()
    changed = re.sub(r"^(\s*)(AIRFLOW__CORE__LOAD_EXAMPLES:.*)$", r"\1\2\n\1AIRFLOW__CORE__DEFAULT_TIMEZONE: utc", text,
                     count=1, flags=re.M)
    assert changed != text
    path.write_text(changed)
    commit_all(repo, "Airflow: UTC")


def test_a_template_change_replaces_every_teams_host(template_plan):
    plan = template_plan
    assert [(t.team, t.action, t.affected) for t in plan.teams] == [(team, PROGRAM_CHANGE, True) for team in TEAMS]
    for team in plan.teams:
        assert team.status == "ok", team.failure
        replaced = [c for c in team.changes if c.action == "replace"]
        assert [c.type for c in replaced] == ["aws:ec2/instance:Instance"], team.changes
        assert "userDataBase64" in replaced[0].detail
        assert team.summary["replace"] == 1 and team.summary["create"] == 0 and team.summary["delete"] == 0
        assert team.monthly_usd > 0 and team.monthly_usd_delta == 0
    assert {t.team: t.environment for t in plan.teams} == {"finance-reports": "dev", "fraud": "prod", "treasury": "prod"}
    fleet = plan.to_json()["fleet"]
    assert fleet["program_paths"] == [COMPOSE.as_posix()]
    assert (fleet["teams_total"], fleet["teams_affected"]) == (3, 3)
    assert sorted(r["team"] for r in fleet["replacements"]) == TEAMS
    assert fleet["data_touching"] == []  # offline ids are stable: the data volume's attachment keeps its instance id


def test_the_comment_starts_with_the_fleet_summary(template_plan):
    lines = render_markdown(template_plan).splitlines()
    assert lines[:3] == [MARKDOWN_MARKER, "## envctl plan", ""]
    assert lines[3].startswith("**Fleet change: 3 of 3 teams affected**")
    assert f"`{COMPOSE.as_posix()}`" in lines[3]
    replacements = lines.index("**Host and resource replacements (3)**")
    assert replacements < next(i for i, line in enumerate(lines) if line.startswith("Target "))
    listed = lines[replacements + 2:replacements + 5]
    for team, line in zip(TEAMS, listed, strict=True):
        assert line.startswith(f"- {team}: replace `aws:ec2/instance:Instance` {team}-airflow-instance")


def test_a_change_that_alters_nothing_affects_no_team(repo):
    path = repo / "provisioner" / "components" / "alerts.py"
    path.write_text("# a comment changes the code digest, not a single resource\n" + path.read_text())
    commit_all(repo, "a comment")
    plan = offline_plan(repo)
    assert plan.fleet is not None and plan.fleet.program_paths == ["provisioner/components/alerts.py"]
    assert [(t.team, t.affected, t.changes) for t in plan.teams] == [(team, False, []) for team in TEAMS]
    assert (plan.fleet.teams_total, plan.fleet.teams_affected, plan.fleet.replacements) == (3, 0, [])
    markdown = render_markdown(plan)
    assert "**Fleet change: 0 of 3 teams affected**" in markdown
    assert "Not affected (3): finance-reports, fraud, treasury" in markdown
    assert "### fraud" not in markdown and "Merging changes no team's resources." in markdown


def test_on_a_target_teams_the_change_does_not_affect_are_not_previewed(repo):
    """The sandbox engine for real: a plan in which no team is affected never starts its server."""
    from provisioner.engines.sandbox.engine import SandboxEngine

    path = repo / "provisioner" / "userdata.py"
    path.write_text("# a comment\n" + path.read_text())
    commit_all(repo, "a comment in the userdata code")
    settings = load_settings(cwd=repo)
    engine = SandboxEngine(settings)
    plan = plan_requests(settings, changed_requests(settings, "origin/main"), engine)
    assert plan.fleet is not None and plan.fleet.teams_affected == 0
    assert [(t.team, t.affected, t.summary.get("create")) for t in plan.teams] == [(team, False, 0) for team in TEAMS]
    assert all(t.note.startswith("not affected:") for t in plan.teams), [t.note for t in plan.teams]
    assert not (settings.sandbox_dir / "server.json").exists()  # nothing was previewed: the server never started


def test_the_change_s_code_runs_against_the_base_s_code(repo):
    """The head side is the project's working tree, the base side the merge base's code (git archive):
    a Python change to one resource's input shows as that resource's update, nothing else."""
    path = repo / "provisioner" / "components" / "alerts.py"
    text = path.read_text()
    assert text.count("evaluation_periods=") >= 1
    path.write_text(re.sub(r"evaluation_periods=(\w+)", r"evaluation_periods=(\1) + 1", text, count=1))
    commit_all(repo, "one more evaluation period")
    plan = offline_plan(repo)
    for team in plan.teams:
        assert team.affected and team.changes, team.team
        assert {(c.action, c.type) for c in team.changes} == {("update", "aws:cloudwatch/metricAlarm:MetricAlarm")}
        assert all("evaluationPeriods" in c.detail for c in team.changes)


def test_plan_offline_needs_no_target_and_no_credentials(repo, monkeypatch):
    change_compose(repo)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("ENVCTL_TARGET", "aws")  # the AWS target, which a plan on it would need credentials for
    result = CliRunner().invoke(app, ["plan", "--changed", "--base", "origin/main", "--offline", "--json",
                                      "--markdown", "plan.md"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["offline"] is True and plan["target"] == "offline"
    assert plan["fleet"]["teams_affected"] == 3
    assert all(t["affected"] and t["environment"] in ("dev", "prod") for t in plan["teams"])
    assert (repo / "plan.md").read_text().startswith(f"{MARKDOWN_MARKER}\n## envctl plan\n\n**Fleet change: 3 of 3")


# ---------------------------------------------------------------- the plan workflow


def workflow() -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / "plan.yml").read_text())


def test_the_plan_workflow_runs_program_changes_offline_without_credentials():
    doc = workflow()
    triggers = doc.get("on") or doc.get(True)  # YAML 1.1 reads the key `on` as True
    paths = triggers["pull_request"]["paths"]
    for program in ("provisioner/**", "templates/**", "userdata/**", "envctl.toml", "pyproject.toml", "stacks/**"):
        assert program in paths
    assert "id-token" not in doc.get("permissions", {})  # no job gets OIDC unless it asks for it itself
    offline = doc["jobs"]["offline"]
    assert offline["permissions"].get("id-token", "none") == "none"
    steps = offline["steps"]
    text = json.dumps(steps)
    assert "configure-aws-credentials" not in text and "secrets." not in text and "AWS_PLAN_ROLE_ARN" not in text
    runs = [s.get("run", "") for s in steps]
    assert any("envctl plan --changed" in r and "--offline" in r for r in runs)
    assert any("pip install" in r and "-e ." in r and "envctl-base" not in r for r in runs)  # the pull request's code
    env = {**doc.get("env", {}), **offline.get("env", {})}
    assert not any("secrets." in str(v) for v in env.values()), env


def test_the_online_plan_runs_the_pull_requests_code_only_for_same_repository_branches():
    jobs = workflow()["jobs"]
    online = jobs["plan"]
    assert online["permissions"]["id-token"] == "write"
    steps = online["steps"]
    install = [s for s in steps if "pip install" in s.get("run", "")]
    assert install, "the online job installs envctl"
    same_repo = "github.event.pull_request.head.repo.full_name == github.repository"
    for step in install:
        if "envctl-base" not in step["run"]:  # the pull request's own code: never for a fork
            assert same_repo in step.get("if", ""), step


def test_a_200_team_fleet_comment_fits_in_a_pull_request_comment():
    from provisioner.engines.base import ResourceChange
    from provisioner.pull_requests.markdown import MAX_COMMENT_CHARS
    from provisioner.pull_requests.plan import FleetSummary, Plan, TeamPlan

    def team_plan(index: int) -> TeamPlan:
        team = f"fleet-team-{index:03d}"
        changes = [ResourceChange(urn=f"urn:{team}:host", type="aws:ec2/instance:Instance", name=f"{team}-airflow-instance",
                                  action="replace", detail="replaced because of: userDataBase64")]
        changes += [ResourceChange(urn=f"urn:{team}:alarm{n}", type="aws:cloudwatch/metricAlarm:MetricAlarm",
                                   name=f"{team}-alarm-{n}", action="update", detail="changed: dimensions") for n in range(6)]
        return TeamPlan(team=team, action=PROGRAM_CHANGE, request=f"stacks/{team}.yaml", region="eu-west-1",
                        cidr=f"10.{index}.0.0/20", changes=changes, summary={"create": 0, "update": 6, "replace": 1, "delete": 0},
                        monthly_usd=266.0, monthly_usd_delta=0.0, environment="prod" if index % 2 else "dev")

    teams = [team_plan(index) for index in range(1, 201)]
    replacements = [{"team": t.team, "type": "aws:ec2/instance:Instance", "name": f"{t.team}-airflow-instance",
                     "detail": "replaced because of: userDataBase64"} for t in teams]
    plan = Plan(target="sandbox", teams=teams, errors=[], other_errors=[], base="main", merge_base="abc",
                fleet=FleetSummary(["templates/docker-compose.yml.j2"], 200, 200, replacements, []))
    text = render_markdown(plan)
    assert len(text) <= MAX_COMMENT_CHARS
    lines = text.splitlines()
    assert lines[3].startswith("**Fleet change: 200 of 200 teams affected**")
    assert "- replace `aws:ec2/instance:Instance` in 200 team(s): fleet-team-001, fleet-team-002" in text
    assert all(f"| {t.team} | {t.environment} |" in text for t in teams)  # every team is still listed, with its cost
    assert "### fleet-team-001" not in text and "summarised above to fit a pull-request comment" in text
