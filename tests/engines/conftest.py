"""Fixtures of the engines' tests."""

from __future__ import annotations

import pytest

from tests.engines.fake_pulumi import FakePulumi


@pytest.fixture
def fake() -> FakePulumi:
    """A fresh stand-in for the Pulumi CLI (fake_pulumi.py), for an engine under test to drive."""
    return FakePulumi()
