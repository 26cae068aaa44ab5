"""The engine interface and the results every engine returns.

Only engines call preview/up/destroy/refresh: the CLI talks to an Engine, never to Pulumi or moto.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:  # the spec model (pydantic) is not needed to read a result
    from provisioner.spec import ResolvedSpec

ACTIONS = ("create", "update", "replace", "delete", "same")

# progress(message) is called for long work; the CLI shows it on stderr.
Progress = Callable[[str], None]


def no_progress(_: str) -> None:
    return None


@dataclass
class ResourceChange:
    urn: str
    type: str
    name: str
    action: str  # one of ACTIONS
    detail: str = ""  # e.g. which inputs changed
    materialised: bool = True  # sandbox: False when no handler exists for the type
    physical_id: str = ""


@dataclass
class OperationResult:
    team: str
    target: str
    operation: str  # preview | up | destroy | refresh
    changes: list[ResourceChange] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    api_writes: int | None = None  # AWS calls that change something, when the engine can count them

    @property
    def summary(self) -> dict[str, int]:
        counts = Counter(change.action for change in self.changes)
        return {action: counts.get(action, 0) for action in ACTIONS}

    @property
    def not_materialised(self) -> list[str]:
        return [c.urn for c in self.changes if not c.materialised]

    @property
    def changed(self) -> bool:
        return any(c.action != "same" for c in self.changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "team": self.team,
            "target": self.target,
            "operation": self.operation,
            "summary": self.summary,
            "changes": [asdict(c) for c in self.changes if c.action != "same"],
            "not_materialised": self.not_materialised,
            "outputs": self.outputs,
            "warnings": self.warnings,
            "duration_s": round(self.duration_s, 3),
            "api_writes": self.api_writes,
        }


@dataclass
class StackInfo:
    team: str
    target: str
    resources: int
    last_operation: str = ""
    last_updated: str = ""  # ISO 8601, UTC
    status: str = ""  # e.g. ok, failed, stale
    paused: bool = False  # `envctl pause`: the host stopped, no endpoint (when the engine knows without asking AWS)


@dataclass
class EnvironmentStatus:
    """A team's environment as its engine reports it (`envctl status`). What callers act on is typed;
    what only one engine knows (the Pulumi backend, the sandbox server, a host's bootstrap) is in
    `details` and printed as it is."""

    team: str
    target: str
    resources: int
    last_operation: str = ""
    last_updated: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    host_url: str | None = None  # the Airflow UI, when this machine reaches it directly (a sandbox host)
    inspect_hint: str | None = None  # the AWS CLI pointed at the environment's AWS, when it answers now
    reachable: bool = True  # its AWS answers without starting anything (a stopped sandbox does not)
    no_sessions: str = ""  # why its host takes no SSM Session Manager session (`envctl connect --exec`), if it takes none
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report of `envctl status --json`."""
        return {
            "team": self.team, "target": self.target,
            # The Airflow UI first: it is what a reader (or a script) looks for.
            **({"airflow_url": self.host_url} if self.host_url is not None else {}),
            "last_operation": self.last_operation, "last_updated": self.last_updated, "resources": self.resources,
            # `envctl pause`: the program's output says so on every engine.
            "paused": bool(self.outputs.get("paused_since")),
            **({"paused_since": self.outputs["paused_since"]} if self.outputs.get("paused_since") else {}),
            **self.details,
            "outputs": self.outputs,
        }


@dataclass
class HostCommandResult:
    """A script run as root on a team's Airflow host."""

    instance_id: str
    exit_code: int
    output: str  # standard output and error, as the host gave them


class Engine(Protocol):
    name: str

    def prepare(self, progress: Progress = no_progress) -> None:
        """Make ready what every operation needs, once, before operations run in parallel (the
        sandbox starts its server; Pulumi has nothing to start)."""
        ...

    def preview(self, spec: ResolvedSpec, progress: Progress = no_progress) -> OperationResult: ...

    def up(self, spec: ResolvedSpec, progress: Progress = no_progress) -> OperationResult: ...

    def destroy(self, team: str, *, delete_data: bool = False, progress: Progress = no_progress) -> OperationResult: ...

    def refresh(self, spec: ResolvedSpec, progress: Progress = no_progress) -> OperationResult: ...

    def outputs(self, team: str) -> dict[str, Any]: ...

    def list_stacks(self) -> list[StackInfo]: ...

    def status(self, team: str) -> EnvironmentStatus: ...

    def inspect_hint(self, region: str) -> str | None:
        """The AWS CLI pointed at the AWS this engine acts on (a prefix to add a command to), or None
        when it does not answer now."""
        ...

    def push_image(self, local_ref: str, repository_url: str, region: str, progress: Progress = no_progress) -> str:
        """Push a local image to a team's ECR repository under its tag; returns the pushed reference."""
        ...

    def run_on_host(self, team: str, script: str, *, timeout_s: float,
                    progress: Progress = no_progress) -> HostCommandResult:
        """Run a bash script as root on the team's Airflow host and wait for it."""
        ...

    def aws_client(self, service: str, region: str) -> Any:
        """A boto3 client for the AWS this engine acts on (the sandbox's moto server, or AWS)."""
