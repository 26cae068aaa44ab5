"""A team's first day on a sandbox host, as a person lives it (needs Docker and Chromium, ~10 min).

The module fixture does what the owner's platform colleague does: in a temporary copy of the project,
`envctl create fraud --hosts`, `envctl inference push`, `envctl dags init` and `envctl dags deploy`.
The test then is the owner: a real headless Chromium logs in to Airflow through the host's forwarded
port, finds the starter retraining DAG, unpauses and triggers it; the run trains in a local container
and promotes its model, and `envctl invoke` answers the starter's sample request from that model.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.fixtures.browser import chromium  # noqa: F401  (the fixture)
from tests.fixtures.inference_server import default_predictions

pytestmark = [pytest.mark.hosts, pytest.mark.docker]

TEAM = "fraud"
DAG_ID = f"{TEAM}_retrain"
DAG_LISTED_WITHIN_S = 420  # the sync timer runs every minute; the scheduler lists new files every 300 s
RUN_SUCCEEDS_WITHIN_S = 900  # training in a container, then the endpoint's update
ENVCTL = str(Path(sys.executable).with_name("envctl"))


@dataclass
class FirstDay:
    project: Path  # the temporary copy of the project the team was created in
    starter: Path  # what `envctl dags init` wrote
    airflow_url: str
    owner: str
    password: str

    def envctl(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return _envctl(self.project, *args, timeout=timeout)


def _envctl(project: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    env["ENVCTL_STATE_DIR"] = str(project / ".envctl")
    return subprocess.run([ENVCTL, *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(result: subprocess.CompletedProcess) -> str:
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{result.args[1:]} exited {result.returncode}:\n{output}"
    return result.stdout


def _copy_project(destination: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@pytest.fixture(scope="module")
def first_day(tmp_path_factory) -> FirstDay:
    from provisioner.local_images import connect_docker
    from provisioner.errors import MissingTool

    try:
        connect_docker()
    except MissingTool as exc:
        pytest.fail(f"the first-day test needs a Docker engine: {exc.message}")
    project = _copy_project(tmp_path_factory.mktemp("first-day"))
    try:
        _ok(_envctl(project, "create", TEAM, "--target", "sandbox", "--hosts", timeout=1200))
        _ok(_envctl(project, "inference", "push", TEAM))
        status = json.loads(_ok(_envctl(project, "status", TEAM, "--json")))
        starter = project / "starter"
        _ok(_envctl(project, "dags", "init", TEAM, str(starter)))
        _ok(_envctl(project, "dags", "deploy", TEAM, str(starter / "dags")))
        from provisioner.spec import load_team

        owner = load_team(TEAM, project / "stacks", default_region="eu-west-1", pool="10.0.0.0/8", prefix=20,
                          root=project).spec.owners[0]
        password = _ok(_envctl(project, "password", TEAM, "--owner", owner)).strip()
        yield FirstDay(project, starter, status["airflow_url"], owner, password)
    finally:
        _envctl(project, "destroy", TEAM, "--target", "sandbox", "--yes", "--delete-data")
        _envctl(project, "sandbox", "stop")


def _api_session(day: FirstDay):
    """The owner's session on Airflow's REST API (FAB's login form, as the browser posts it)."""
    web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = web.open(f"{day.airflow_url}/login/", timeout=30).read().decode()
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    web.open(f"{day.airflow_url}/login/", urllib.parse.urlencode(
        {"username": day.owner, "password": day.password, "csrf_token": csrf}).encode(), timeout=30)

    def get(path: str) -> dict:
        return json.loads(web.open(f"{day.airflow_url}/api/v1{path}", timeout=30).read().decode())
    return get


def test_an_owner_runs_the_starter_dag_in_the_ui_and_invokes_the_promoted_model(first_day, chromium):  # noqa: F811
    """Chromium: log in with the owner's e-mail and `envctl password`, see fraud_retrain in the DAG list,
    open it, unpause it, trigger it; the run succeeds (training included); then `envctl invoke` answers
    sample-request.json with predictions that are not the built-in weights' (the promoted model's)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    day = first_day
    browser = chromium
    browser.get(f"{day.airflow_url}/login/")
    browser.find_element(By.ID, "username").send_keys(day.owner)
    browser.find_element(By.ID, "password").send_keys(day.password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 30).until(until.title_contains("DAGs"))
    assert "/login" not in browser.current_url

    dag_link = (By.CSS_SELECTOR, f"strong[title='{DAG_ID}']")  # the DAG's name in the list, inside its link
    deadline = time.monotonic() + DAG_LISTED_WITHIN_S
    while not browser.find_elements(*dag_link):
        assert time.monotonic() < deadline, f"{DAG_ID} is not in the DAG list within {DAG_LISTED_WITHIN_S} s"
        time.sleep(10)
        browser.get(f"{day.airflow_url}/home")
    browser.find_element(*dag_link).click()
    WebDriverWait(browser, 30).until(until.presence_of_element_located((By.ID, "pause_resume")))
    assert f"/dags/{DAG_ID}/" in browser.current_url

    toggle = browser.find_element(By.ID, "pause_resume")
    if not toggle.is_selected():
        browser.find_element(By.CSS_SELECTOR, "label.switch-label").click()
    WebDriverWait(browser, 15).until(lambda _: browser.find_element(By.ID, "pause_resume").is_selected())
    api = _api_session(day)
    WebDriverWait(browser, 30, poll_frequency=2).until(lambda _: api(f"/dags/{DAG_ID}")["is_paused"] is False)

    # Airflow 2.10's play button posts the trigger form (its onclick); with show_trigger_form_if_no_params
    # it opens a menu whose "Trigger DAG" button does.
    browser.find_element(By.CSS_SELECTOR, "a[aria-label='Trigger DAG']").click()
    for menu_button in browser.find_elements(By.CSS_SELECTOR, "ul.trigger-dropdown-menu button.dropdown-form-btn"):
        if menu_button.is_displayed():
            menu_button.click()
    WebDriverWait(browser, 30, poll_frequency=2).until(lambda _: api(f"/dags/{DAG_ID}/dagRuns")["dag_runs"])
    [run] = api(f"/dags/{DAG_ID}/dagRuns")["dag_runs"]  # schedule=None: the UI's trigger is the only run
    assert run["run_type"] == "manual", run

    deadline = time.monotonic() + RUN_SUCCEEDS_WITHIN_S
    state = run["state"]
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(15)
        state = api(f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}")["state"]
    tasks = api(f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}/taskInstances")
    assert state == "success", {t["task_id"]: t["state"] for t in tasks["task_instances"]}
    browser.get(f"{day.airflow_url}/dags/{DAG_ID}/grid")  # the screenshot, if what follows fails, shows the run

    sample_path = day.starter / "sample-request.json"
    answer = json.loads(_ok(day.envctl("invoke", TEAM, "--data", str(sample_path), "--content-type", "application/json")))
    sample = json.loads(sample_path.read_text())
    predictions = answer["predictions"]
    assert len(predictions) == len(sample["instances"]) and all(isinstance(p, float) for p in predictions), answer
    built_in = default_predictions(sample["instances"])
    assert predictions != pytest.approx(built_in), f"the endpoint still serves the built-in weights: {predictions}"
