"""cost.py: a request and the price table give known line items; gaps in the table are errors, never 0."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from provisioner.cli import output
from provisioner.cli.main import app
from provisioner.cost import NOT_ESTIMATED, NOTEBOOK_VOLUME_GB, PRICES_FILE, ROOT_VOLUME_GB, estimate, load_prices
from provisioner.errors import InvalidInput
from provisioner.spec import (
    AIRFLOW_INSTANCE_TYPES,
    INFERENCE_INSTANCE_TYPES,
    NOTEBOOK_INSTANCE_TYPES,
    ResolvedSpec,
    TeamSpec,
)
from tests.conftest import ROOT

TABLE = json.loads(PRICES_FILE.read_text())
HOURS = TABLE["hours_per_month"]


def example(team: str, region: str | None = None, **changes) -> ResolvedSpec:
    raw = yaml.safe_load((ROOT / "stacks" / f"{team}.yaml").read_text())
    for key, value in changes.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    spec = TeamSpec.model_validate(raw)
    return ResolvedSpec(spec=spec, region=region or spec.region or "eu-west-1", cidr="10.0.0.0/24")


def items_of(result) -> dict[str, float]:
    return {item.item: item.monthly_usd for item in result.items}


def table_with(tmp_path: Path, edit) -> Path:
    data = json.loads(PRICES_FILE.read_text())
    edit(data)
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data))
    return path


def test_fraud_line_items_are_the_table_figures_times_730_hours():
    ireland = TABLE["regions"]["eu-west-1"]
    result = estimate(example("fraud"), load_prices())
    secrets = 2 + 4  # the request's two, Airflow's four (fernet, webserver, jwt, postgres)
    expected = {
        "Airflow host": round(HOURS * ireland["ec2_hour"]["m6i.large"], 2),
        "host root volume": round(ROOT_VOLUME_GB * ireland["ebs_gp3_gb_month"], 2),
        "data volume": round(100 * ireland["ebs_gp3_gb_month"], 2),
        "NAT gateway": round(HOURS * ireland["nat_gateway_hour"], 2),
        "NAT public IPv4 address": round(HOURS * ireland["public_ipv4_hour"], 2),
        "notebook": round(HOURS * ireland["sagemaker_notebook_hour"]["ml.t3.medium"], 2),
        "notebook volume": round(NOTEBOOK_VOLUME_GB * ireland["sagemaker_ml_storage_gb_month"], 2),
        "endpoint instances": round(HOURS * ireland["sagemaker_inference_hour"]["ml.m5.large"], 2),
        "KMS key": round(ireland["kms_key_month"], 2),
        "secrets": round(secrets * ireland["secret_month"], 2),
    }
    assert items_of(result) == expected
    assert result.monthly_usd == round(sum(expected.values()), 2)
    assert result.monthly_usd > 200  # an m6i host, a NAT gateway and an endpoint: hundreds a month
    endpoint = next(i for i in result.items if i.item == "endpoint instances")
    assert endpoint.note == f"autoscaling to 4: up to ${4 * expected['endpoint instances']:.2f}"
    assert result.budget_usd_month == 2500 and not result.over_budget
    assert result.prices_as_of == TABLE["regions"]["eu-west-1"]["as_of"]


def test_a_price_change_in_the_table_changes_the_estimate(tmp_path):
    before = estimate(example("fraud"), load_prices())
    path = table_with(tmp_path, lambda d: d["regions"]["eu-west-1"]["ec2_hour"].update({"m6i.large": 1.0}))
    after = estimate(example("fraud"), load_prices(path))
    assert items_of(after)["Airflow host"] == HOURS * 1.0
    assert after.monthly_usd == pytest.approx(before.monthly_usd - items_of(before)["Airflow host"] + HOURS, abs=0.011)


def test_the_region_sets_the_prices():
    frankfurt = estimate(example("treasury"), load_prices())
    assert frankfurt.region == "eu-central-1"
    assert items_of(frankfurt)["Airflow host"] == round(HOURS * TABLE["regions"]["eu-central-1"]["ec2_hour"]["t3.large"], 2)
    virginia = estimate(example("treasury", region="us-east-1"), load_prices())
    assert items_of(virginia)["Airflow host"] == round(HOURS * TABLE["regions"]["us-east-1"]["ec2_hour"]["t3.large"], 2)


def test_what_the_request_turns_off_is_not_billed():
    result = estimate(example("finance-reports"), load_prices())
    names = set(items_of(result))
    assert not names & {"notebook", "notebook volume", "endpoint instances", "serverless endpoint"}
    assert items_of(result)["data volume"] == round(30 * TABLE["regions"]["eu-west-1"]["ebs_gp3_gb_month"], 2)


def test_serverless_inference_is_shown_as_not_estimated_not_as_free():
    result = estimate(example("treasury"), load_prices())
    serverless = next(i for i in result.items if i.item == "serverless endpoint")
    assert serverless.monthly_usd == 0 and serverless.note == NOT_ESTIMATED
    per_hour = 2 * TABLE["regions"]["eu-central-1"]["sagemaker_serverless_gb_second"] * 3600
    assert f"${per_hour:.4f} per hour" in serverless.detail


def test_a_paused_environment_pays_for_storage_and_network_not_compute():
    running = items_of(estimate(example("fraud"), load_prices()))
    paused = estimate(example("fraud"), load_prices(), paused=True)
    stopped = {"Airflow host", "notebook", "endpoint instances"}
    assert all(items_of(paused)[name] == 0 for name in stopped)
    assert all(items_of(paused)[name] == running[name] and running[name] > 0 for name in set(running) - stopped)
    assert paused.paused and paused.to_json()["paused"] is True


def test_over_budget_is_flagged():
    result = estimate(example("finance-reports", airflow={"instance_type": "m6i.2xlarge"}, budget_usd_month=50), load_prices())
    assert result.monthly_usd > 50 and result.over_budget
    assert result.to_json()["over_budget"] is True


def test_a_region_missing_from_the_table_is_an_error_naming_file_region_and_fix():
    with pytest.raises(InvalidInput) as caught:
        estimate(example("fraud", region="ap-south-1"), load_prices())
    message = caught.value.message
    assert "prices.json" in message and "'ap-south-1'" in message and "add a regions.ap-south-1 entry" in message


def test_an_instance_type_missing_from_the_table_is_an_error_not_zero(tmp_path):
    path = table_with(tmp_path, lambda d: d["regions"]["eu-west-1"]["sagemaker_inference_hour"].pop("ml.m5.large"))
    with pytest.raises(InvalidInput) as caught:
        estimate(example("fraud"), load_prices(path))
    message = caught.value.message
    assert str(tmp_path.name) in message or "prices.json" in message
    assert "'ml.m5.large'" in message and "sagemaker_inference_hour" in message and "add its hourly price" in message


def test_a_malformed_table_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"regions": {')
    with pytest.raises(InvalidInput, match=r"broken\.json: not valid JSON at line 1"):
        load_prices(path)


def test_the_table_prices_every_allowed_type_in_every_region_it_lists():
    used = {yaml.safe_load(p.read_text()).get("region") for p in (ROOT / "stacks").glob("*.yaml")} - {None}
    used |= {tomllib.loads((ROOT / "envctl.toml").read_text())["region"], "us-east-1"}
    assert used <= set(TABLE["regions"]), sorted(used - set(TABLE["regions"]))
    for name, region in TABLE["regions"].items():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", region["as_of"]) and region["source"] and "unverified" in region, name
        assert set(AIRFLOW_INSTANCE_TYPES) <= set(region["ec2_hour"]), name
        assert set(INFERENCE_INSTANCE_TYPES) <= set(region["sagemaker_inference_hour"]), name
        assert set(NOTEBOOK_INSTANCE_TYPES) <= set(region["sagemaker_notebook_hour"]), name


def test_the_root_volume_size_is_the_programs():
    from provisioner.components.airflow_host import ROOT_VOLUME_GB as PROGRAM_ROOT_VOLUME_GB

    assert ROOT_VOLUME_GB == PROGRAM_ROOT_VOLUME_GB


# ---------------------------------------------------------------- envctl cost


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "stacks").mkdir()
    for path in (ROOT / "stacks").glob("*.yaml"):
        (tmp_path / "stacks" / path.name).write_text(path.read_text())
    (tmp_path / "envctl.toml").write_text((ROOT / "envctl.toml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENVCTL_CONFIG", raising=False)
    return tmp_path


def test_cost_of_one_team_as_json(project):
    result = CliRunner().invoke(app, ["cost", "fraud", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["team"] == "fraud" and doc["budget_usd_month"] == 2500 and doc["over_budget"] is False
    assert doc["monthly_usd"] == estimate(example("fraud"), load_prices()).monthly_usd
    assert {item["item"] for item in doc["items"]} >= {"Airflow host", "data volume", "NAT gateway", "notebook"}


def test_cost_of_every_team_as_json_and_the_over_budget_warning(project):
    path = project / "stacks" / "finance-reports.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["budget_usd_month"] = 50
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["cost", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [t["team"] for t in doc["teams"]] == ["finance-reports", "fraud", "treasury"]
    assert [t["over_budget"] for t in doc["teams"]] == [True, False, False]
    assert "finance-reports: the estimate" in result.stderr and "over its budget_usd_month ($50)" in result.stderr


def test_cost_table_shows_items_total_and_budget(project, monkeypatch):
    monkeypatch.setattr(output.out, "width", 200)  # a narrow COLUMNS (e.g. under xdist) would wrap the cells
    result = CliRunner().invoke(app, ["cost", "treasury"])
    assert result.exit_code == 0, result.output
    total = estimate(example("treasury"), load_prices()).monthly_usd
    for text in ("treasury · eu-central-1", "Airflow host", NOT_ESTIMATED, "budget $800/month", f"{total:,.2f}", "within budget"):
        assert text in result.stdout, text


def test_cost_of_an_unknown_team_is_bad_input(project):
    result = CliRunner().invoke(app, ["cost", "nosuchteam"])
    assert result.exit_code == 2
    assert "no request for team 'nosuchteam'" in result.stderr


def test_cost_needs_no_heavy_modules():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom provisioner.cli.main import app\n"
            "r = CliRunner().invoke(app, ['cost', 'fraud', '--json'])\nassert r.exit_code == 0, r.output\n"
            "print([m for m in ('pulumi_aws', 'moto', 'docker', 'pulumi', 'boto3') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
