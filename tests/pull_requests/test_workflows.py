"""The apply and drift workflows' structure, parsed: the apply fans out as per-team matrix jobs in
waves (the planner's `envctl waves` output is the matrix, wave 2 needs wave 1, one concurrency group
per team, the tag moves only when every job succeeded); the drift workflow runs on a schedule with
read-only credentials and keeps one labelled issue up to date."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile

import yaml

from provisioner.pull_requests.waves import Wave
from tests.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def run_text(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_apply_plans_the_waves_then_runs_one_job_per_team_wave_after_wave():
    workflow = load("apply.yml")
    jobs = workflow["jobs"]
    assert list(jobs) == ["plan", "wave1", "wave2", "applied"]
    plan = jobs["plan"]
    assert "envctl waves --changed --base \"$BASE\" --json" in run_text(plan)
    for number, needs in ((1, "plan"), (2, ["plan", "wave1"])):
        job = jobs[f"wave{number}"]
        assert job["needs"] == needs
        assert job["strategy"]["matrix"] == f"${{{{ fromJSON(needs.plan.outputs.wave{number}) }}}}"
        assert job["strategy"]["fail-fast"] is False  # a failure never cancels another team's running apply
        assert "inputs.max_parallel" in job["strategy"]["max-parallel"]
        assert job["concurrency"] == {"group": "envctl-${{ matrix.team }}", "cancel-in-progress": False}
        assert plan["outputs"][f"wave{number}"] == f"${{{{ steps.waves.outputs.wave{number} }}}}"
        assert f"needs.plan.outputs.wave{number}_size != '0'" in job["if"]
        apply = run_text(job)
        assert 'flags=(--changed --base "$BASE" --team "$TEAM" --parallel 1)' in apply
        assert 'if [ "$ALLOW_DESTROY" = true ]; then flags+=(--allow-destroy); fi' in apply  # else removals are refused
    assert "needs.wave1.result == 'success' || needs.wave1.result == 'skipped'" in jobs["wave2"]["if"]
    applied = jobs["applied"]
    assert applied["needs"] == ["plan", "wave1", "wave2"]
    assert all(f"needs.{job}.result == 'success'" in applied["if"] for job in ("plan", "wave1", "wave2"))
    assert "failure" not in applied["if"] and "always()" not in applied["if"]
    assert 'git push --force origin "refs/tags/$APPLIED_TAG"' in run_text(applied)
    assert not any("APPLIED_TAG" in run_text(job) and "git push" in run_text(job) for name, job in jobs.items()
                   if name != "applied")
    assert workflow[True]["workflow_dispatch"]["inputs"]["allow_destroy"]["default"] is False  # `on:` parses as True
    assert {"provisioner/**", "templates/**", "userdata/**"} <= set(workflow[True]["push"]["paths"])


def test_the_planners_output_step_turns_envctl_waves_into_the_two_matrices():
    """The planner's inline script, run on `envctl waves --json` output: what the wave jobs' fromJSON reads."""
    step = next(s for s in load("apply.yml")["jobs"]["plan"]["steps"] if s.get("id") == "waves")
    script = re.search(r"<<'EOF'\n(.*?)\n\s*EOF", step["run"], re.S).group(1)
    dev = Wave(1, "dev", [], stop_at_first_failure=True)

    def outputs_of(teams: list[str]) -> subprocess.CompletedProcess:
        doc = {"waves": [{**dev.to_json(), "matrix": {"include": [{"team": team, "wave": 1} for team in teams]}}]}
        with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
            json.dump(doc, handle)
            handle.flush()
            return subprocess.run([sys.executable, "-", handle.name], input=script, capture_output=True, text=True)

    done = outputs_of(["a", "b"])
    assert done.returncode == 0, done.stderr
    outputs = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert json.loads(outputs["wave1"]) == {"include": [{"team": "a", "wave": 1}, {"team": "b", "wave": 1}]}
    assert outputs["wave1_size"] == "2"
    assert json.loads(outputs["wave2"]) == {"include": []} and outputs["wave2_size"] == "0"
    too_many = outputs_of([f"team{i}" for i in range(257)])
    assert too_many.returncode == 1 and "wave 1 has 257 teams; a matrix runs at most 256 jobs" in too_many.stderr


def test_drift_runs_daily_read_only_and_keeps_one_labelled_issue():
    workflow = load("drift.yml")
    triggers = workflow[True]
    assert triggers["schedule"][0]["cron"].split()[2:] == ["*", "*", "*"]  # every day
    assert "workflow_dispatch" in triggers
    assert workflow["permissions"] == {"contents": "read", "issues": "write", "id-token": "write"}
    [job] = workflow["jobs"].values()
    credentials = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials"))
    assert credentials["with"]["role-to-assume"] == "${{ secrets.AWS_DRIFT_ROLE_ARN }}"
    text = run_text(job)
    assert "envctl drift --json --markdown drift.md" in text
    assert 'gh label create "$DRIFT_LABEL" --force' in text and workflow["env"]["DRIFT_LABEL"] == "envctl-drift"
    assert 'gh issue list --label "$DRIFT_LABEL" --state open' in text
    assert 'gh issue edit "$number" --body-file drift.md' in text
    assert "gh issue create" in text and 'gh issue close "$number"' in text
    # create or update only when something drifted or failed; close only otherwise
    update = next(s for s in job["steps"] if "gh issue" in s.get("run", ""))["run"]
    assert update.index('if [ "$DRIFTED" != 0 ] || [ "$FAILED" != 0 ]') < update.index("gh issue create") \
        < update.index("elif") < update.index("gh issue close")
