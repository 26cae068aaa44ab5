"""Fixtures of the sandbox engine's tests: an engine with its own state dir and moto server per test
module, its AWS clients, and a request for any team name."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
import yaml

from provisioner.engines.sandbox.engine import SandboxEngine
from provisioner.settings import load_settings
from provisioner.spec import ResolvedSpec, TeamSpec
from tests.conftest import ROOT

EXISTING_IMAGE = "public.ecr.aws/docker/library/python:3.12"


def make_engine(state_dir: Path) -> SandboxEngine:
    return SandboxEngine(load_settings({"state_dir": str(state_dir), "target": "sandbox"}, cwd=ROOT))


def spec_for(team: str, region: str = "eu-west-1", cidr: str = "10.99.0.0/20", **changes) -> ResolvedSpec:
    raw = yaml.safe_load((ROOT / "stacks" / "fraud.yaml").read_text())
    raw.update(team=team, network={"cidr": cidr})
    # `image: default` names an image not pushed yet: CreateModel refuses it, as AWS does (fidelity rule
    # model_image_must_exist). These tests are about the engine, so the model uses an existing image.
    raw["sagemaker"]["inference"]["image"] = EXISTING_IMAGE
    for key, value in changes.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return ResolvedSpec(spec=TeamSpec.model_validate(raw), region=region, cidr=cidr)


def client(engine: SandboxEngine, service: str, region: str, **credentials):
    info = engine.server.running()
    return boto3.client(service, endpoint_url=info.endpoint, region_name=region, **(credentials or info.credentials))


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """A sandbox engine on a fresh state dir; its moto server is stopped after the module."""
    engine = make_engine(tmp_path_factory.mktemp("sandbox"))
    yield engine
    engine.server.stop()
