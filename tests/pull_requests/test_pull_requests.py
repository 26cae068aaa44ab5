"""Requests by pull request, in the library: what a change touches (real git), notable changes,
the plan's Markdown (snapshots) and the apply's orchestration, against a stub engine.

The sandbox end to end (plan and apply through the CLI) is in tests/cli/test_plan_apply.py.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from provisioner.errors import InvalidInput, LockConflict
from provisioner.pull_requests.apply import apply_requests
from provisioner.pull_requests.batch import run_bounded
from provisioner.pull_requests.changes import CHANGE, NEW, PROGRAM_CHANGE, REMOVE, changed_requests, requests_at
from provisioner.pull_requests.markdown import render_markdown
from provisioner.pull_requests.notable import notable_changes
from provisioner.pull_requests.plan import plan_requests
from provisioner.settings import load_settings
from provisioner.spec import TeamSpec
from tests.conftest import ROOT
from tests.fixtures.stub_engine import StubEngine
from tests.fixtures.request_repos import commit_all, edit_request, git, make_repo, request_like, write_request

SNAPSHOTS = Path(__file__).parent / "snapshots"


def settings_for(repo: Path):
    return load_settings(cwd=repo)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.delenv("ENVCTL_CONFIG", raising=False)
    project = make_repo(tmp_path / "repo", tmp_path / "state")
    monkeypatch.chdir(project)
    git(project, "checkout", "-q", "-b", "change")
    return project


def teams_and_actions(change_set) -> list[tuple[str, str]]:
    return [(c.team, c.action) for c in change_set.changes]


# ---------------------------------------------------------------- what a change touches


def test_an_added_request_is_new(repo):
    write_request(repo, request_like("fraud", "newteam", cidr="10.250.0.0/24"))
    commit_all(repo, "request newteam")
    change_set = changed_requests(settings_for(repo), "main")
    assert teams_and_actions(change_set) == [("newteam", NEW)]
    assert change_set.merge_base == git(repo, "rev-parse", "main").strip()
    assert change_set.changes[0].old_text is None


def test_a_modified_request_is_a_change_with_its_old_version(repo):
    edit_request(repo, "treasury", airflow={"instance_type": "m6i.large"})
    commit_all(repo, "bigger host")
    change = changed_requests(settings_for(repo), "main").changes
    assert [(c.team, c.action) for c in change] == [("treasury", CHANGE)]
    assert "instance_type: t3.large" in change[0].old_text


def test_a_removed_request_is_a_removal(repo):
    git(repo, "rm", "-q", "stacks/fraud.yaml")
    commit_all(repo, "drop fraud")
    change_set = changed_requests(settings_for(repo), "main")
    assert teams_and_actions(change_set) == [("fraud", REMOVE)]
    assert change_set.changes[0].path == repo / "stacks" / "fraud.yaml"


def test_a_rename_to_another_team_removes_the_old_and_adds_the_new(repo):
    git(repo, "mv", "stacks/finance-reports.yaml", "stacks/finance-core.yaml")
    edit_request(repo, "finance-core", team="finance-core")
    commit_all(repo, "rename the team")
    assert teams_and_actions(changed_requests(settings_for(repo), "main")) == [("finance-core", NEW), ("finance-reports", REMOVE)]


def test_a_rename_that_keeps_the_team_is_a_change(repo):
    git(repo, "mv", "stacks/finance-reports.yaml", "stacks/finance-reports.yml")
    commit_all(repo, "yml")
    change = changed_requests(settings_for(repo), "main").changes
    assert [(c.team, c.action) for c in change] == [("finance-reports", CHANGE)]
    assert change[0].old_path.name == "finance-reports.yaml" and change[0].path.name == "finance-reports.yml"


def test_add_modify_rename_and_remove_in_one_change_list_exactly_those_teams(repo):
    write_request(repo, request_like("fraud", "newteam", cidr="10.250.0.0/24"))
    edit_request(repo, "treasury", budget_usd_month=900)
    git(repo, "mv", "stacks/finance-reports.yaml", "stacks/finance-reports.yml")
    commit_all(repo, "several")
    git(repo, "rm", "-q", "stacks/fraud.yaml")
    commit_all(repo, "and a removal")
    assert teams_and_actions(changed_requests(settings_for(repo), "main")) == [
        ("finance-reports", CHANGE), ("fraud", REMOVE), ("newteam", NEW), ("treasury", CHANGE)]


def test_a_program_change_puts_every_other_team_in_the_change_as_a_fleet_change(repo):
    (repo / "templates").mkdir()
    (repo / "templates" / "docker-compose.yml.j2").write_text("services: {}\n")
    commit_all(repo, "a template")
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "templates" / "docker-compose.yml.j2").write_text("services: {scheduler: {}}\n")
    edit_request(repo, "treasury", budget_usd_month=900)
    change_set = changed_requests(settings_for(repo), base)
    assert change_set.is_fleet and change_set.program_paths == ["templates/docker-compose.yml.j2"]
    assert teams_and_actions(change_set) == [
        ("finance-reports", PROGRAM_CHANGE), ("fraud", PROGRAM_CHANGE), ("treasury", CHANGE)]
    fraud = next(c for c in change_set.changes if c.team == "fraud")
    assert fraud.old_text == (repo / "stacks" / "fraud.yaml").read_text()


def test_a_change_outside_the_program_and_the_requests_is_no_fleet_change(repo):
    (repo / "README.md").write_text("notes\n")
    (repo / "templates").mkdir()
    (repo / "templates" / "__pycache__").mkdir()
    (repo / "templates" / "__pycache__" / "x.pyc").write_bytes(b"")
    change_set = changed_requests(settings_for(repo), "main")
    assert not change_set.is_fleet and change_set.changes == []


def test_settings_are_part_of_the_program(repo):
    (repo / "envctl.toml").write_text((repo / "envctl.toml").read_text() + 'team_prefix = 22\n')
    change_set = changed_requests(settings_for(repo), "main")
    assert change_set.program_paths == ["envctl.toml"]
    assert {c.action for c in change_set.changes} == {PROGRAM_CHANGE}


def test_uncommitted_and_untracked_requests_count(repo):
    edit_request(repo, "treasury", budget_usd_month=900)
    write_request(repo, request_like("finance-reports", "scratch", cidr="10.251.0.0/24"))
    assert teams_and_actions(changed_requests(settings_for(repo), "main")) == [("scratch", NEW), ("treasury", CHANGE)]


def test_the_change_is_measured_from_the_merge_base_not_the_tip_of_base(repo):
    edit_request(repo, "treasury", budget_usd_month=900)
    commit_all(repo, "mine")
    git(repo, "checkout", "-q", "main")
    edit_request(repo, "fraud", budget_usd_month=3000)
    commit_all(repo, "someone else's, merged meanwhile")
    git(repo, "checkout", "-q", "change")
    assert teams_and_actions(changed_requests(settings_for(repo), "main")) == [("treasury", CHANGE)]


def test_files_outside_the_request_folder_and_other_suffixes_are_ignored(repo):
    (repo / "stacks" / "README.md").write_text("notes\n")
    (repo / "stacks" / "archive").mkdir()
    (repo / "stacks" / "archive" / "old.yaml").write_text("team: old\n")
    (repo / "docs.yaml").write_text("x: 1\n")
    commit_all(repo, "noise")
    assert changed_requests(settings_for(repo), "main").changes == []


def test_a_bad_base_ref_is_invalid_input_with_one_line(repo):
    with pytest.raises(InvalidInput) as caught:
        changed_requests(settings_for(repo), "no-such-branch")
    assert "--base: 'no-such-branch' is not a commit" in caught.value.message
    assert "\n" not in caught.value.message
    with pytest.raises(InvalidInput, match="is not a git ref"):
        changed_requests(settings_for(repo), "--output=/tmp/x")


def test_outside_a_git_repository_is_invalid_input(tmp_path, monkeypatch):
    monkeypatch.delenv("ENVCTL_CONFIG", raising=False)
    project = tmp_path / "plain"
    project.mkdir()
    shutil.copytree(ROOT / "stacks", project / "stacks")
    (project / "envctl.toml").write_text('target = "sandbox"\n')
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    with pytest.raises(InvalidInput, match="is not inside a git repository"):
        changed_requests(load_settings(cwd=project), "main")


def test_explicit_paths_are_new_or_changed_by_the_target_and_missing_files_are_removals(repo):
    settings = settings_for(repo)
    change_set = requests_at(settings, [Path("stacks/fraud.yaml"), Path("stacks/treasury.yaml"), Path("stacks/gone.yaml")],
                             existing_teams={"treasury", "gone"})
    assert teams_and_actions(change_set) == [("fraud", NEW), ("gone", REMOVE), ("treasury", CHANGE)]
    with pytest.raises(InvalidInput, match="not a request file"):
        requests_at(settings, [Path("envctl.toml")], existing_teams=set())


# ---------------------------------------------------------------- notable changes


def spec_of(source: str, **changes) -> TeamSpec:
    return TeamSpec.model_validate(request_like(source, source, **changes))


def test_notable_changes_name_what_a_reviewer_looks_at():
    old = spec_of("fraud")
    new = spec_of("fraud", cidr="10.21.0.0/20", budget_usd_month=3000, owners=["ana.lopez@example.com"],
                  airflow={"instance_type": "m6i.xlarge", "volume_gb": 200, "version": "2.11.0"},
                  sagemaker={"notebook": {"enabled": False},
                             "inference": {"enabled": True, "serverless": {"memory_mb": 4096, "max_concurrency": 10}}},
                  secrets=["snowflake_password", "fx_feed_token"])
    assert notable_changes(old, new) == [
        "network.cidr: 10.20.0.0/20 -> 10.21.0.0/20",
        "airflow.version: 2.10.5 -> 2.11.0",
        "airflow.instance_type: m6i.large -> m6i.xlarge",
        "airflow.volume_gb: 100 GiB -> 200 GiB",
        "sagemaker.notebook: ml.t3.medium -> off",
        "sagemaker.inference: ml.m5.large x1, autoscaling 1-4 -> serverless 4096 MB, max concurrency 10",
        "secrets added: fx_feed_token",
        "secrets removed: partner_api_token",
        "other fields changed: budget_usd_month, owners",
    ]


def test_an_unchanged_request_has_no_notable_changes():
    assert notable_changes(spec_of("treasury"), spec_of("treasury")) == []


# ---------------------------------------------------------------- the plan and its Markdown


def assert_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing; run with UPDATE_SNAPSHOTS=1 once and review it"
    assert text == path.read_text(), (f"the Markdown differs from {path}; "
                                      "if intended, run with UPDATE_SNAPSHOTS=1 and review the diff")


def test_plan_markdown_snapshot_for_add_modify_rename_and_remove(repo):
    write_request(repo, request_like("fraud", "newteam", cidr="10.250.0.0/24"))
    edit_request(repo, "treasury", budget_usd_month=900, airflow={"instance_type": "m6i.large", "volume_gb": 80},
                 secrets=["bloomberg_api_key", "fx_feed_token"],
                 sagemaker={"inference": {"enabled": True, "serverless": {"memory_mb": 4096, "max_concurrency": 5}}})
    git(repo, "mv", "stacks/finance-reports.yaml", "stacks/finance-reports.yml")
    git(repo, "rm", "-q", "stacks/fraud.yaml")
    commit_all(repo, "a bit of everything")
    engine = StubEngine(stacks={"fraud": 52, "treasury": 43, "finance-reports": 39})
    plan = plan_requests(settings_for(repo), changed_requests(settings_for(repo), "main"), engine)
    assert [(t.team, t.action, t.status) for t in plan.teams] == [
        ("finance-reports", CHANGE, "ok"), ("fraud", REMOVE, "ok"), ("newteam", NEW, "ok"), ("treasury", CHANGE, "ok")]
    assert plan.exit_code == 0
    assert sorted(engine.calls) == [("preview", "finance-reports"), ("preview", "newteam"), ("preview", "treasury")]
    assert_snapshot("plan-changes.md", render_markdown(plan))


def test_plan_markdown_snapshot_with_invalid_requests_inline(repo):
    invalid = request_like("finance-reports", "gamma", cidr="10.252.0.0/24", airflow={"instance_type": "t2.nano"})
    write_request(repo, {**invalid, "colour": "blue"})
    write_request(repo, request_like("finance-reports", "delta", cidr="10.20.4.0/24"))  # inside fraud's network
    commit_all(repo, "two bad requests")
    engine = StubEngine()
    plan = plan_requests(settings_for(repo), changed_requests(settings_for(repo), "main"), engine)
    assert plan.exit_code == 2
    assert [(t.team, t.status) for t in plan.teams] == [("delta", "invalid"), ("gamma", "invalid")]
    assert engine.calls == []
    markdown = render_markdown(plan)
    assert "`stacks/gamma.yaml` · `airflow.instance_type`:" in markdown
    assert ("`stacks/fraud.yaml` · `network.cidr`: 10.20.0.0/20 overlaps 10.20.4.0/24 of team delta (stacks/delta.yaml)"
            in markdown)
    assert_snapshot("plan-invalid.md", markdown)


def test_plan_of_no_change_says_so(repo):
    plan = plan_requests(settings_for(repo), changed_requests(settings_for(repo), "main"), StubEngine())
    assert plan.teams == [] and plan.exit_code == 0
    assert "No request file changed." in render_markdown(plan)


def test_an_invalid_request_outside_the_change_still_fails_the_plan(repo):
    (repo / "stacks" / "fraud.yaml").write_text((repo / "stacks" / "fraud.yaml").read_text().replace("m6i.large", "t2.nano"))
    commit_all(repo, "broken on the base branch too")
    git(repo, "branch", "-f", "main", "HEAD")
    write_request(repo, request_like("finance-reports", "newteam", cidr="10.250.0.0/24"))
    plan = plan_requests(settings_for(repo), changed_requests(settings_for(repo), "main"), StubEngine())
    assert [t.team for t in plan.teams] == ["newteam"] and plan.teams[0].status == "ok"
    assert plan.exit_code == 2
    assert plan.other_errors and plan.other_errors[0].startswith("stacks/fraud.yaml: airflow.instance_type:")
    assert "### Other requests" in render_markdown(plan)


def _estimate_of(repo_or_text, team: str | None = None, region: str = "eu-west-1") -> float:
    from provisioner.cost import estimate, load_prices
    from provisioner.spec import ResolvedSpec

    text = repo_or_text if team is None else (repo_or_text / "stacks" / f"{team}.yaml").read_text()
    spec = TeamSpec.model_validate(yaml.safe_load(text))
    return estimate(ResolvedSpec(spec=spec, region=spec.region or region, cidr=""), load_prices()).monthly_usd


def test_plan_json_has_each_teams_monthly_cost_and_its_change_against_the_base(repo):
    fraud_before = (repo / "stacks" / "fraud.yaml").read_text()
    treasury_before = (repo / "stacks" / "treasury.yaml").read_text()
    write_request(repo, request_like("fraud", "newteam", cidr="10.250.0.0/24"))
    edit_request(repo, "treasury", airflow={"instance_type": "m6i.large", "volume_gb": 80})
    edit_request(repo, "finance-reports", owners=["someone-else@example.com"])  # costs the same
    git(repo, "rm", "-q", "stacks/fraud.yaml")
    commit_all(repo, "new, cost change, no cost change, removal")
    plan = plan_requests(settings_for(repo), changed_requests(settings_for(repo), "main"),
                         StubEngine(stacks={"fraud": 52, "treasury": 43, "finance-reports": 39}))
    teams = {t["team"]: t for t in plan.to_json()["teams"]}
    newteam = _estimate_of(repo, "newteam")
    assert teams["newteam"]["monthly_usd"] == newteam > 0 and teams["newteam"]["monthly_usd_delta"] == newteam
    treasury_now, treasury_then = _estimate_of(repo, "treasury"), _estimate_of(treasury_before)
    assert treasury_now > treasury_then
    assert teams["treasury"]["monthly_usd"] == treasury_now
    assert teams["treasury"]["monthly_usd_delta"] == round(treasury_now - treasury_then, 2)
    assert teams["finance-reports"]["monthly_usd"] == _estimate_of(repo, "finance-reports")
    assert teams["finance-reports"]["monthly_usd_delta"] == 0
    assert teams["fraud"]["monthly_usd"] == 0 and teams["fraud"]["monthly_usd_delta"] == -_estimate_of(fraud_before)
    assert teams["treasury"]["budget_usd_month"] == 800 and teams["treasury"]["cost_note"] == ""
    assert f"| treasury | change | `stacks/treasury.yaml` | 0 | 1 | 1 | 0 | {treasury_now:,.2f} | " \
           f"+{treasury_now - treasury_then:,.2f} | ready |" in render_markdown(plan)


def test_plan_warns_when_a_request_is_over_its_budget(repo):
    write_request(repo, request_like("fraud", "newteam", cidr="10.250.0.0/24", budget_usd_month=50))
    plan = plan_requests(settings_for(repo), changed_requests(settings_for(repo), "main"), StubEngine())
    team = plan.teams[0]
    assert team.monthly_usd > 50 and team.cost_note.startswith(f"the estimate ${team.monthly_usd:,.2f}/month is over")
    assert "budget $50/month · **the estimate" in render_markdown(plan)


def test_a_region_without_prices_is_shown_in_the_plan_not_costed_at_zero(repo):
    write_request(repo, request_like("finance-reports", "newteam", cidr="10.250.0.0/24", region="ap-south-1"))
    plan = plan_requests(settings_for(repo), changed_requests(settings_for(repo), "main"), StubEngine())
    team = plan.teams[0]
    assert team.status == "ok" and plan.exit_code == 0  # the preview still runs; the gap is reported
    assert team.monthly_usd is None and team.monthly_usd_delta is None
    assert team.cost_note.startswith("not estimated: provisioner/pricing/prices.json: region 'ap-south-1'")
    assert "**Cost**: not estimated: provisioner/pricing/prices.json: region 'ap-south-1'" in render_markdown(plan)


# ---------------------------------------------------------------- apply orchestration


def test_apply_refuses_a_removal_without_allow_destroy_and_touches_nothing(repo):
    git(repo, "rm", "-q", "stacks/fraud.yaml")
    edit_request(repo, "treasury", budget_usd_month=900)
    commit_all(repo, "drop fraud, change treasury")
    engine = StubEngine(stacks={"fraud": 52, "treasury": 43})
    results = apply_requests(settings_for(repo), changed_requests(settings_for(repo), "main"), engine,
                             rerun="envctl apply --changed --base main")
    assert [(r.team, r.outcome) for r in results] == [("fraud", "refused"), ("treasury", "ok")]
    assert "run `envctl apply --changed --base main --allow-destroy`" in results[0].message
    assert "restore stacks/fraud.yaml" in results[0].message
    assert ("destroy", "fraud") not in engine.calls and engine.stacks["fraud"] == 52


def test_apply_with_allow_destroy_destroys_only_the_removed_team(repo):
    git(repo, "rm", "-q", "stacks/fraud.yaml")
    commit_all(repo, "drop fraud")
    engine = StubEngine(stacks={"fraud": 52, "treasury": 43})
    results = apply_requests(settings_for(repo), changed_requests(settings_for(repo), "main"), engine, allow_destroy=True)
    assert [(r.team, r.outcome, r.summary["delete"]) for r in results] == [("fraud", "ok", 52)]
    assert engine.calls == [("destroy", "fraud")] and set(engine.stacks) == {"treasury"}


def test_a_removed_request_without_an_environment_is_nothing_to_destroy(repo):
    git(repo, "rm", "-q", "stacks/fraud.yaml")
    commit_all(repo, "drop fraud")
    results = apply_requests(settings_for(repo), changed_requests(settings_for(repo), "main"), StubEngine())
    assert [(r.team, r.outcome, r.message) for r in results] == [
        ("fraud", "ok", "no environment on this target: nothing to destroy")]


def test_one_teams_failure_does_not_stop_the_others(repo):
    for index, team in enumerate(("aa1", "bb2", "cc3")):
        write_request(repo, request_like("finance-reports", team, cidr=f"10.24{index}.0.0/24"))
    commit_all(repo, "three teams")
    engine = StubEngine(failures={"aa1": LockConflict("another envctl run (pid 42) is working on team aa1"),
                                  "bb2": RuntimeError("boom")})
    results = apply_requests(settings_for(repo), changed_requests(settings_for(repo), "main"), engine, parallel=2)
    assert [(r.team, r.outcome) for r in results] == [("aa1", "failed"), ("bb2", "failed"), ("cc3", "ok")]
    assert "another envctl run (pid 42)" in results[0].message
    assert results[1].message == "unexpected RuntimeError: boom"


def test_apply_runs_at_most_parallel_teams_at_once(repo):
    for index in range(6):
        write_request(repo, request_like("finance-reports", f"team{index}", cidr=f"10.24{index}.0.0/24"))
    commit_all(repo, "six teams")
    engine = StubEngine(delay_s=0.1)
    results = apply_requests(settings_for(repo), changed_requests(settings_for(repo), "main"), engine, parallel=3)
    assert all(r.outcome == "ok" for r in results) and len(results) == 6
    assert engine.most_at_once == 3


def test_apply_does_nothing_when_any_request_is_invalid(repo):
    write_request(repo, request_like("finance-reports", "good", cidr="10.250.0.0/24"))
    write_request(repo, request_like("finance-reports", "bad", cidr="10.251.0.0/24", budget_usd_month=1))
    commit_all(repo, "one good, one bad")
    engine = StubEngine()
    with pytest.raises(InvalidInput) as caught:
        apply_requests(settings_for(repo), changed_requests(settings_for(repo), "main"), engine)
    assert "nothing was applied" in caught.value.message
    assert caught.value.errors == ["stacks/bad.yaml: budget_usd_month: Input should be greater than or equal to 50"]
    assert engine.calls == []


def test_run_bounded_rejects_a_parallelism_out_of_range():
    with pytest.raises(InvalidInput, match="--parallel: 0"):
        run_bounded([1], lambda item: item, 0)
    assert run_bounded([], lambda item: item, 99) == []


def test_a_plan_of_every_request_previews_each_team(repo):
    settings = settings_for(repo)
    engine = StubEngine(stacks={"fraud": 52})
    paths = sorted((repo / "stacks").glob("*.yaml"))
    plan = plan_requests(settings, requests_at(settings, paths, {"fraud"}), engine)
    assert [(t.team, t.action) for t in plan.teams] == [("finance-reports", NEW), ("fraud", CHANGE), ("treasury", NEW)]
    assert replace(plan, teams=[]).exit_code == 0


def test_markdown_too_long_for_a_comment_leaves_out_the_resource_lists(repo, monkeypatch):
    from provisioner.pull_requests import markdown

    write_request(repo, request_like("finance-reports", "newteam", cidr="10.250.0.0/24"))
    plan = plan_requests(settings_for(repo), changed_requests(settings_for(repo), "main"), StubEngine())
    assert "<details>" in render_markdown(plan)
    monkeypatch.setattr(markdown, "MAX_COMMENT_CHARS", 500)
    short = render_markdown(plan)
    assert "<details>" not in short and "Resource lists are left out" in short
    assert "**Resources**: 3 to create" in short
