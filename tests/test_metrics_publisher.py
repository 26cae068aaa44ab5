"""The host's metrics publisher (templates/envctl-metrics.py.j2) as the bootstrap installs it: shipped through
SSM with its SHA-256 in the userdata, run here against stand-ins for its two boundaries, `psql` in the postgres
container (envctl-compose) and the AWS CLI, which record what they are asked and answer as told."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import py_compile
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from provisioner.backups import BACKUP_PREFIX
from provisioner.components.metrics import TEAM_METRICS
from provisioner.components.names import TeamNames
from provisioner.userdata import (
    BACKUP_PREFIX as USERDATA_BACKUP_PREFIX,
    SCHEDULED_JOBS,
    SSM_STANDARD_LIMIT,
    render_userdata,
    shipped_host_files,
    unpack_host_file,
)
from tests.fixtures.userdata import embedded_files, typical

PARAMETER = TeamNames("fraud").host_file_parameter("envctl-metrics")

# The AWS CLI: records each call (and put-metric-data's data file); list-objects-v2 answers $LISTING;
# put-metric-data fails when $PUT_FAILS is set, as the CLI does on a refusal.
FAKE_AWS = """#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
entry = {"args": args}
if "--metric-data" in args:
    entry["data"] = json.load(open(args[args.index("--metric-data") + 1].removeprefix("file://")))
with open(os.environ["CALLS"], "a") as out:
    out.write(json.dumps(entry) + "\\n")
if args[:2] == ["cloudwatch", "put-metric-data"] and os.environ.get("PUT_FAILS"):
    sys.exit("An error occurred (AccessDenied) when calling the PutMetricData operation: not authorized")
if args[:2] == ["s3api", "list-objects-v2"]:
    print(os.environ.get("LISTING", "null"))
"""
# envctl-compose: records its arguments (the SQL is the last) and prints $PSQL_OUTPUT, or fails with $PSQL_FAILS.
FAKE_COMPOSE = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["CALLS"], "a") as out:
    out.write(json.dumps({"compose": sys.argv[1:]}) + "\\n")
if os.environ.get("PSQL_FAILS"):
    sys.exit(os.environ["PSQL_FAILS"])
print(os.environ["PSQL_OUTPUT"])
"""


def script_text() -> str:
    return unpack_host_file(shipped_host_files("fraud")[PARAMETER])


class Host:
    """The publisher loaded as a module, its paths in a temporary directory, the stand-ins on PATH."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        path = tmp_path / "envctl_metrics.py"
        path.write_text(script_text())
        spec = importlib.util.spec_from_file_location("envctl_metrics", path)
        self.module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for name, text in (("aws", FAKE_AWS), ("envctl-compose", FAKE_COMPOSE)):
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        self.calls_file = tmp_path / "calls.jsonl"
        self.cursor = tmp_path / "state" / "metrics" / "cursor"
        (tmp_path / "data").mkdir()
        self.module.CURSOR, self.module.DATA = str(self.cursor), str(tmp_path / "data")
        self.module.COMPOSE = str(bin_dir / "envctl-compose")
        self.monkeypatch = monkeypatch
        monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
        monkeypatch.setenv("CALLS", str(self.calls_file))

    def run(self, psql_output: str = "", **env: str) -> int:
        self.calls_file.unlink(missing_ok=True)
        self.monkeypatch.setenv("PSQL_OUTPUT", psql_output)
        for name in ("PSQL_FAILS", "PUT_FAILS", "LISTING"):
            self.monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        return self.module.main("envctl/fraud", "envctl-fraud-bucket")

    @property
    def calls(self) -> list[dict]:
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]

    @property
    def sql(self) -> str:
        (compose,) = [call["compose"] for call in self.calls if "compose" in call]
        assert compose[:6] == ["exec", "-T", "postgres", "psql", "-U", "airflow"]
        return compose[-1]

    @property
    def sent(self) -> dict[str, float]:
        """What the put sent, by metric name (each with its unit checked against TEAM_METRICS)."""
        (put,) = [call for call in self.calls if call.get("args", [])[:2] == ["cloudwatch", "put-metric-data"]]
        assert put["args"][2:4] == ["--namespace", "envctl/fraud"]
        units = {metric.name: metric.unit for metric in TEAM_METRICS.values()}
        assert all(datum["Unit"] == units[datum["MetricName"]] for datum in put["data"])
        return {datum["MetricName"]: datum["Value"] for datum in put["data"]}


@pytest.fixture
def host(tmp_path, monkeypatch) -> Host:
    return Host(tmp_path, monkeypatch)


# --- the file and how it reaches the host ------------------------------------------------------


def test_the_rendered_script_compiles_for_the_hosts_python(tmp_path):
    """py_compile, and Python 3.9's grammar (Amazon Linux 2023's python3); stdlib imports only."""
    path = tmp_path / "envctl-metrics"
    path.write_text(script_text())
    py_compile.compile(str(path), doraise=True)
    tree = ast.parse(script_text(), feature_version=(3, 9))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


def test_it_publishes_every_team_metric_with_its_unit():
    """The names and units come from TEAM_METRICS, the ones the alarms and the health verdict read."""
    text = script_text()
    for key, metric in TEAM_METRICS.items():
        assert f'"{key}": ("{metric.name}", "{metric.unit}")' in text


@pytest.mark.parametrize("airflow_version", ["2.10.5", "3.1.0"])
def test_the_userdata_fetches_it_from_ssm_and_checks_its_sha256(airflow_version):
    """The parameter fits SSM's standard tier; the userdata names it and carries the SHA-256 of its unpacked
    content, and the fetch step installs it only after `sha256sum -c`."""
    (name, value), = shipped_host_files("fraud").items()
    assert name == "/envctl/fraud/host/envctl-metrics" and len(value) <= SSM_STANDARD_LIMIT
    script = render_userdata(typical(airflow_version=airflow_version))
    assert f"ENVCTL_METRICS_PARAMETER={name}\n" in script
    assert f"ENVCTL_METRICS_SHA256={hashlib.sha256(script_text().encode()).hexdigest()}\n" in script
    fetch = script[script.index("fetch_host_file() {"):]
    assert fetch.index("sha256sum -c") < fetch.index('install_file "$3" "$4"')
    assert 'fetch_host_file "$ENVCTL_METRICS_PARAMETER" "$ENVCTL_METRICS_SHA256" /usr/local/sbin/envctl-metrics 0755' in script
    assert "/usr/local/sbin/envctl-metrics" not in embedded_files(script)  # not embedded as well


def test_a_run_of_the_fetch_refuses_a_file_with_another_sha256(tmp_path):
    """The fetch function, run with a stand-in `aws` answering a tampered value, dies before installing it."""
    script = render_userdata(typical())
    function = script[script.index("ssm_value() {"):script.index("fetch_host_file \"$ENVCTL")]
    (_, value), = shipped_host_files("fraud").items()
    tampered = unpack_host_file(value).replace("HEARTBEAT_SECONDS = 60", "HEARTBEAT_SECONDS = 6")
    import base64
    import gzip

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(f"#!/bin/sh\necho {base64.b64encode(gzip.compress(tampered.encode())).decode()}\n")
    (bin_dir / "aws").chmod(0o755)
    good = hashlib.sha256(script_text().encode()).hexdigest()
    probe = ("retry() { shift; \"$@\"; }\ndie() { echo \"DIED: $*\"; exit 9; }\n"
             "install_file() { cat >\"$1\"; echo INSTALLED; }\n" + function
             + f'fetch_host_file /p {good} "{tmp_path}/installed" 0755\n')
    result = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert result.returncode == 9 and "DIED: /p: the file's SHA-256" in result.stdout, result.stdout + result.stderr
    assert "INSTALLED" not in result.stdout and not (tmp_path / "installed").exists()


def test_envctl_job_runs_it_every_minute_and_sends_only_what_it_prints():
    """The metrics timer runs `envctl-job metrics` each minute; the job passes the team namespace and bucket from
    host.env and, like the other frequent jobs, ships a run only when it failed or printed something."""
    assert SCHEDULED_JOBS["metrics"] == "*-*-* *:*:45"
    script = render_userdata(typical())
    files = embedded_files(script)
    job = files["/usr/local/sbin/envctl-job"]
    assert 'metrics) /usr/local/sbin/envctl-metrics "$METRICS_NAMESPACE" "$BUCKET" ;;' in job
    assert '[ "$1" != metrics ]' in job
    assert "Unit=envctl-job@metrics.service" in files["/etc/systemd/system/envctl-metrics.timer"]
    assert "METRICS_NAMESPACE=envctl/fraud\n" in script
    declare = script[script.index("declare -p TEAM"):].split("| install_file /etc/envctl/host.env", 1)[0]
    assert "METRICS_NAMESPACE" in declare.split() and "BUCKET" in declare.split()
    assert "envctl-metrics.timer" in script[script.index("systemctl enable --now"):]


def test_the_backup_prefix_is_the_one_envctl_backup_lists():
    assert USERDATA_BACKUP_PREFIX == BACKUP_PREFIX
    assert f'BACKUP_PREFIX = "{BACKUP_PREFIX}"' in script_text()


# --- what a run sends -----------------------------------------------------------------------------


def test_the_first_run_starts_the_window_at_its_own_end(host):
    """No cursor yet: the window is empty (low = high), counts are 0, the cursor becomes the window's end."""
    assert host.run("1733150000.250000|1|0|0|0") == 0
    assert "w.high AS low" in host.sql and "to_timestamp" not in host.sql
    assert host.sent == {"SchedulerHeartbeat": 1, "DagRunFailed": 0, "DagRunSucceeded": 0, "TaskFailed": 0,
                         "DataVolumeUsedPercent": host.sent["DataVolumeUsedPercent"]}
    assert host.cursor.read_text() == "1733150000.250000\n"


def test_a_later_run_counts_what_ended_since_the_cursor(host):
    """The next window starts at the cursor: the counts are what the database found there, and the cursor moves."""
    host.run("100.5|1|0|0|0")
    assert host.run("160.5|1|2|3|4") == 0
    assert "to_timestamp(100.500000) AS low" in host.sql
    assert "end_date > w.low AND end_date <= w.high" in host.sql
    sent = host.sent
    assert (sent["DagRunFailed"], sent["DagRunSucceeded"], sent["TaskFailed"]) == (2, 3, 4)
    assert host.cursor.read_text() == "160.500000\n"


def test_the_queries_read_the_tables_of_both_airflow_majors(host):
    """`job` (SchedulerJob, running, heartbeat under 60 s), `dag_run` by state, `task_instance` failed; the window
    ends 30 s before the database's now."""
    host.run("1.0|0|0|0|0")
    sql = host.sql
    assert ("FROM job WHERE job_type = 'SchedulerJob' AND state = 'running' "
            "AND latest_heartbeat > now() - interval '60 seconds'") in sql
    assert "FROM dag_run WHERE state = 'failed'" in sql and "FROM dag_run WHERE state = 'success'" in sql
    assert "FROM task_instance WHERE state = 'failed'" in sql
    assert "now() - interval '30 seconds' AS high" in sql


def test_a_stale_heartbeat_sends_zero(host):
    host.run("1.0|0|0|0|0")
    assert host.sent["SchedulerHeartbeat"] == 0


def test_a_database_that_does_not_answer_sends_heartbeat_zero_and_keeps_the_counts_for_later(host):
    """psql fails: SchedulerHeartbeat 0, no counts sent, the cursor stays (the next run counts the endings), and the
    run prints why and exits 1 (envctl-job then ships its output)."""
    host.run("100.0|1|0|0|0")
    assert host.run(PSQL_FAILS="psql: error: connection to server failed") == 1
    assert host.sent == {"SchedulerHeartbeat": 0, "DataVolumeUsedPercent": host.sent["DataVolumeUsedPercent"]}
    assert host.cursor.read_text() == "100.000000\n"


def test_an_unexpected_answer_is_not_counted(host):
    assert host.run("ERROR: relation \"job\" does not exist") == 1
    assert "DagRunFailed" not in host.sent and host.sent["SchedulerHeartbeat"] == 0 and not host.cursor.exists()


def test_a_refused_put_fails_the_run_and_leaves_the_cursor(host, capsys):
    """Nothing is lost: the endings of a run whose put failed are counted by the next one, none twice."""
    host.run("100.0|1|0|0|0")
    with pytest.raises(RuntimeError, match="AccessDenied"):
        host.run("160.0|1|5|0|0", PUT_FAILS="1")
    assert host.cursor.read_text() == "100.000000\n"
    host.run("220.0|1|6|0|0")
    assert "to_timestamp(100.000000)" in host.sql and host.cursor.read_text() == "220.000000\n"


def test_the_script_exits_non_zero_with_the_reason_when_the_put_fails(tmp_path):
    """As a command (what envctl-job runs): the refusal's message and a non-zero exit."""
    path = tmp_path / "envctl-metrics"
    path.write_text(script_text().replace('CURSOR = "/var/lib/envctl/metrics/cursor"', f'CURSOR = "{tmp_path}/cursor"')
                    .replace('COMPOSE = "/usr/local/sbin/envctl-compose"', f'COMPOSE = "{tmp_path}/bin/envctl-compose"')
                    .replace('DATA = "/data"', f'DATA = "{tmp_path}"'))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("aws", FAKE_AWS), ("envctl-compose", FAKE_COMPOSE)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin", "CALLS": str(tmp_path / "calls"),
           "PSQL_OUTPUT": "5.0|1|0|0|0", "PUT_FAILS": "1"}
    result = subprocess.run([sys.executable, str(path), "envctl/fraud", "bucket"], capture_output=True, text=True, env=env)
    assert result.returncode == 1 and "AccessDenied" in result.stderr
    assert subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env).returncode == 1  # usage


def test_the_data_volume_use_is_what_df_says(host):
    """DataVolumeUsedPercent of the directory, within df's rounding up to a whole percent."""
    host.run("1.0|1|0|0|0")
    df = subprocess.run(["df", "--output=pcent", host.module.DATA], capture_output=True, text=True, check=True).stdout
    assert abs(host.sent["DataVolumeUsedPercent"] - int(df.splitlines()[1].strip().rstrip("%"))) <= 1


def test_no_backup_yet_sends_no_backup_age(host):
    host.run("1.0|1|0|0|0", LISTING="null")
    assert "NewestBackupAgeHours" not in host.sent
    (listing,) = [call["args"] for call in host.calls if call.get("args", [])[:2] == ["s3api", "list-objects-v2"]]
    assert listing[2:6] == ["--bucket", "envctl-fraud-bucket", "--prefix", BACKUP_PREFIX]


def test_the_backup_age_is_that_of_the_newest_backup(host):
    """Whatever the order and format of LastModified (the CLI's +00:00, a Z with milliseconds)."""
    listing = json.dumps(["2020-01-01T00:00:00+00:00", "2030-01-01T00:00:00.123Z", "2025-01-01T00:00:00+00:00"])
    host.run("1.0|1|0|0|0", LISTING=listing)
    assert "NewestBackupAgeHours" in host.sent
    now = datetime(2030, 1, 1, 6, 0, 0, 123000, tzinfo=timezone.utc)
    assert host.module.backup_age_hours(listing, now) == 6.0


def test_the_cursor_reaches_the_sql_only_as_a_number(host):
    """A damaged cursor file is no cursor (a fresh window), never text in the SQL."""
    host.cursor.parent.mkdir(parents=True)
    host.cursor.write_text("0); DROP TABLE job; --\n")
    host.run("1.0|1|0|0|0")
    assert "DROP" not in host.sql and "w.high AS low" in host.sql
    with pytest.raises(ValueError):
        host.module.window_sql("0); DROP TABLE job; --")
