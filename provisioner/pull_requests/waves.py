"""The order of a rollout: a fleet change (the program changed, so every team's environment may
change) goes out in waves, dev teams first, then prod; a change of requests only is one wave in
which every team runs to its own end.

A wave is worked on in batches of at most `parallel` teams; in a fleet rollout the first failure
stops it: teams not yet started stay "not started", and a re-run resumes (the teams already applied
come back "up to date": the engines skip a team whose fingerprint is the one they recorded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from provisioner.pull_requests.changes import REMOVE, ChangeSet, RequestChange
from provisioner.spec import ResolvedSpec

ENVIRONMENTS = ("dev", "prod")  # the wave order of a fleet change
ALL = "all"  # the one wave of a change of requests only
UNKNOWN_ENVIRONMENT = "prod"  # a request whose environment cannot be read goes last, with the most care


@dataclass(frozen=True)
class Wave:
    number: int  # 1, 2, ...
    environment: str  # dev | prod | all
    changes: list[RequestChange]
    stop_at_first_failure: bool  # a fleet wave stops; a request wave runs every team to its end

    @property
    def teams(self) -> list[str]:
        return [c.team for c in self.changes]

    def title(self, count: int) -> str:
        kind = f"{self.environment} teams" if self.environment != ALL else "every team to its own end"
        return f"wave {self.number} of {count} ({kind}): {', '.join(self.teams)}"

    def to_json(self) -> dict[str, Any]:
        return {"wave": self.number, "environment": self.environment, "teams": self.teams,
                "stop_at_first_failure": self.stop_at_first_failure}

    def matrix(self) -> dict[str, Any]:
        """This wave as a GitHub Actions matrix (strategy.matrix: fromJSON(...))."""
        return {"include": [{"team": team, "wave": self.number} for team in self.teams]}


def environment_of(change: RequestChange, resolved: dict[str, ResolvedSpec]) -> str:
    """dev or prod: from the request, or for a removed one from its version at the base."""
    if change.team in resolved:
        return resolved[change.team].spec.environment
    if change.action == REMOVE and change.old_text:
        try:
            value = (yaml.safe_load(change.old_text) or {}).get("environment", "dev")
        except (yaml.YAMLError, AttributeError):
            return UNKNOWN_ENVIRONMENT
        return value if value in ENVIRONMENTS else UNKNOWN_ENVIRONMENT
    return UNKNOWN_ENVIRONMENT


def rollout_waves(change_set: ChangeSet, changes: list[RequestChange], resolved: dict[str, ResolvedSpec]) -> list[Wave]:
    """The waves `changes` (the teams of `change_set` that have work to do) go out in, in order."""
    if not changes:
        return []
    if not change_set.is_fleet:
        return [Wave(1, ALL, sorted(changes, key=lambda c: c.team), stop_at_first_failure=False)]
    waves = []
    for environment in ENVIRONMENTS:
        members = sorted((c for c in changes if environment_of(c, resolved) == environment), key=lambda c: c.team)
        if members:
            waves.append(Wave(len(waves) + 1, environment, members, stop_at_first_failure=True))
    return waves
