"""Both engines carry the whole Engine protocol, so the CLI never asks which target it has."""

from __future__ import annotations

import inspect

import pytest

from provisioner.engines.base import Engine, EnvironmentStatus
from provisioner.engines.pulumi import PulumiEngine
from provisioner.engines.sandbox.engine import SandboxEngine

PROTOCOL_METHODS = sorted(name for name, member in vars(Engine).items()
                          if callable(member) and not name.startswith("_"))


@pytest.mark.parametrize("engine", [PulumiEngine, SandboxEngine], ids=lambda e: e.__name__)
def test_every_protocol_method_is_implemented_with_its_parameters(engine):
    """Each protocol method exists on the engine and takes the same parameters, by name and kind."""
    assert {"prepare", "status", "inspect_hint", "push_image"} <= set(PROTOCOL_METHODS)
    for name in PROTOCOL_METHODS:
        expected = [(p.name, p.kind) for p in inspect.signature(getattr(Engine, name)).parameters.values()]
        actual = [(p.name, p.kind) for p in inspect.signature(getattr(engine, name)).parameters.values()]
        assert actual == expected, f"{engine.__name__}.{name}"


def test_status_json_puts_the_airflow_url_first_and_keeps_engine_details():
    """`envctl status --json`: team and target, the Airflow URL when a host gives one, the engine's own
    fields, the outputs; the typed hints (inspect command, sessions) are not part of the report."""
    status = EnvironmentStatus(team="fraud", target="sandbox", resources=3, outputs={"region": "eu-west-1"},
                               host_url="http://127.0.0.1:49153", inspect_hint="aws --region eu-west-1",
                               details={"status": "ok"})
    doc = status.to_json()
    assert list(doc)[:3] == ["team", "target", "airflow_url"]
    assert doc["status"] == "ok" and doc["outputs"] == {"region": "eu-west-1"} and doc["resources"] == 3
    assert "inspect_hint" not in doc and "no_sessions" not in doc
    assert "airflow_url" not in EnvironmentStatus(team="fraud", target="aws", resources=0).to_json()
