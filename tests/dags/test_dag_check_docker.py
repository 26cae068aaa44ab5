"""The DAG check in the team's Airflow image (Docker): Airflow 2.10.5's own DagBag, without network.

One module fixture makes sure the sandbox's Airflow image exists (the one sandbox hosts run; built
when missing, as `envctl create --hosts` does) and runs the check once over a folder with one DAG
of each kind of problem."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from provisioner import dag_check, dags
from provisioner.settings import load_settings
from provisioner.starter import STARTER
from tests.conftest import ROOT

pytestmark = [pytest.mark.docker]
VERSION = "2.10.5"

DAG = """from datetime import datetime
from airflow import DAG
from airflow.operators.empty import EmptyOperator
{extra}
with DAG({dag_id}, start_date=datetime(2026, 1, 1), schedule=None, tags=["t"], default_args={{"owner": "fraud"}}):
    a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b")
    {wiring}
"""
FOLDER = {
    "fraud_good.py": DAG.format(extra="import os\nfrom helpers import SUFFIX\n", dag_id='os.environ["ENVCTL_TEAM"] + SUFFIX',
                                wiring="a >> b"),
    "helpers.py": 'SUFFIX = "_good"\n',  # imported from the DAG folder, as on the host
    "zz_broken.py": "from airflow import DAG\ndef broken(:\n",
    "missing_import.py": "from airflow import DAG\n\nimport not_a_module_anywhere\n",
    "fraud_cycle.py": DAG.format(extra="", dag_id='"fraud_cycle"', wiring="a >> b >> a"),
    "sub/fraud_dup.py": DAG.format(extra="", dag_id='"fraud_good"', wiring="a >> b"),
    "reaches_out.py": ("from airflow import DAG\nimport urllib.request\n"
                       "urllib.request.urlopen('https://pypi.org/simple/', timeout=5)\n"),
}


def write(folder: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return {name: item.path for name, item in dags.local_files(folder).items()}


@pytest.fixture(scope="module")
def airflow_image():
    from provisioner import image_source
    from provisioner.engines.sandbox.images import built_refs, ensure_airflow_image
    from provisioner.local_images import connect_docker, image_exists

    client = connect_docker()
    source = image_source.resolve(client, image_source.DOCKER_HUB, lambda c: built_refs({VERSION}, c),
                                  exists=lambda ref: image_exists(client, ref), progress=print)
    return ensure_airflow_image(client, VERSION, source, print).local_ref


@pytest.fixture(scope="module")
def report(airflow_image, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dags")
    folder.chmod(0o700)  # private, as mktemp -d makes it: the check copies the files in
    return dag_check.check_with_airflow(write(folder, FOLDER), airflow_version=VERSION, candidates=[airflow_image],
                                        registry=image_source_registry(), environment={"ENVCTL_TEAM": "fraud"},
                                        progress=print)


def image_source_registry() -> str:
    return load_settings({"target": "sandbox"}, cwd=ROOT).image_registry


def test_the_sandbox_check_finds_the_image_its_hosts_run(airflow_image):
    from provisioner.local_images import connect_docker

    candidates = dag_check.airflow_images(load_settings({"target": "sandbox"}, cwd=ROOT), VERSION)
    assert dag_check.find_image(connect_docker(), candidates, image_source_registry(), print) == airflow_image


def test_dagbag_loads_the_good_dag_with_its_helper_and_the_team_environment(report):
    assert report.method.startswith(f"Airflow {VERSION}'s DagBag in ")
    assert report.dags == {"fraud_good": "fraud_good.py"}


def test_every_kind_of_problem_is_named_with_file_and_line(report):
    found = {problem.file: problem for problem in report.problems}
    assert set(found) == {"zz_broken.py", "missing_import.py", "fraud_cycle.py", "sub/fraud_dup.py", "reaches_out.py"}
    assert (found["zz_broken.py"].line, found["zz_broken.py"].message) == (2, "SyntaxError: invalid syntax")
    assert found["missing_import.py"].line == 3 and "not_a_module_anywhere" in found["missing_import.py"].message
    assert found["fraud_cycle.py"].line == 5 and "Cycle detected" in found["fraud_cycle.py"].message
    assert "AirflowDagDuplicatedIdException" in found["sub/fraud_dup.py"].message and found["sub/fraud_dup.py"].line == 5
    assert found["reaches_out.py"].line == 3  # --network none: DAG code that reaches out at parse time fails


def run_integrity_test(image: str, project: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "run", "--rm", "--network", "none", "--user", "0", "-v", f"{project}:/project:ro",
                           "-e", "AIRFLOW__CORE__LOAD_EXAMPLES=False", image,
                           "python", "/project/tests/test_dag_integrity.py"], capture_output=True, text=True, timeout=300)


def test_the_starter_integrity_test_passes_good_dags_and_fails_a_dag_without_owner(airflow_image, tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_dag_integrity.py").write_bytes((STARTER / "tests" / "test_dag_integrity.py").read_bytes())
    (tmp_path / "dags").mkdir()
    write(tmp_path / "dags", {"fraud_good.py": DAG.format(extra="", dag_id='"fraud_good"', wiring="a >> b")})
    tmp_path.chmod(0o755)
    good = run_integrity_test(airflow_image, tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok test_every_file_loads" in good.stdout and "ok test_each_dag_has_an_owner_and_tags" in good.stdout
    (tmp_path / "dags" / "fraud_nobody.py").write_text(
        DAG.format(extra="", dag_id='"fraud_nobody"', wiring="a >> b").replace(', default_args={"owner": "fraud"}', ""))
    unowned = run_integrity_test(airflow_image, tmp_path)
    assert unowned.returncode != 0 and "fraud_nobody: set default_args" in unowned.stderr
