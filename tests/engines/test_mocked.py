"""The mock run records what the Pulumi SDK sends for each resource: its dependencies and options."""

from __future__ import annotations

from provisioner.engines.mocked import run_program
from provisioner.engines.offline import OfflineMaterialiser


def _program():
    """A component with two children; a resource that depends on the component, and one on a child's output."""
    import pulumi
    import pulumi_aws as aws

    class Pair(pulumi.ComponentResource):
        def __init__(self, name: str):
            super().__init__("test:index:Pair", name)
            self.first = aws.ssm.Parameter(f"{name}-first", type="String", value="1", opts=pulumi.ResourceOptions(parent=self))
            self.second = aws.ssm.Parameter(f"{name}-second", type="String", value="2", opts=pulumi.ResourceOptions(parent=self))
            self.register_outputs({})

    pair = Pair("pair")
    aws.ssm.Parameter("after-pair", type="String", value=pair.first.value,
                      opts=pulumi.ResourceOptions(depends_on=[pair], protect=True, retain_on_delete=True,
                                                  delete_before_replace=True, ignore_changes=["value"],
                                                  replace_on_changes=["type"]))
    aws.ssm.Parameter("plain", type="String", value="x")


def _run():
    run = run_program(_program, OfflineMaterialiser("eu-west-1"), project="envctl", stack="probe",
                      config={"aws:region": "eu-west-1"})
    return {r.name: r for r in run.registrations}


def test_a_dependency_on_a_component_is_recorded_as_its_custom_children():
    """The SDK expands depends_on=[component] to the component's children: those URNs are recorded,
    each one a registered custom resource (so a walk over the URNs finds real resources)."""
    regs = _run()
    after = regs["after-pair"]
    assert after.dependencies == sorted([regs["pair-first"].urn, regs["pair-second"].urn])
    assert regs["pair"].urn not in after.dependencies
    assert all(regs[urn.rsplit("::", 1)[-1]].custom for urn in after.dependencies)


def test_property_dependencies_and_depends_on_are_told_apart():
    """`value` came from pair-first's output: a property dependency; pair-second is only in depends_on."""
    regs = _run()
    after = regs["after-pair"]
    assert after.property_dependencies == {"value": [regs["pair-first"].urn]}
    assert after.depends_on == [regs["pair-second"].urn]


def test_every_resource_option_is_recorded():
    """protect, retainOnDelete, deleteBeforeReplace, ignoreChanges, replaceOnChanges arrive as set;
    a resource without options records none."""
    regs = _run()
    after, plain = regs["after-pair"], regs["plain"]
    assert (after.protect, after.retain_on_delete, after.delete_before_replace) == (True, True, True)
    assert (after.ignore_changes, after.replace_on_changes) == (["value"], ["type"])
    assert (plain.protect, plain.retain_on_delete, plain.delete_before_replace) == (False, False, False)
    assert (plain.ignore_changes, plain.replace_on_changes, plain.dependencies, plain.property_dependencies) == ([], [], [], {})
