"""The host's logging as the userdata writes it: every container through awslogs, the bootstrap and the
jobs through envctl-ship-log (run here against a stand-in `aws` that records what it is asked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from provisioner.userdata import render_userdata
from tests.fixtures.userdata import embedded_files, typical

SHIPPER = "/usr/local/sbin/envctl-ship-log"
# Records each call's arguments and, for put-log-events, the events it was given.
FAKE_AWS = """#!/usr/bin/env python3
import json, os, sys
calls = os.environ["CALLS"]
args = sys.argv[1:]
entry = {"args": args}
if "--log-events" in args:
    entry["events"] = json.load(open(args[args.index("--log-events") + 1].removeprefix("file://")))
with open(calls, "a") as out:
    out.write(json.dumps(entry) + "\\n")
if args[:2] == ["logs", "create-log-stream"] and os.environ.get("STREAM_EXISTS"):
    sys.exit("An error occurred (ResourceAlreadyExistsException) when calling the CreateLogStream operation")
"""


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return embedded_files(render_userdata(typical()))


@pytest.mark.parametrize("airflow_version", ["2.10.5", "3.1.0"])
def test_every_container_logs_to_the_team_group_in_its_own_stream(airflow_version):
    """awslogs for every service, stream <instance id>/<component>, the group made by the program (never by
    the driver), the sandbox's endpoint when it sets one, and no local driver anywhere."""
    compose_text = embedded_files(render_userdata(typical(airflow_version=airflow_version)))["/opt/envctl/docker-compose.yml"]
    compose = yaml.safe_load(compose_text)
    assert "driver: local" not in compose_text
    streams = {}
    for service, settings in compose["services"].items():
        logging = settings["logging"]
        assert logging["driver"] == "awslogs", service
        options = logging["options"]
        assert (options["awslogs-group"], options["awslogs-region"]) == ("${LOG_GROUP:?}", "${REGION:?}"), service
        assert options["awslogs-create-group"] == "false" and options["awslogs-endpoint"] == "${AWS_ENDPOINT_URL:-}"
        assert options["mode"] == "non-blocking", service
        streams[service] = options["awslogs-stream"]
    components = ["webserver", "scheduler"] if airflow_version.startswith("2.") else ["api-server", "scheduler", "dag-processor"]
    assert streams == {"postgres": "${INSTANCE_ID:?}/postgres", "airflow-init": "${INSTANCE_ID:?}/init",
                       **{f"airflow-{c}": f"${{INSTANCE_ID:?}}/{c}" for c in components}}


def test_the_host_scripts_know_the_instance_and_the_group():
    """host.env, which envctl-compose and envctl-job read, carries INSTANCE_ID and LOG_GROUP."""
    script = render_userdata(typical())
    declare = script[script.index("declare -p TEAM"):].split("| install_file /etc/envctl/host.env", 1)[0]
    assert "INSTANCE_ID" in declare.split() and "LOG_GROUP" in declare.split()


def _ship(tmp_path: Path, shipper: str, *args: str, stream_exists: bool = False,
          fake_aws: str = FAKE_AWS) -> tuple[subprocess.CompletedProcess, list[dict]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "aws").write_text(fake_aws)
    (bin_dir / "aws").chmod(0o755)
    (tmp_path / "envctl-ship-log").write_text(shipper)
    calls = tmp_path / "calls.jsonl"
    calls.unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls)}
    if stream_exists:
        env["STREAM_EXISTS"] = "1"
    result = subprocess.run([sys.executable, str(tmp_path / "envctl-ship-log"), *args], capture_output=True, text=True, env=env)
    recorded = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return result, recorded


def test_the_shipper_sends_each_line_with_its_time(tmp_path, files):
    """One event per line, stamped lines at their time (without it in the message) and the others at the time
    before them, in order, to the named group and stream; blank lines (a job's, stamped) are left out."""
    log = tmp_path / "bootstrap.log"
    log.write_text("apt says hello\n2026-12-02T04:49:26Z envctl: step os\nGet:1 http://deb.debian.org\n\n"
                   "2026-12-02T04:49:29Z \n2026-12-02T04:49:29Z   \n2026-12-02T04:49:30Z envctl: step docker\n")
    result, calls = _ship(tmp_path, files[SHIPPER], "/envctl/fraud", "i-0abc/bootstrap", str(log))
    assert result.returncode == 0, result.stderr
    assert [call["args"][:2] for call in calls] == [["logs", "create-log-stream"], ["logs", "put-log-events"]]
    assert calls[1]["args"][2:6] == ["--log-group-name", "/envctl/fraud", "--log-stream-name", "i-0abc/bootstrap"]
    first = int(datetime(2026, 12, 2, 4, 49, 26, tzinfo=timezone.utc).timestamp() * 1000)
    second = first + 4000
    assert calls[1]["events"] == [
        {"timestamp": first, "message": "apt says hello"},
        {"timestamp": first, "message": "envctl: step os"},
        {"timestamp": first, "message": "Get:1 http://deb.debian.org"},
        {"timestamp": second, "message": "envctl: step docker"},
    ]


def test_the_shipper_continues_from_an_offset_with_complete_lines_only(tmp_path, files):
    """From OFFSET it sends only whole lines (a line still being written waits) and prints where the next call starts;
    an existing stream is no error (a second call, a re-run)."""
    log = tmp_path / "bootstrap.log"
    done = "2026-12-02T04:49:26Z envctl: step os\n"
    log.write_text(done + "2026-12-02T04:49:27Z envctl: half a li")
    result, calls = _ship(tmp_path, files[SHIPPER], "/envctl/fraud", "i-0abc/bootstrap", str(log), "0", stream_exists=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(len(done))
    assert [event["message"] for event in calls[-1]["events"]] == ["envctl: step os"]
    result, calls = _ship(tmp_path, files[SHIPPER], "/envctl/fraud", "i-0abc/bootstrap", str(log), str(len(done)))
    assert (result.stdout.strip(), calls) == (str(len(done)), [])


def test_the_shipper_batches_within_put_log_events_limits(tmp_path, files):
    """1,200 long lines go in batches of at most 500 events, each line cut to 500 characters."""
    log = tmp_path / "job.log"
    log.write_text("".join(f"2026-12-02T02:00:00Z line {i} {'x' * 900}\n" for i in range(1200)))
    result, calls = _ship(tmp_path, files[SHIPPER], "/envctl/fraud", "i-0abc/job-daily", str(log))
    assert result.returncode == 0, result.stderr
    batches = [call["events"] for call in calls if "events" in call]
    assert [len(batch) for batch in batches] == [500, 500, 200]
    assert all(len(event["message"]) == 500 - 21 for batch in batches for event in batch)
    assert all(sum(len(e["message"].encode()) + 26 for e in batch) <= 1_048_576 for batch in batches)


def test_a_refused_call_fails_the_shipper_with_the_reason(tmp_path, files):
    """The bootstrap logs a warning and the job says so when the log group refuses (exit non-zero, AWS's message)."""
    failing = FAKE_AWS + 'if args[:2] == ["logs", "put-log-events"]:\n    sys.exit("AccessDeniedException: not allowed")\n'
    log = tmp_path / "job.log"
    log.write_text("2026-12-02T02:00:00Z hello\n")
    result, _ = _ship(tmp_path, files[SHIPPER], "/envctl/fraud", "i-0abc/job-daily", str(log), fake_aws=failing)
    assert result.returncode != 0 and "AccessDeniedException: not allowed" in result.stderr


def test_jobs_send_their_output_and_keep_their_standard_output(files):
    """envctl-job sends each run to <instance id>/job-<name> and still prints the job's own lines (the backup key
    that `envctl backup` and the restore script read is the last line)."""
    job = files["/usr/local/sbin/envctl-job"]
    assert '/usr/local/sbin/envctl-ship-log "$LOG_GROUP" "$INSTANCE_ID/job-$1" "$output"' in job
    assert "printf '%s\\n' \"$line\"" in job  # copy_and_stamp passes each line through unchanged
    script = render_userdata(typical())
    assert 'ship_log 30' in script and '"$INSTANCE_ID/bootstrap" "$LOG_FILE" "$LOG_SHIPPED"' in script
