"""envctl backups / backup / restore on a sandbox without hosts: listing, and every refusal that
must come before anything runs (the runs themselves are in tests/engines/sandbox/test_hosts.py)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from provisioner.backups import BACKUP_PREFIX
from provisioner.cli.main import app
from tests.conftest import fraud_in_a_sandbox, sandbox_client

pytestmark = [pytest.mark.sandbox]

BACKUPS = ["20261121T020000Z", "20261122T020000Z"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project with fraud created in its own sandbox (no hosts) and two backups in its bucket."""
    with fraud_in_a_sandbox(tmp_path_factory) as root:
        s3, bucket = team_bucket(root)
        for name in BACKUPS:
            s3.put_object(Bucket=bucket, Key=f"{BACKUP_PREFIX}{name}.sql.gz", Body=b"\x1f\x8b dump of " + name.encode())
        yield root


@pytest.fixture
def runner(project, monkeypatch):
    monkeypatch.chdir(project)
    monkeypatch.setenv("ENVCTL_SANDBOX_HOSTS", "false")
    return CliRunner()


def team_bucket(project):
    s3 = sandbox_client(project, "s3")
    state = json.loads((project / ".envctl" / "sandbox" / "stacks" / "fraud.json").read_text())
    return s3, state["outputs"]["bucket_name"]


def _keys(project) -> list[str]:
    s3, bucket = team_bucket(project)
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=BACKUP_PREFIX).get("Contents", [])]


def test_backups_lists_the_dumps_in_the_team_bucket(runner, project):
    result = runner.invoke(app, ["backups", "fraud", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [b["name"] for b in report["backups"]] == BACKUPS
    assert report["bucket"] == team_bucket(project)[1]
    table = runner.invoke(app, ["backups", "fraud"])
    assert table.exit_code == 0 and BACKUPS[0] in table.stdout and "written" in table.stdout


def test_status_reports_the_backups(runner):
    result = runner.invoke(app, ["status", "fraud", "--json"])
    assert result.exit_code == 0, result.output
    backups = json.loads(result.stdout)["backups"]
    assert (backups["count"], backups["latest"], backups["stale"]) == (2, BACKUPS[-1], False)


@pytest.mark.parametrize("source, message", [
    ("20201122T020000Z", "has no such backup"),
    ("../../../etc/passwd", "not a backup name"),
])
def test_restore_of_an_unknown_backup_is_bad_input_and_changes_nothing(runner, project, source, message):
    before = _keys(project)
    result = runner.invoke(app, ["restore", "fraud", "--from", source, "--yes"])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "envctl backups fraud" in result.stderr
    assert _keys(project) == before


def test_restore_without_a_terminal_needs_yes(runner, project):
    result = runner.invoke(app, ["restore", "fraud", "--from", "latest"])
    assert result.exit_code == 2
    assert "restore fraud: confirmation needed; pass --yes" in result.stderr


def test_restore_needs_a_backup_to_be_named(runner):
    result = runner.invoke(app, ["restore", "fraud"])
    assert result.exit_code == 2 and "--from" in result.output


@pytest.mark.parametrize("command", [["backup", "fraud"], ["restore", "fraud", "--from", "latest", "--yes"]])
def test_without_a_sandbox_host_nothing_can_run_and_says_why(runner, project, command):
    before = _keys(project)
    result = runner.invoke(app, command)
    assert result.exit_code == 1, result.output
    assert "has no sandbox host" in result.stderr and "envctl create fraud --hosts" in result.stderr
    assert _keys(project) == before


def test_a_failed_script_is_summarised_by_its_error_and_last_steps():
    from provisioner.cli.backups import _last_lines

    output = ('envctl-restore: stopping airflow-scheduler\npsql:<stdin>:1: ERROR:  syntax error at or near "("\n'
              "LINE 1: CREATE TABLE x (;\n                       ^\nenvctl-restore: starting Airflow\n"
              "envctl-restore: Airflow is healthy\n")
    assert _last_lines(output) == ['psql:<stdin>:1: ERROR:  syntax error at or near "("', "LINE 1: CREATE TABLE x (;",
                                   "starting Airflow", "Airflow is healthy"]
