"""The sandbox planner alone: registration + stored state -> action, and the order removals run in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from provisioner.engines.mocked import Registration
from provisioner.engines.sandbox.planner import (ADOPT, CREATE, REPLACE, SAME, UNHANDLED, UPDATE, plan,
                                                 removals_after_program, removals_for_destroy)
from provisioner.engines.sandbox.state import StackState, StoredResource, inputs_hash

TYPE = "aws:s3/bucket:Bucket"


@dataclass
class Traits:
    """What the planner reads of a handler (it calls none of its methods)."""

    replace_on: tuple[str, ...] = ()
    can_update: bool = True
    delete_before_replace: bool = False


def registration(name: str = "data", **inputs: Any) -> Registration:
    return Registration(urn=f"urn:pulumi:t::envctl::{TYPE}::{name}", type=TYPE, name=name, parent="", custom=True,
                        inputs=inputs, dependencies=[], provider="")


def stored(reg: Registration, *, materialised: bool = True, retain: bool = False, seq: int = 0) -> StoredResource:
    return StoredResource(urn=reg.urn, type=reg.type, name=reg.name, id=f"id-{reg.name}", inputs=dict(reg.inputs),
                          outputs={}, inputs_hash=inputs_hash(reg.inputs), materialised=materialised,
                          retain_on_delete=retain, seq=seq)


def test_unchanged_inputs_plan_same_and_a_new_registration_create():
    reg = registration(bucket="b1")
    assert plan(reg, stored(reg), Traits()).kind == SAME
    assert plan(reg, None, Traits()).kind == CREATE
    assert plan(reg, stored(reg, materialised=False), Traits()).kind == CREATE


def test_an_ignored_change_is_no_change():
    old = registration(bucket="b1", tags={"a": "1"})
    new = registration(bucket="b1", tags={"a": "2"})
    new.ignore_changes = ["tags"]
    prior = stored(old)
    prior.inputs_hash = inputs_hash(old.inputs, ["tags"])
    assert plan(new, prior, Traits()).kind == SAME


def test_an_import_is_adopted_and_reported_as_a_create_naming_what_was_kept():
    reg = registration(bucket="team-bucket")
    reg.import_id = "team-bucket"
    action = plan(reg, None, Traits())
    change = action.change("team-bucket")
    assert action.kind == ADOPT
    assert (change.action, change.detail, change.physical_id) == ("create", "adopted the kept team-bucket", "team-bucket")


def test_a_change_updates_in_place_unless_a_key_forces_a_replacement():
    old, new = registration(bucket="b1", versioning=False), registration(bucket="b1", versioning=True)
    update = plan(new, stored(old), Traits(replace_on=("bucket",)))
    assert (update.kind, update.reasons) == (UPDATE, ("versioning",))
    assert update.change("id-data").detail == "changed: versioning"

    renamed = registration(bucket="b2", versioning=True)
    replace = plan(renamed, stored(old), Traits(replace_on=("bucket",)))
    assert (replace.kind, replace.reasons) == (REPLACE, ("bucket",))
    assert replace.change("id-new").detail == "replaced because of: bucket"
    assert not replace.delete_first


def test_the_program_can_force_a_replacement_and_a_handler_without_update_always_replaces():
    old, new = registration(bucket="b1", versioning=False), registration(bucket="b1", versioning=True)
    new.replace_on_changes = ["versioning"]
    assert plan(new, stored(old), Traits()).kind == REPLACE
    plain = registration(bucket="b1", versioning=True)
    action = plan(plain, stored(old), Traits(can_update=False))
    assert (action.kind, action.reasons) == (REPLACE, ("versioning",))


@pytest.mark.parametrize("handler_first, program_first", [(True, False), (False, True)])
def test_a_fixed_name_deletes_before_it_replaces(handler_first, program_first):
    old, new = registration(bucket="b1"), registration(bucket="b2")
    new.delete_before_replace = program_first
    assert plan(new, stored(old), Traits(replace_on=("bucket",), delete_before_replace=handler_first)).delete_first
    assert plan(new, stored(old), Traits(replace_on=("bucket",))).delete_first is program_first


def test_a_type_without_handler_is_reported_not_materialised_with_what_would_change():
    reg = registration(bucket="b1")
    assert plan(reg, None, None).kind == UNHANDLED
    assert plan(reg, None, None).change("x").action == "create"
    assert plan(reg, stored(reg, materialised=False), None).change("x").action == "same"
    changed = plan(registration(bucket="b2"), stored(reg, materialised=False), None).change("x")
    assert (changed.action, changed.materialised) == ("update", False)


def _state(*resources: StoredResource) -> StackState:
    return StackState(team="t", resources={r.urn: r for r in resources})


def test_after_the_program_removals_run_newest_first_and_keep_what_is_retained():
    first, second, third = (stored(registration(n), seq=i, retain=(n == "b")) for i, n in enumerate("abc"))
    replaced = stored(registration("c"), seq=2)
    replaced.id = "old-c"
    removals = removals_after_program(_state(first, second, third), registered={third.urn}, replaced=[replaced])
    assert [(r.resource.name, r.delete, r.forget) for r in removals] == [
        ("b", False, True), ("a", True, True), ("c", True, False)]
    assert [r.change().physical_id for r in removals if r.forget] == ["id-b", "id-a"]


@pytest.mark.parametrize("delete_data", [False, True])
def test_a_destroy_removes_everything_newest_first_and_keeps_the_data_unless_asked(delete_data):
    data, other = stored(registration("data"), seq=0, retain=True), stored(registration("other"), seq=1)
    removals = removals_for_destroy(_state(data, other), delete_data=delete_data)
    assert [(r.resource.name, r.delete, r.forget) for r in removals] == [("other", True, True), ("data", delete_data, True)]
