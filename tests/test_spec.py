"""The request model: valid requests load, every kind of mistake is named with file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from provisioner.spec import allocate_cidr, json_schema, request_files, validate_files
from tests.conftest import ROOT

FRAUD = yaml.safe_load((ROOT / "stacks" / "fraud.yaml").read_text())


def write(tmp_path: Path, name: str, data: dict | str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def errors_for(tmp_path: Path, *files: Path) -> list[str]:
    _, errors = validate_files(list(files), default_region="eu-west-1", pool="10.0.0.0/8", prefix=20, root=tmp_path)
    return errors


def test_example_requests_are_valid():
    """Every request shipped in stacks/ validates, alone and together."""
    resolved, errors = validate_files(request_files(ROOT / "stacks"), default_region="eu-west-1", pool="10.0.0.0/8", prefix=20)
    assert errors == []
    assert {r.team for r in resolved} == {"fraud", "treasury", "finance-reports"}


def test_examples_exercise_the_inference_options():
    """One serverless endpoint, one instance-backed with autoscaling, one team without inference."""
    resolved, _ = validate_files(request_files(ROOT / "stacks"), default_region="eu-west-1", pool="10.0.0.0/8", prefix=20)
    kinds = {r.team: r.spec.sagemaker.inference for r in resolved}
    assert kinds["treasury"].serverless is not None
    assert kinds["fraud"].instance.autoscaling is not None
    assert kinds["finance-reports"].enabled is False


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"not_a_field": 1}, "not_a_field", "unknown field"),
        ({"airflow": {"instance_type": "t2.nano"}}, "airflow.instance_type", "allowed: 't3.medium'"),
        ({"owners": []}, "owners", "at least 1"),
        ({"owners": ["not-an-email"]}, "owners[0]", "must match"),
        ({"team": "Fraud_Team"}, "team", "must match"),
        ({"environment": "staging"}, "environment", "allowed: 'prod' or 'dev'"),
        ({"network": {"cidr": "10.0.0.0/8"}}, "network.cidr", "/8 is not allowed; use a prefix from /16 to /24"),
        ({"network": {"cidr": "8.8.0.0/16"}}, "network.cidr", "not a private range"),
        ({"network": {"cidr": "10.0.0.1/16"}}, "network.cidr", "host bits zero"),
        ({"budget_usd_month": 10}, "budget_usd_month", "greater than or equal to 50"),
        ({"airflow": {"volume_gb": 5}}, "airflow.volume_gb", "greater than or equal to 20"),
        ({"airflow": {"version": "1.10.15"}}, "airflow.version", "must match"),
        ({"secrets": ["ok_name", "ok_name"]}, "secrets", "repeated: ok_name"),
        ({"secrets": ["Bad-Name"]}, "secrets[0]", "must match"),
        ({"sagemaker": {"inference": {"enabled": True}}}, "sagemaker.inference", "set either 'instance'"),
        ({"sagemaker": {"inference": {"enabled": True, "serverless": {}, "instance": {}}}}, "sagemaker.inference", "only one of"),
        ({"sagemaker": {"inference": {"enabled": True, "instance": {"autoscaling": {"min": 3, "max": 2}}}}},
         "sagemaker.inference.instance.autoscaling", "max (2) must be at least min (3)"),
        ({"sagemaker": {"inference": {"enabled": True, "serverless": {"memory_mb": 1000}}}},
         "sagemaker.inference.serverless.memory_mb", "allowed: 1024"),
        ({"apiVersion": "envctl/v2"}, "apiVersion", "write apiVersion: envctl/v1"),
    ],
)
def test_invalid_field_is_named_with_what_is_allowed(tmp_path, change, field, words):
    """Each mistake gives `<file>: <field>: <what is wrong; what is allowed>`."""
    path = write(tmp_path, "fraud", {**FRAUD, **change})
    errors = errors_for(tmp_path, path)
    assert any(e.startswith(f"fraud.yaml: {field}: ") and words in e for e in errors), errors


def test_every_error_of_a_file_is_reported(tmp_path):
    """Validation does not stop at the first problem."""
    path = write(tmp_path, "fraud", {**FRAUD, "not_a_field": 1, "environment": "staging", "budget_usd_month": 1})
    fields = {e.split(": ")[1] for e in errors_for(tmp_path, path)}
    assert {"not_a_field", "environment", "budget_usd_month"} <= fields


def test_team_must_match_file_name(tmp_path):
    path = write(tmp_path, "payments", FRAUD)
    assert errors_for(tmp_path, path) == [
        "payments.yaml: team: 'fraud' does not match the file name; rename the file to fraud.yaml or set team: payments"
    ]


def test_broken_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "fraud", "team: fraud\nowners: [a@b.io\n")
    (error,) = errors_for(tmp_path, path)
    assert error.startswith("fraud.yaml: (file): not valid YAML at line")


def test_empty_file_says_what_a_request_needs(tmp_path):
    path = write(tmp_path, "fraud", "")
    (error,) = errors_for(tmp_path, path)
    assert error.startswith("fraud.yaml: (file): is empty; a request needs at least apiVersion, team")


def test_non_mapping_file(tmp_path):
    path = write(tmp_path, "fraud", "- just\n- a list\n")
    assert errors_for(tmp_path, path) == [
        "fraud.yaml: (file): must be a mapping of fields (apiVersion, team, owners, ...), got a list"
    ]


def test_duplicate_team_across_files(tmp_path):
    """Two files cannot request the same team."""
    first = write(tmp_path, "fraud", FRAUD)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    second = write(other_dir, "fraud", {**FRAUD, "network": {"cidr": "10.21.0.0/20"}})
    errors = errors_for(tmp_path, first, second)
    assert any("team: 'fraud' is already requested by fraud.yaml" in e for e in errors), errors


def test_overlapping_cidrs_across_teams(tmp_path):
    first = write(tmp_path, "fraud", FRAUD)
    second = write(tmp_path, "risk", {**FRAUD, "team": "risk", "network": {"cidr": "10.20.4.0/22"}})
    errors = errors_for(tmp_path, first, second)
    assert errors == [
        "fraud.yaml: network.cidr: 10.20.0.0/20 overlaps 10.20.4.0/22 of team risk (risk.yaml); "
        "choose a range that does not overlap",
        "risk.yaml: network.cidr: 10.20.4.0/22 overlaps 10.20.0.0/20 of team fraud (fraud.yaml); "
        "choose a range that does not overlap",
    ]


def test_allocated_cidrs_are_stable_and_never_overlap(tmp_path):
    """A team's allocated range depends on its name, not on which other teams exist."""
    base = {k: v for k, v in FRAUD.items() if k != "network"}
    files = [write(tmp_path, f"team{i:02d}", {**base, "team": f"team{i:02d}"}) for i in range(40)]
    resolved, errors = validate_files(files, default_region="eu-west-1", pool="10.0.0.0/8", prefix=20)
    assert errors == []
    import ipaddress

    nets = [ipaddress.IPv4Network(r.cidr) for r in resolved]
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    alone = allocate_cidr("team07", "10.0.0.0/8", 20, [])
    assert next(r.cidr for r in resolved if r.team == "team07") == alone


def test_pool_exhaustion_is_reported(tmp_path):
    base = {k: v for k, v in FRAUD.items() if k != "network"}
    files = [write(tmp_path, f"team{i}", {**base, "team": f"team{i}"}) for i in range(3)]
    _, errors = validate_files(files, default_region="eu-west-1", pool="10.0.0.0/23", prefix=24)
    assert len(errors) == 1 and "has no free /24 left" in errors[0]


def test_schema_in_docs_is_current():
    """docs/envctl-v1.schema.json is what `envctl schema` prints (regenerate with `make schema`)."""
    committed = json.loads((ROOT / "docs" / "envctl-v1.schema.json").read_text())
    assert committed == json_schema()


SSO = {"issuer": "https://login.example.com/realms/data", "client_id": "airflow-fraud", "client_secret": "partner_api_token"}


def with_sso(**sso) -> dict:
    return {**FRAUD, "airflow": {**FRAUD["airflow"], "sso": {**SSO, **sso}}}


def test_sso_request_loads_with_a_declared_client_secret(tmp_path):
    """airflow.sso names an https issuer, a client id and one of the request's secrets."""
    resolved, errors = validate_files([write(tmp_path, "fraud", with_sso())], default_region="eu-west-1",
                                      pool="10.0.0.0/8", prefix=20, root=tmp_path)
    assert errors == []
    sso = resolved[0].spec.airflow.sso
    assert (sso.issuer, sso.client_id, sso.client_secret) == tuple(SSO.values())


@pytest.mark.parametrize(
    ("request_", "field", "words"),
    [
        (with_sso(client_secret="okta_secret"), "airflow.sso.client_secret",
         "'okta_secret' is not among secrets (declared: snowflake_password, partner_api_token); add it to secrets"),
        (with_sso(issuer="http://login.example.com"), "airflow.sso.issuer", "must match ^https://"),
        (with_sso(client_id="a b"), "airflow.sso.client_id", "must match"),
        (with_sso(client_secret="Not-A-Name"), "airflow.sso.client_secret", "must match"),
        (with_sso(extra="x"), "airflow.sso.extra", "unknown field"),
        ({**FRAUD, "airflow": {**FRAUD["airflow"], "sso": {"issuer": SSO["issuer"]}}}, "airflow.sso.client_id", "missing"),
        ({**with_sso(), "airflow": {**with_sso()["airflow"], "version": "3.0.6"}}, "airflow",
         "sso is supported on Airflow 2.x only"),
        ({**FRAUD, "owners": ["a,b@example.com"]}, "owners[0]", "must match"),
        ({**FRAUD, "owners": ["team:lead@example.com"]}, "owners[0]", "must match"),
    ],
)
def test_sso_and_owner_mistakes_name_the_field(tmp_path, request_, field, words):
    """A wrong SSO setting (or an owner address Airflow 3's user list cannot hold) names file, field and what to write."""
    errors = errors_for(tmp_path, write(tmp_path, "fraud", request_))
    assert any(e.startswith(f"fraud.yaml: {field}: ") and words in e for e in errors), errors
