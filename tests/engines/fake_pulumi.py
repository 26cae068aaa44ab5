"""A stand-in for the Pulumi CLI at the boundary the Automation API talks to (`PulumiCommand.run`).

The real `pulumi.automation` code runs unchanged on top of it: stack select/init, `config set-all`,
`up`/`preview`/`refresh`/`destroy` (whose engine events are written as JSON lines to the
`--event-log` file the SDK watches), `stack output`, `stack history`, `stack rm`, `stack ls`.
It keeps a tiny in-memory backend (stacks, their config, tags, resources and outputs), records every
command it is asked to run, and can be told to fail a command with a given stderr, which it turns
into the SDK's own exception (ConcurrentUpdateError, StackNotFoundError, ...) exactly as the real
`PulumiCommand.run` does.

It refuses what the real CLI refuses (never more lenient):
- `stack tag set` on a self-managed ("diy") backend before 3.211: "stack tags not supported in diy
  mode" (pkg/backend/diy/backend.go `UpdateStackTags`, until pulumi/pulumi#19882).
- A stack's secrets provider lives in its state and in `Pulumi.<stack>.yaml` (encryptionsalt, or
  secretsprovider + encryptedkey). When the work dir lacks that file's settings, the CLI builds the
  backend's default manager, a passphrase one (it needs a passphrase and mints a new salt), and the
  next update re-encrypts the state with it: the stack is re-keyed. Only with
  PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER=true (CLI >= 3.134, pulumi/pulumi#17236) does it use the
  manager recorded in the state and write its settings back to the file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml
from pulumi.automation import CommandResult
from pulumi.automation.errors import create_command_error
from semver import VersionInfo

# Versions up to 3.205 write engine events to a file; newer ones stream them over a socket.
DEFAULT_VERSION = "3.200.0"
DIY_STACK_TAGS_VERSION = VersionInfo(3, 211, 0)  # pulumi/pulumi#19882
FALLBACK_ENV_VERSION = VersionInfo(3, 134, 0)  # pulumi/pulumi#17236
SELF_MANAGED_SCHEMES = ("file://", "s3://", "gs://", "azblob://", "postgres://", "postgresql://")
DIY_TAGS_STDERR = "error: stack tags not supported in diy mode"
PASSPHRASE_MISSING_STDERR = ("error: getting secrets manager: passphrase must be set with PULUMI_CONFIG_PASSPHRASE "
                             "or PULUMI_CONFIG_PASSPHRASE_FILE environment variables")
SECRETS_SETTINGS = ("encryptionsalt", "secretsprovider", "encryptedkey")
LOCK_CONFLICT_STDERR = "error: [409] Conflict: Another update is currently in progress."

# What the fake refuses because the real CLI does; each has a test (the meta-test checks).
CLI_RULES = {
    "diy-stack-tags": "diy backends refuse `stack tag set` before 3.211: pkg/backend/diy/backend.go "
                      "UpdateStackTags, lifted by pulumi/pulumi#19882",
    "secrets-manager-of-a-fresh-work-dir": "without Pulumi.<stack>.yaml's secrets settings the CLI makes a new "
                                           "passphrase manager (no passphrase: error; else the update re-keys) unless "
                                           "PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER=true: pulumi/pulumi#17236, "
                                           "pkg/cmd/pulumi/stack/secrets.go",
}
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
KIND_OF_OPERATION = {"up": "update", "preview": "preview", "refresh": "refresh", "destroy": "destroy"}


def not_found_stderr(stack: str) -> str:
    return f"error: no stack named '{stack}' found"


@dataclass
class Call:
    args: list[str]  # without the --non-interactive the SDK adds to every command
    cwd: str
    env: dict[str, str]

    @property
    def line(self) -> str:
        return " ".join(self.args)

    def option(self, name: str) -> str | None:
        return self.args[self.args.index(name) + 1] if name in self.args else None


@dataclass
class FakeResource:
    """One resource step of a scripted operation; `op` is Pulumi's step op (create, same, replace...)."""

    type: str
    name: str
    op: str = "create"
    id: str = ""
    old_outputs: dict[str, Any] | None = None  # refresh: the state before
    new_outputs: dict[str, Any] | None = None  # refresh: the state after (None: gone)


@dataclass
class FakeStack:
    name: str
    config: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    resources: list[FakeResource] = field(default_factory=list)
    outputs: dict[str, tuple[Any, bool]] = field(default_factory=dict)  # name -> (value, secret)
    history: list[dict[str, Any]] = field(default_factory=list)
    # The secrets manager recorded in the state: the settings Pulumi.<stack>.yaml must carry.
    secrets: dict[str, str] = field(default_factory=lambda: {"encryptionsalt": "v1:fakesalt:v1:fake"})
    rekeyed: bool = False  # an update re-encrypted the state with a manager other than the recorded one


@dataclass
class Failure:
    stderr: str
    stdout: str = ""
    code: int = 255
    after_events: bool = False  # an operation that fails midway: its events are written first


class FakePulumi:
    """Scripted Pulumi CLI; pass it as `LocalWorkspaceOptions(pulumi_command=...)`."""

    command = "pulumi"

    def __init__(self, version: str = DEFAULT_VERSION):
        self.version = VersionInfo.parse(version)
        self.calls: list[Call] = []
        self.stacks: dict[str, FakeStack] = {}
        self.plans: dict[str, list[FakeResource]] = {}
        self.outputs_after_up: dict[str, tuple[Any, bool]] = {}
        self.diagnostics: list[tuple[str, str]] = []  # (severity, message) written by the next operation
        self.stdout_lines: list[str] = ["Updating (fake):", "Resources:", "Duration: 1s"]
        self.omit_summary = False
        self._failures: list[tuple[str, Failure]] = []

    # ------------------------------------------------------------------ scripting

    def plan(self, operation: str, resources: list[FakeResource]) -> None:
        """The resource steps the next `operation` (up, preview, refresh, destroy) reports."""
        self.plans[operation] = resources

    def add_stack(self, name: str, *, resources: list[FakeResource] | None = None,
                  outputs: dict[str, tuple[Any, bool]] | None = None,
                  secrets_provider: str = "passphrase") -> FakeStack:
        """A stack made earlier, elsewhere: its state exists, this work dir has no Pulumi.<name>.yaml."""
        stack = FakeStack(name, resources=list(resources or []), outputs=dict(outputs or {}),
                          secrets=_secrets_settings(secrets_provider))
        self.stacks[name] = stack
        return stack

    def fail(self, command: str, stderr: str, *, stdout: str = "", code: int = 255, after_events: bool = False) -> None:
        """Every command whose line starts with `command` (e.g. "up", "stack select") fails so."""
        self._failures.append((command, Failure(stderr, stdout, code, after_events)))

    def lines(self) -> list[str]:
        return [call.line for call in self.calls]

    def calls_to(self, command: str) -> list[Call]:
        return [call for call in self.calls if call.line.startswith(command)]

    # ------------------------------------------------------------------ PulumiCommand interface

    def run(self, args: list[str], cwd: str, additional_env: Mapping[str, str],
            on_output: Callable[[str], Any] | None = None,
            on_error: Callable[[str], Any] | None = None) -> CommandResult:
        call = Call([a for a in args if a != "--non-interactive"], cwd, dict(additional_env))
        self.calls.append(call)
        failure = next((f for prefix, f in self._failures if call.line.startswith(prefix)), None)
        if failure is not None:
            if failure.after_events:
                self._operation(call, apply=False)
            elif call.option("--event-log"):
                # The engine closes its event stream with a cancel event; without it the SDK waits 5 s.
                _append_events(Path(call.option("--event-log")), [{"cancelEvent": {}}])
            result = CommandResult(stdout=failure.stdout, stderr=failure.stderr, code=failure.code)
        else:
            result = self._answer(call)
        for line in result.stdout.splitlines():
            on_output and on_output(line)
        for line in result.stderr.splitlines():
            on_error and on_error(line)
        if result.code != 0:
            raise create_command_error(result)
        return result

    # ------------------------------------------------------------------ answers

    def _answer(self, call: Call) -> CommandResult:
        words = _command_words(call.args)
        handlers: dict[tuple[str, ...], Callable[[Call], CommandResult]] = {
            ("version",): lambda c: _ok(f"v{self.version}"),
            ("stack", "select"): self._stack_select,
            ("stack", "init"): self._stack_init,
            ("stack", "rm"): self._stack_rm,
            ("stack", "ls"): self._stack_ls,
            ("stack", "output"): self._stack_output,
            ("stack", "history"): self._stack_history,
            ("stack", "tag", "set"): self._stack_tag_set,
            ("config", "set-all"): self._config_set_all,
            ("up",): self._operation,
            ("preview",): self._operation,
            ("refresh",): self._operation,
            ("destroy",): self._operation,
        }
        for length in (3, 2, 1):
            handler = handlers.get(tuple(words[:length]))
            if handler is not None:
                return handler(call)
        return CommandResult(stdout="", stderr=f"fake pulumi: unscripted command: {call.line}", code=2)

    def _stack(self, call: Call, name: str | None = None) -> FakeStack | CommandResult:
        name = name or call.option("--stack") or ""
        stack = self.stacks.get(name)
        return stack if stack is not None else CommandResult("", not_found_stderr(name), 255)

    def _stack_select(self, call: Call) -> CommandResult:
        stack = self._stack(call)
        return stack if isinstance(stack, CommandResult) else _ok("")

    def _stack_init(self, call: Call) -> CommandResult:
        name = _command_words(call.args)[2]
        if name in self.stacks:
            return CommandResult("", f"error: stack '{name}' already exists", 255)
        provider = call.option("--secrets-provider") or "passphrase"  # a diy backend's default
        if provider == "passphrase" and not _has_passphrase(call.env):
            return CommandResult("", PASSPHRASE_MISSING_STDERR, 255)
        settings = _secrets_settings(provider)
        self.stacks[name] = FakeStack(name, secrets=settings)
        # As the CLI does: the secrets manager's settings go to Pulumi.<stack>.yaml in the work dir.
        _update_stack_file(call.cwd, name, settings)
        return _ok(f"Created stack '{name}'")

    def _stack_rm(self, call: Call) -> CommandResult:
        name = call.args[-1]
        if name not in self.stacks:
            return CommandResult("", not_found_stderr(name), 255)
        if self.stacks[name].resources and "--force" not in call.args:
            return CommandResult("", f"error: '{name}' still has resources; removal rejected", 255)
        del self.stacks[name]
        if "--preserve-config" not in call.args:
            (Path(call.cwd) / f"Pulumi.{name}.yaml").unlink(missing_ok=True)
        return _ok(f"Stack '{name}' has been removed!")

    def _stack_ls(self, call: Call) -> CommandResult:
        listed = []
        for stack in self.stacks.values():
            entry: dict[str, Any] = {"name": stack.name, "current": False, "updateInProgress": False,
                                     "resourceCount": len(stack.resources)}
            if stack.history:
                entry["lastUpdate"] = stack.history[-1]["endTime"]
            listed.append(entry)
        return _ok(json.dumps(listed))

    def _stack_output(self, call: Call) -> CommandResult:
        stack = self._stack(call)
        if isinstance(stack, CommandResult):
            return stack
        show = "--show-secrets" in call.args
        return _ok(json.dumps({k: (v if show or not secret else "[secret]") for k, (v, secret) in stack.outputs.items()}))

    def _stack_history(self, call: Call) -> CommandResult:
        stack = self._stack(call)
        if isinstance(stack, CommandResult):
            return stack
        newest_first = list(reversed(stack.history))
        page_size = call.option("--page-size")
        return _ok(json.dumps(newest_first[: int(page_size)] if page_size else newest_first))

    def _stack_tag_set(self, call: Call) -> CommandResult:
        stack = self._stack(call)
        if isinstance(stack, CommandResult):
            return stack
        if _backend_url(call).startswith(SELF_MANAGED_SCHEMES) and self.version < DIY_STACK_TAGS_VERSION:
            return CommandResult("", DIY_TAGS_STDERR, 255)
        key, value = _command_words(call.args)[3:5]
        stack.tags[key] = value
        return _ok("")

    def _config_set_all(self, call: Call) -> CommandResult:
        stack = self._stack(call)
        if isinstance(stack, CommandResult):
            return stack
        for flag, value in zip(call.args, call.args[1:], strict=False):
            if flag in ("--plaintext", "--secret"):
                key, _, text = value.partition("=")
                stack.config[key] = text
        _update_stack_file(call.cwd, stack.name, {"config": dict(stack.config)})
        return _ok("")

    def _operation(self, call: Call, *, apply: bool = True) -> CommandResult:
        operation = call.args[0]
        stack = self._stack(call)
        if isinstance(stack, CommandResult):
            return stack
        manager = self._secrets_manager(call, stack)
        if isinstance(manager, CommandResult):
            return manager
        steps = self.plans.pop(operation, None)
        if steps is None:
            steps = self._default_steps(operation, stack)
        counts = _count_ops(steps)
        event_log = call.option("--event-log")
        if event_log:
            project = _project_name(call.cwd)
            self._write_events(Path(event_log), stack, project, steps, counts, planning=operation == "preview")
        if apply and operation != "preview":
            self._apply(operation, stack, steps, counts)
            if manager != stack.secrets:
                stack.secrets, stack.rekeyed = manager, True  # the new snapshot carries the new manager
        return _ok("\n".join(self.stdout_lines))

    def _secrets_manager(self, call: Call, stack: FakeStack) -> dict[str, str] | CommandResult:
        """The secrets manager an operation uses (its settings), as the CLI picks it."""
        path = Path(call.cwd) / f"Pulumi.{stack.name}.yaml"
        current = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
        settings = {key: current[key] for key in SECRETS_SETTINGS if current.get(key)}
        fallback = call.env.get("PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER", "").lower() in ("1", "true")
        if not ("encryptionsalt" in settings or {"secretsprovider", "encryptedkey"} <= set(settings)):
            if not (fallback and self.version >= FALLBACK_ENV_VERSION):
                settings = {}
            else:
                settings = dict(stack.secrets)
                _update_stack_file(call.cwd, stack.name, settings)  # restored from the state
        if settings:
            # A passphrase manager (from the file or the state) cannot decrypt without the passphrase.
            if "encryptionsalt" in settings and not _has_passphrase(call.env):
                return CommandResult("", PASSPHRASE_MISSING_STDERR, 255)
            return settings
        # No settings: the diy default, a new passphrase manager with a new salt.
        if not _has_passphrase(call.env):
            return CommandResult("", PASSPHRASE_MISSING_STDERR, 255)
        fresh = {"encryptionsalt": f"v1:fresh-{len(self.calls)}:v1:fake"}
        _update_stack_file(call.cwd, stack.name, fresh)
        return fresh

    def _default_steps(self, operation: str, stack: FakeStack) -> list[FakeResource]:
        if operation == "destroy":
            return [FakeResource(r.type, r.name, "delete", r.id) for r in reversed(stack.resources)]
        return [FakeResource(r.type, r.name, "same", r.id) for r in stack.resources]

    def _apply(self, operation: str, stack: FakeStack, steps: list[FakeResource], counts: dict[str, int]) -> None:
        if operation == "destroy":
            stack.resources, stack.outputs = [], {}
        elif operation == "up":
            stack.resources = [s for s in steps if s.op != "delete"]
            stack.outputs = dict(self.outputs_after_up)
        now = datetime.now(timezone.utc).strftime(DATETIME_FORMAT)
        stack.history.append({
            "kind": KIND_OF_OPERATION[operation], "startTime": now, "endTime": now, "message": "",
            "environment": {"exec.kind": "auto.inline"}, "config": {}, "result": "succeeded",
            "version": len(stack.history) + 1, "resourceChanges": counts,
        })

    def _write_events(self, path: Path, stack: FakeStack, project: str, steps: list[FakeResource],
                      counts: dict[str, int], *, planning: bool) -> None:
        events: list[dict[str, Any]] = [{"preludeEvent": {"config": stack.config}}]
        for step in steps:
            metadata = _step_metadata(stack.name, project, step)
            events.append({"resourcePreEvent": {"metadata": metadata, "planning": planning}})
            events.append({"resOutputsEvent": {"metadata": metadata, "planning": planning}})
        for severity, message in self.diagnostics:
            events.append({"diagnosticEvent": {"severity": severity, "message": message, "color": "never"}})
        self.diagnostics = []
        if not self.omit_summary:
            events.append({"summaryEvent": {"maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": counts}})
        events.append({"cancelEvent": {}})
        _append_events(path, events)


def _append_events(path: Path, events: list[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as log:
        for sequence, event in enumerate(events, start=1):
            log.write(json.dumps({"sequence": sequence, "timestamp": int(time.time()), **event}) + "\n")


def _secrets_settings(provider: str) -> dict[str, str]:
    if provider == "passphrase":
        return {"encryptionsalt": "v1:fakesalt:v1:fake"}
    return {"secretsprovider": provider, "encryptedkey": "ZmFrZS1kYXRhLWtleQ=="}


def _has_passphrase(env: Mapping[str, str]) -> bool:
    return "PULUMI_CONFIG_PASSPHRASE" in env or bool(env.get("PULUMI_CONFIG_PASSPHRASE_FILE"))


def _backend_url(call: Call) -> str:
    """The backend the CLI uses: PULUMI_BACKEND_URL, else the project's backend.url."""
    if call.env.get("PULUMI_BACKEND_URL"):
        return call.env["PULUMI_BACKEND_URL"]
    project = yaml.safe_load((Path(call.cwd) / "Pulumi.yaml").read_text()) or {}
    return (project.get("backend") or {}).get("url") or "https://api.pulumi.com"


def _ok(stdout: str) -> CommandResult:
    return CommandResult(stdout=stdout, stderr="", code=0)


def _command_words(args: list[str]) -> list[str]:
    """The subcommand and its positional arguments, up to the first flag."""
    words = []
    for arg in args:
        if arg.startswith("-"):
            break
        words.append(arg)
    return words


def _count_ops(steps: list[FakeResource]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.op] = counts.get(step.op, 0) + 1
    return counts


def _project_name(work_dir: str) -> str:
    """The project of the workspace, from the Pulumi.yaml the SDK wrote, as the CLI reads it."""
    return yaml.safe_load((Path(work_dir) / "Pulumi.yaml").read_text())["name"]


def _step_metadata(stack: str, project: str, step: FakeResource) -> dict[str, Any]:
    urn = f"urn:pulumi:{stack}::{project}::{step.type}::{step.name}"

    def state(outputs: dict[str, Any] | None) -> dict[str, Any] | None:
        if outputs is None:
            return None
        return {"type": step.type, "urn": urn, "id": step.id, "custom": True, "outputs": outputs}

    metadata: dict[str, Any] = {"op": step.op, "urn": urn, "type": step.type, "provider": ""}
    if step.op == "refresh":
        metadata["old"] = state(step.old_outputs)
        metadata["new"] = state(step.new_outputs)
    elif step.op == "delete":
        metadata["old"] = state({})
    else:
        metadata["new"] = state({})
    return metadata


def _update_stack_file(work_dir: str, stack: str, values: dict[str, Any]) -> None:
    path = Path(work_dir) / f"Pulumi.{stack}.yaml"
    current = yaml.safe_load(path.read_text()) if path.exists() else {}
    path.write_text(yaml.safe_dump({**(current or {}), **values}))
