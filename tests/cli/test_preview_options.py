"""`envctl preview <team> --offline [--json]` shows each resource's options: what it waits for and its lifecycle."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from provisioner.cli import output
from provisioner.cli.main import app
from tests.conftest import ROOT

OPTION_KEYS = {"dependsOn", "dependencies", "propertyDependencies", "ignoreChanges", "replaceOnChanges",
               "protect", "retainOnDelete", "deleteBeforeReplace"}


@pytest.fixture(scope="module")
def previews(tmp_path_factory):
    """fraud's offline preview, as JSON and as a tree (run once for the module)."""
    project = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "stacks", project / "stacks")
    shutil.copy(ROOT / "envctl.toml", project / "envctl.toml")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.delenv("ENVCTL_CONFIG", raising=False)
        patch.setattr(output.out, "width", 160)  # as in CI logs; xdist workers set COLUMNS=80
        as_json = CliRunner().invoke(app, ["preview", "fraud", "--offline", "--json"])
        tree = CliRunner().invoke(app, ["preview", "fraud", "--offline"])
    assert as_json.exit_code == 0, as_json.output
    assert tree.exit_code == 0, tree.output
    return json.loads(as_json.stdout), tree.stdout


def by_name(doc: dict, name: str) -> dict:
    (found,) = [r for r in doc["resources"] if r["name"] == name]
    return found


def test_every_resource_lists_its_options(previews):
    """Each resource (components too) has all eight options, with the JSON types Pulumi gives them."""
    doc, _ = previews
    for resource in doc["resources"]:
        options = resource["options"]
        assert set(options) == OPTION_KEYS, resource["urn"]
        assert all(isinstance(options[k], bool) for k in ("protect", "retainOnDelete", "deleteBeforeReplace"))
        assert all(isinstance(options[k], list) for k in ("dependsOn", "dependencies", "ignoreChanges", "replaceOnChanges"))
        assert isinstance(options["propertyDependencies"], dict)


def test_lifecycle_options_of_known_resources(previews):
    """The key and bucket outlive a destroy, the attachment detaches first, the instance is replaced on
    a new type and ignores nothing (an ignored AMI would pin it on replacement too), the bootstrap
    parameter keeps the host's reported value."""
    doc, _ = previews
    assert by_name(doc, "fraud-storage-key")["options"]["retainOnDelete"] is True
    assert by_name(doc, "fraud-storage-bucket")["options"]["retainOnDelete"] is True
    assert by_name(doc, "fraud-airflow-data-attachment")["options"]["deleteBeforeReplace"] is True
    instance = by_name(doc, "fraud-airflow-instance")["options"]
    assert instance["replaceOnChanges"] == ["instanceType"]
    assert instance["ignoreChanges"] == []
    assert instance["retainOnDelete"] is False and instance["deleteBeforeReplace"] is False
    assert by_name(doc, "fraud-airflow-bootstrap")["options"]["ignoreChanges"] == ["value"]
    assert by_name(doc, "fraud-network-vpc")["options"]["ignoreChanges"] == []


def test_instance_dependencies_name_what_it_waits_for(previews):
    """The instance waits for the bootstrap parameter and its route out (explicit depends_on) and for its subnet (subnetId)."""
    doc, _ = previews
    instance = by_name(doc, "fraud-airflow-instance")["options"]
    bootstrap = by_name(doc, "fraud-airflow-bootstrap")["urn"]
    subnet = by_name(doc, "fraud-network-private")["urn"]
    assert bootstrap in instance["dependsOn"] and bootstrap in instance["dependencies"]
    assert instance["propertyDependencies"]["subnetId"] == [subnet]
    assert subnet in instance["dependencies"] and subnet not in instance["dependsOn"]
    assert set(instance["dependencies"]) == set(instance["dependsOn"]).union(*instance["propertyDependencies"].values())


def test_dependencies_can_be_followed_transitively(previews):
    """Every dependency URN is the "urn" of a listed resource, so a tool can walk the graph: from the
    instance it reaches the VPC (instance -> subnet -> VPC)."""
    doc, _ = previews
    by_urn = {r["urn"]: r for r in doc["resources"]}
    for resource in doc["resources"]:
        for urn in resource["options"]["dependencies"]:
            assert urn in by_urn, (resource["urn"], urn)
    seen, todo = set(), list(by_name(doc, "fraud-airflow-instance")["options"]["dependencies"])
    while todo:
        urn = todo.pop()
        if urn not in seen:
            seen.add(urn)
            todo.extend(by_urn[urn]["options"]["dependencies"])
    assert "aws:ec2/vpc:Vpc" in {by_urn[urn]["type"] for urn in seen}


def test_tree_shows_set_options_compactly(previews):
    """The tree adds a bracket of the options that are set, by resource name, and nothing when none are."""
    _, tree = previews
    lines = tree.splitlines()
    instance = next(line for line in lines if "fraud-airflow-instance " in line)
    assert "[replaceOnChanges=instanceType dependsOn=fraud-airflow-bootstrap," in instance and "ignoreChanges" not in instance
    assert "[retainOnDelete]" in next(line for line in lines if "fraud-storage-key " in line)
    assert "[deleteBeforeReplace]" in next(line for line in lines if "fraud-airflow-data-attachment " in line)
    vpc = next(line for line in lines if "fraud-network-vpc " in line)
    assert "[" not in vpc
