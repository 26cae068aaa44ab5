"""`schedule:` in a request (dev environments only): what it accepts, how each mistake is named, and
what it means (the awake days and hours, EventBridge Scheduler's cron, whether a moment is awake)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from provisioner.spec import Schedule, validate_files
from tests.conftest import ROOT

DEV = yaml.safe_load((ROOT / "stacks" / "finance-reports.yaml").read_text())
PROD = yaml.safe_load((ROOT / "stacks" / "fraud.yaml").read_text())


def errors_for(tmp_path: Path, request: dict) -> list[str]:
    path = tmp_path / f"{request['team']}.yaml"
    path.write_text(yaml.safe_dump(request))
    _, errors = validate_files([path], default_region="eu-west-1", pool="10.0.0.0/8", prefix=20, root=tmp_path)
    return errors


def test_a_dev_request_with_a_schedule_is_valid(tmp_path):
    request = {**DEV, "schedule": {"awake": "Mon-Fri 07:00-20:00", "timezone": "Europe/Madrid"}}
    assert errors_for(tmp_path, request) == []


def test_a_prod_request_with_a_schedule_is_refused_naming_file_and_field(tmp_path):
    errors = errors_for(tmp_path, {**PROD, "schedule": {"awake": "Mon-Fri 07:00-20:00"}})
    assert len(errors) == 1
    assert errors[0].startswith("fraud.yaml: schedule: ") and "dev environments only" in errors[0], errors


@pytest.mark.parametrize(("schedule", "field", "says"), [
    ({"awake": "Mon-Frx 07:00-20:00"}, "schedule.awake", "Mon, Tue, Wed, Thu, Fri, Sat, Sun"),
    ({"awake": "Mon-Fri 7:00-20:00"}, "schedule.awake", "HH:MM-HH:MM"),
    ({"awake": "Mon-Fri 20:00-07:00"}, "schedule.awake", "must be before the stop"),
    ({"awake": "Mon-Fri 07:00-20:00", "timezone": "Mars/Olympus"}, "schedule.timezone", "IANA time zone"),
    ({"awake": "Mon-Fri 07:00-20:00", "sleep": "always"}, "schedule.sleep", ""),
    ({}, "schedule.awake", ""),
])
def test_each_mistake_in_a_schedule_is_named(tmp_path, schedule, field, says):
    errors = errors_for(tmp_path, {**DEV, "schedule": schedule})
    assert any(e.startswith(f"finance-reports.yaml: {field}: ") and says in e for e in errors), errors


def test_validate_exits_2_on_a_prod_schedule(tmp_path, monkeypatch):
    from provisioner.cli.main import app

    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "fraud.yaml").write_text(yaml.safe_dump({**PROD, "schedule": {"awake": "Mon-Fri 07:00-20:00"}}))
    (tmp_path / "envctl.toml").write_text((ROOT / "envctl.toml").read_text())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 2 and "dev environments only" in result.output, result.output


def test_the_awake_days_hours_and_crons():
    weekdays = Schedule(awake="Mon-Fri 07:00-20:30", timezone="UTC")
    assert weekdays.days == ("Mon", "Tue", "Wed", "Thu", "Fri")
    assert (weekdays.start, weekdays.stop) == ((7, 0), (20, 30))
    assert weekdays.cron(weekdays.start) == "cron(0 7 ? * MON,TUE,WED,THU,FRI *)"
    assert weekdays.cron(weekdays.stop) == "cron(30 20 ? * MON,TUE,WED,THU,FRI *)"
    assert Schedule(awake="Fri-Mon 08:00-09:00").days == ("Fri", "Sat", "Sun", "Mon"), "a range may wrap the week"
    assert Schedule(awake="Sat 10:00-12:00").days == ("Sat",)


def test_awake_at_follows_the_time_zone():
    madrid = Schedule(awake="Mon-Fri 07:00-20:00", timezone="Europe/Madrid")  # UTC+1 in December
    wednesday = datetime(2026, 12, 2, tzinfo=timezone.utc)
    assert madrid.awake_at(wednesday.replace(hour=6, minute=0))  # 07:00 in Madrid
    assert not madrid.awake_at(wednesday.replace(hour=5, minute=59))
    assert not madrid.awake_at(wednesday.replace(hour=19, minute=0))  # 20:00 in Madrid: asleep
    assert not madrid.awake_at(datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)), "Saturday"
