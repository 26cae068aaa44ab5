"""Rollouts in waves (provisioner/pull_requests/waves.py, apply.rollout): a fleet change goes out dev
teams first, then prod, at most --parallel at once, stops at the first failure and resumes on a
re-run; a change of requests only runs every team to its own end. Real git repositories, a stub
engine (tests/fixtures/stub_engine.py) in place of AWS.
"""

from __future__ import annotations

import threading

import pytest

from provisioner.errors import InvalidInput
from provisioner.pull_requests.apply import only_teams, rollout, rollout_plan
from provisioner.pull_requests.changes import PROGRAM_CHANGE, changed_requests
from provisioner.settings import load_settings
from tests.fixtures.request_repos import commit_all, edit_request, git, make_repo, request_like, write_request
from tests.fixtures.stub_engine import StubEngine

EXAMPLES = {"finance-reports": "dev", "fraud": "prod", "treasury": "prod"}


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.delenv("ENVCTL_CONFIG", raising=False)
    project = make_repo(tmp_path / "repo", tmp_path / "state")
    monkeypatch.chdir(project)
    git(project, "checkout", "-q", "-b", "change")
    return project


def add_teams(repo, environment: str, names: list[str], first_cidr: int) -> None:
    for index, team in enumerate(names):
        write_request(repo, request_like("finance-reports", team, cidr=f"10.{first_cidr + index}.0.0/24",
                                         environment=environment))


def program_change(repo) -> str:
    """Commit a template, then change it (in the working tree): a fleet change against the returned base."""
    (repo / "templates").mkdir()
    (repo / "templates" / "docker-compose.yml.j2").write_text("services: {}\n")
    commit_all(repo, "a template")
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "templates" / "docker-compose.yml.j2").write_text("services: {scheduler: {}}\n")
    return base


class Recorder:
    """Progress lines and wave headers, in the order they came."""

    def __init__(self):
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def progress(self, message: str) -> None:
        with self._lock:
            self.lines.append(message)

    def wave(self, wave, count: int) -> None:
        self.progress(wave.title(count))


def first_and_last(lines: list[str], teams) -> tuple[int, int]:
    indexes = [i for i, line in enumerate(lines) if line.split(":", 1)[0] in teams]
    return indexes[0], indexes[-1]


def ups(engine) -> list[str]:
    return [team for operation, team in engine.calls if operation == "up"]


def test_a_fleet_change_rolls_out_dev_teams_before_prod(repo):
    add_teams(repo, "dev", ["dev-a", "dev-b"], 240)
    commit_all(repo, "two more dev teams")
    base = program_change(repo)
    settings = load_settings(cwd=repo)
    engine = StubEngine(stacks={team: 30 for team in (*EXAMPLES, "dev-a", "dev-b")})
    change_set = changed_requests(settings, base)
    assert change_set.is_fleet and {c.action for c in change_set.changes} == {PROGRAM_CHANGE}
    seen = Recorder()
    report = rollout(settings, change_set, engine, parallel=2, progress=seen.progress, on_wave=seen.wave)
    assert report.ok and report.fleet and not report.stopped_by
    assert [(w.environment, w.teams) for w in report.waves] == [
        ("dev", ["dev-a", "dev-b", "finance-reports"]), ("prod", ["fraud", "treasury"])]
    assert set(ups(engine)[:3]) == {"dev-a", "dev-b", "finance-reports"} and set(ups(engine)[3:]) == {"fraud", "treasury"}
    _, last_dev = first_and_last(seen.lines, {"dev-a", "dev-b", "finance-reports"})
    first_prod, _ = first_and_last(seen.lines, {"fraud", "treasury"})
    assert last_dev < seen.lines.index("wave 2 of 2 (prod teams): fraud, treasury") < first_prod
    assert seen.lines[0] == "wave 1 of 2 (dev teams): dev-a, dev-b, finance-reports"
    assert "fraud: applying (program)" in seen.lines and "fraud: applied (1 update, 1 replace)" in seen.lines
    assert [w["environment"] for w in report.to_json()["waves"]] == ["dev", "prod"]


def test_each_wave_works_on_at_most_parallel_teams_at_once(repo):
    add_teams(repo, "dev", [f"dev{i}" for i in range(5)], 240)
    commit_all(repo, "five more dev teams")
    base = program_change(repo)
    settings = load_settings(cwd=repo)
    engine = StubEngine(stacks={team: 30 for team in (*EXAMPLES, *(f"dev{i}" for i in range(5)))}, delay_s=0.05)
    report = rollout(settings, changed_requests(settings, base), engine, parallel=3)
    assert report.ok and len(report.results) == 8
    assert engine.most_at_once == 3
    assert set(ups(engine)[-2:]) == {"fraud", "treasury"}  # no prod team before every dev team ended


def test_the_first_failure_stops_the_rollout_and_a_rerun_resumes(repo):
    add_teams(repo, "dev", ["dev-a", "dev-b", "dev-c"], 240)
    commit_all(repo, "three more dev teams")
    base = program_change(repo)
    settings = load_settings(cwd=repo)
    engine = StubEngine(stacks={team: 30 for team in (*EXAMPLES, "dev-a", "dev-b", "dev-c")},
                        failures={"dev-b": RuntimeError("the host did not come back")})
    report = rollout(settings, changed_requests(settings, base), engine, parallel=1)
    outcomes = {r.team: r.outcome for r in report.results}
    assert outcomes == {"dev-a": "ok", "dev-b": "failed", "dev-c": "not started", "finance-reports": "not started",
                        "fraud": "not started", "treasury": "not started"}
    assert report.stopped_by == ["dev-b"] and not report.ok
    assert ups(engine) == ["dev-a", "dev-b"]
    messages = {r.team: r.message for r in report.results}
    assert messages["dev-c"] == "not started: dev-b failed first; re-run to resume"
    assert messages["fraud"].startswith("not started: the rollout stopped in an earlier wave (dev-b failed)")
    assert report.to_json()["stopped"] is True

    engine.failures.clear()  # fixed; the same apply again
    engine.calls.clear()
    again = rollout(settings, changed_requests(settings, base), engine, parallel=1)
    assert again.ok
    assert {r.team: r.message for r in again.results}["dev-a"] == "up to date"
    assert ("up (up to date)", "dev-a") in engine.calls and "dev-a" not in ups(engine)
    assert ups(engine) == ["dev-b", "dev-c", "finance-reports", "fraud", "treasury"]


def test_a_change_of_requests_runs_every_team_to_its_own_end_in_one_wave(repo):
    edit_request(repo, "fraud", budget_usd_month=3000)  # prod
    edit_request(repo, "finance-reports", budget_usd_month=900)  # dev
    edit_request(repo, "treasury", budget_usd_month=900)  # prod
    commit_all(repo, "budgets")
    settings = load_settings(cwd=repo)
    engine = StubEngine(stacks={team: 30 for team in EXAMPLES}, failures={"finance-reports": RuntimeError("boom")})
    report = rollout(settings, changed_requests(settings, "main"), engine, parallel=1)
    assert not report.fleet and [(w.environment, w.stop_at_first_failure) for w in report.waves] == [("all", False)]
    assert [(r.team, r.outcome) for r in report.results] == [
        ("finance-reports", "failed"), ("fraud", "ok"), ("treasury", "ok")]
    assert report.stopped_by == []


def test_a_program_team_without_an_environment_is_settled_outside_the_waves(repo):
    base = program_change(repo)
    settings = load_settings(cwd=repo)
    engine = StubEngine(stacks={"fraud": 30})
    report = rollout(settings, changed_requests(settings, base), engine)
    assert [(w.environment, w.teams) for w in report.waves] == [("prod", ["fraud"])]
    assert {r.team: r.message for r in report.results}["treasury"].startswith("no environment on this target")
    assert ups(engine) == ["fraud"]


def test_the_rollout_plan_is_one_actions_matrix_per_wave(repo):
    add_teams(repo, "dev", ["dev-a"], 240)
    commit_all(repo, "one more dev team")
    base = program_change(repo)
    settings = load_settings(cwd=repo)
    engine = StubEngine(stacks={team: 30 for team in ("dev-a", "finance-reports", "fraud")})
    plan = rollout_plan(settings, changed_requests(settings, base), engine)
    assert plan["fleet"] is True
    assert [(w["wave"], w["environment"], w["matrix"]) for w in plan["waves"]] == [
        (1, "dev", {"include": [{"team": "dev-a", "wave": 1}, {"team": "finance-reports", "wave": 1}]}),
        (2, "prod", {"include": [{"team": "fraud", "wave": 2}]})]
    assert [s["team"] for s in plan["settled"]] == ["treasury"]
    assert engine.calls == []  # planning touches no environment


def test_only_teams_narrows_the_change_to_a_matrix_jobs_team(repo):
    base = program_change(repo)
    change_set = changed_requests(load_settings(cwd=repo), base)
    assert [c.team for c in only_teams(change_set, ["fraud"]).changes] == ["fraud"]
    with pytest.raises(InvalidInput, match=r"--team: nosuch is not in this change; the teams it touches are: "
                                           r"finance-reports, fraud, treasury"):
        only_teams(change_set, ["nosuch"])


def test_a_progress_line_names_its_team_once():
    from provisioner.pull_requests.batch import team_progress

    seen = Recorder()
    report = team_progress(seen.progress, "fraud")
    report("fraud: same request and same envctl as the last apply, so nothing can change")
    report("applying (program)")
    assert seen.lines == ["fraud: same request and same envctl as the last apply, so nothing can change",
                          "fraud: applying (program)"]
