"""target = "aws": each team's program applied through the Pulumi Automation API.

One stack per team (stack name = team) in the project `settings.project`, on the backend from the
settings. The Automation API drives the Pulumi CLI; every failure of the CLI is turned into one
line envctl can print (an EnvctlError subclass), never a traceback.
"""

from __future__ import annotations

import builtins
import os
import re
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from pulumi.automation import (
    CommandError,
    ConcurrentUpdateError,
    ConfigValue,
    EngineEvent,
    InvalidVersionError,
    LocalWorkspace,
    LocalWorkspaceOptions,
    OutputMap,
    ProjectBackend,
    ProjectSettings,
    PulumiCommand,
    Stack,
    StackNotFoundError,
    StepEventMetadata,
    create_or_select_stack,
    select_stack,
)
from semver import VersionInfo

from provisioner.engines.base import (
    EnvironmentStatus,
    HostCommandResult,
    OperationResult,
    Progress,
    ResourceChange,
    StackInfo,
    no_progress,
)
from provisioner.errors import EnvctlError, InvalidInput, LockConflict, MissingTool, NotFound
from provisioner.live_inputs import LiveInputs, forget_pause, inference_notes, read_live_inputs
from provisioner.settings import Settings
from provisioner.spec import ResolvedSpec

if TYPE_CHECKING:
    from provisioner.components.kept import KeptData
    from provisioner.engines.kept_data import FoundData
    from provisioner.program import BuildOptions

# Inline refresh and destroy need `--client`, added in 3.181. (PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER,
# which keeps a stack's secrets provider on a fresh work dir, came in 3.134: pulumi/pulumi#17236.)
MIN_CLI_VERSION = VersionInfo(3, 181, 0)
# The self-managed ("diy") backends refused `pulumi stack tag set` ("stack tags not supported in diy
# mode") until pulumi/pulumi#19882, first released in 3.211. envctl therefore sets stack tags only on
# the Pulumi Cloud backend (see `_team_stack`): any CLI from MIN_CLI_VERSION on works everywhere.
DIY_STACK_TAGS_VERSION = VersionInfo(3, 211, 0)
# Backends Pulumi calls self-managed (diy): state in a bucket, a folder or a database.
SELF_MANAGED_SCHEMES = ("file://", "s3://", "gs://", "azblob://", "postgres://", "postgresql://")
INSTALL_HINT = (
    "install it from https://www.pulumi.com/docs/install/ (and the aws plugin with "
    "`pulumi plugin install resource aws`), or use `--target sandbox` which needs neither"
)
CLI_MISSING = f"the Pulumi CLI is not installed; {INSTALL_HINT}"
SECRET_SHOWN_AS = "[secret]"
MAX_ERROR_LINES = 5

ProgramFactory = Callable[[ResolvedSpec, "BuildOptions | None"], Callable[[], None]]

# Pulumi step ops -> envctl actions; a replacement shows up as several ops on one URN.
ACTION_OF_OP = {
    "create": "create",
    "update": "update",
    "delete": "delete",
    "same": "same",
    "replace": "replace",
    "create-replacement": "replace",
    "delete-replaced": "replace",
    "read": "same",
    "read-replacement": "replace",
    "import": "create",
    "import-replacement": "replace",
    "discard": "delete",
    "discard-replaced": "replace",
}
VERB_OF_ACTION = {
    "create": "creating",
    "update": "updating",
    "replace": "replacing",
    "delete": "deleting",
    "refresh": "refreshing",
}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|<\{%[a-z]+%\}>")
BOILERPLATE = re.compile(
    r"^(error: (update|preview|refresh|destroy) failed"
    r"|(Updating|Previewing update|Previewing|Destroying|Previewing destroy|Refreshing) \(.*\):?"
    r"|View (Live|in Browser).*|Resources:|Outputs:|Diagnostics:|Duration: .*|@ .*\.\.\.+"
    r"|[+~-]?\s*\d+ (to )?(create|update|delete|replace|created|updated|deleted|replaced|unchanged).*"
    r"|warning: A new version of Pulumi is available.*|To upgrade from version.*)$"
)
PASSPHRASE_NEEDED = re.compile(r"passphrase must be set with PULUMI_CONFIG_PASSPHRASE")
MISSING_PLUGIN = re.compile(r"(no resource plugin|could not find plugin|failed to (download|install) plugin).*aws", re.I)


def _plain_text(line: str) -> str:
    return ANSI.sub("", line).strip()


def useful_lines(text: str) -> list[str]:
    """Lines of CLI output worth showing: no colour codes, blanks or progress boilerplate."""
    lines = (_plain_text(line) for line in text.splitlines())
    return [line.removeprefix("error: ") for line in lines if line and not BOILERPLATE.match(line)]


def _streams_of(exc: CommandError) -> tuple[str, str]:
    """(stdout, stderr) of a failed command; the SDK keeps them only in the message text."""
    text = str(exc)
    head, _, stderr = text.partition("\n stderr: ")
    _, _, stdout = head.partition("\n stdout: ")
    return stdout, stderr


def plain_outputs(outputs: OutputMap) -> dict[str, Any]:
    return {key: SECRET_SHOWN_AS if output.secret else output.value for key, output in outputs.items()}


def _name_of_urn(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _is_bookkeeping(metadata: StepEventMetadata) -> bool:
    """The root stack and Pulumi's default providers are not part of the team's environment."""
    if metadata.type == "pulumi:pulumi:Stack":
        return True
    return metadata.type.startswith("pulumi:providers:") and _name_of_urn(metadata.urn).startswith("default")


def _refresh_action(metadata: StepEventMetadata) -> str:
    if metadata.new is None:
        return "delete"
    if metadata.old is not None and metadata.old.outputs != metadata.new.outputs:
        return "update"
    return "same"


class EventRecorder:
    """Turns the engine events of one operation into ResourceChanges, progress lines and diagnostics."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self._changes: dict[str, ResourceChange] = {}
        self._announced: set[tuple[str, str]] = set()
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def __call__(self, event: EngineEvent) -> None:
        if event.resource_pre_event is not None:
            self._on_step(event.resource_pre_event.metadata, done=False)
        elif event.res_outputs_event is not None:
            self._on_step(event.res_outputs_event.metadata, done=True)
        elif event.diagnostic_event is not None:
            self._on_diagnostic(event.diagnostic_event.severity, event.diagnostic_event.message)

    @property
    def changes(self) -> list[ResourceChange]:
        return list(self._changes.values())

    def _on_step(self, metadata: StepEventMetadata, *, done: bool) -> None:
        if _is_bookkeeping(metadata):
            return
        op = metadata.op.value
        if op == "refresh":
            self._announce("refresh", metadata)
            if done:
                self._record(metadata, _refresh_action(metadata))
            return
        action = ACTION_OF_OP.get(op)
        if action is None:
            return
        self._announce(action, metadata)
        self._record(metadata, action)

    def _record(self, metadata: StepEventMetadata, action: str) -> None:
        known = self._changes.get(metadata.urn)
        if known is not None and known.action == "replace":
            return
        state = metadata.new or metadata.old
        self._changes[metadata.urn] = ResourceChange(
            urn=metadata.urn,
            type=metadata.type,
            name=_name_of_urn(metadata.urn),
            action=action,
            detail=", ".join(metadata.diffs or []),
            physical_id=(state.id or "") if state is not None else "",
        )

    def _announce(self, action: str, metadata: StepEventMetadata) -> None:
        verb = VERB_OF_ACTION.get(action)
        if verb is None or (metadata.urn, action) in self._announced:
            return
        self._announced.add((metadata.urn, action))
        self.progress(f"{verb} {metadata.type} {_name_of_urn(metadata.urn)}")

    def _on_diagnostic(self, severity: str, message: str) -> None:
        lines = useful_lines(message)
        if severity == "error":
            self.errors.extend(lines)
        elif severity == "warning":
            self.warnings.extend(line for line in lines if line not in self.warnings)


@dataclass(frozen=True)
class RetainedData:
    """The team's data bucket and KMS key, named by the stack's outputs: kept by a normal destroy
    (retain_on_delete) with the key's alias and the team's secrets."""

    bucket_name: str | None
    kms_key_arn: str | None

    @classmethod
    def from_outputs(cls, outputs: dict[str, Any]) -> "RetainedData":
        def named(key: str) -> str | None:
            value = outputs.get(key)
            return value if isinstance(value, str) and value != SECRET_SHOWN_AS else None

        return cls(bucket_name=named("bucket_name"), kms_key_arn=named("kms_key_arn"))

    @property
    def region(self) -> str | None:
        # arn:aws:kms:<region>:<account>:key/<id>
        parts = (self.kms_key_arn or "").split(":")
        return parts[3] if len(parts) > 3 else None


def _no_program() -> None:
    """Destroy, outputs and status never run the program; the SDK still wants one for inline stacks."""


class PulumiEngine:
    name = "aws"

    def __init__(
        self,
        settings: Settings,
        pulumi_command: PulumiCommand | None = None,
        *,
        build_options: "BuildOptions | None" = None,
        program_factory: ProgramFactory | None = None,
    ):
        self.settings = settings
        self._pulumi_command = pulumi_command
        self._build_options = build_options
        self._program_factory = program_factory

    # ------------------------------------------------------------------ Engine operations

    def prepare(self, progress: Progress = no_progress) -> None:
        """Nothing to start: the Pulumi CLI is found by each operation, so that a missing CLI fails
        each team's operation (reported per team by plan and apply) rather than the whole run."""

    def preview(self, spec: ResolvedSpec, progress: Progress = no_progress) -> OperationResult:
        started = time.monotonic()
        recorder = EventRecorder(progress)
        live = self._live_inputs(spec)
        with self._translated_errors(spec.team, "preview", recorder):
            stack = self._team_stack(spec, live)
            found = self._kept_data(spec, stack, progress, restore=False)
            preview = stack.preview(on_event=recorder, program=self._program(spec, live, found.kept),
                                    **self._streams(progress))
        result = self._result(spec.team, "preview", recorder, started, reported=preview.change_summary)
        result.warnings.extend(inference_notes(spec, live))
        result.warnings.extend(found.notes)
        return result

    def up(self, spec: ResolvedSpec, progress: Progress = no_progress) -> OperationResult:
        started = time.monotonic()
        recorder = EventRecorder(progress)
        live = self._live_inputs(spec)
        with self._translated_errors(spec.team, "up", recorder):
            stack = self._team_stack(spec, live)
            found = self._kept_data(spec, stack, progress, restore=True)
            up = stack.up(on_event=recorder, program=self._program(spec, live, found.kept), **self._streams(progress))
        result = self._result(spec.team, "up", recorder, started, outputs=plain_outputs(up.outputs),
                              reported=up.summary.resource_changes)
        result.warnings.extend(inference_notes(spec, live))
        result.warnings.extend(found.notes)
        return result

    def refresh(self, spec: ResolvedSpec, progress: Progress = no_progress) -> OperationResult:
        started = time.monotonic()
        recorder = EventRecorder(progress)
        with self._translated_errors(spec.team, "refresh", recorder):
            stack = self._team_stack(spec)
            refresh = stack.refresh(on_event=recorder, **self._streams(progress))
            outputs = plain_outputs(stack.outputs())
        return self._result(spec.team, "refresh", recorder, started, outputs=outputs,
                            reported=refresh.summary.resource_changes)

    def destroy(self, team: str, *, delete_data: bool = False, progress: Progress = no_progress) -> OperationResult:
        started = time.monotonic()
        recorder = EventRecorder(progress)
        with self._translated_errors(team, "destroy", recorder):
            stack = self._existing_stack(team)
            outputs = plain_outputs(stack.outputs())
            retained = RetainedData.from_outputs(outputs)
            if delete_data and outputs.get("model_package_group") and outputs.get("region"):
                from provisioner.engines.kept_data import delete_model_versions

                # the group's versions first: the provider's DeleteModelPackageGroup fails while it holds any
                delete_model_versions(self.aws_client("sagemaker", outputs["region"]), outputs["model_package_group"])
            # remove=True: the SDK removes the stack only after the destroy succeeded.
            destroy = stack.destroy(on_event=recorder, remove=True, **self._streams(progress))
        result = self._result(team, "destroy", recorder, started, reported=destroy.summary.resource_changes)
        if outputs.get("region") and (warning := forget_pause(self.aws_client("ssm", outputs["region"]), team)):
            result.warnings.append(warning)
        if delete_data:
            result.warnings.extend(self._delete_retained_data(team, retained, progress))
        else:
            result.warnings.extend(_kept_data_notes(retained))
        return result

    def outputs(self, team: str) -> dict[str, Any]:
        with self._translated_errors(team, "stack output"):
            return plain_outputs(self._existing_stack(team).outputs())

    def list_stacks(self) -> list[StackInfo]:
        with self._translated_errors("", "stack ls"):
            summaries = self._project_workspace().list_stacks()
        return [
            StackInfo(
                team=summary.name.rsplit("/", 1)[-1],
                target=self.name,
                resources=summary.resource_count or 0,
                last_updated=_iso_utc(summary.last_update),
                status="updating" if summary.update_in_progress else "ok",
            )
            for summary in summaries
        ]

    def status(self, team: str) -> EnvironmentStatus:
        with self._translated_errors(team, "stack"):
            stack = self._existing_stack(team)
            last = stack.info()
            outputs = plain_outputs(stack.outputs())
            summary = next((s for s in stack.workspace.list_stacks() if s.name.rsplit("/", 1)[-1] == team), None)
        region = outputs.get("region")
        return EnvironmentStatus(
            team=team, target=self.name, resources=(summary.resource_count or 0) if summary else 0,
            last_operation=last.kind if last else "",
            last_updated=_iso_utc(last.end_time or last.start_time) if last else "",
            outputs=outputs, inspect_hint=self.inspect_hint(region) if region else None,
            details={"backend": self.settings.effective_backend_url, "stack": team,
                     "update_in_progress": bool(summary and summary.update_in_progress),
                     "last_result": last.result if last else ""},
        )

    def inspect_hint(self, region: str) -> str | None:
        """The AWS CLI with the caller's credentials, in the team's region (and at the endpoint envctl uses, if set)."""
        endpoint = getattr(self._build_options, "endpoint_url", None)
        return f"aws --region {region}" + (f" --endpoint-url {endpoint}" if endpoint else "")

    # ------------------------------------------------------------------ stacks and workspaces

    def _team_stack(self, spec: ResolvedSpec, live: LiveInputs | None = None) -> Stack:
        """The team's stack (created on first use) with its program and region set.

        Stack tags only on the Pulumi Cloud backend: self-managed backends refused `stack tag set`
        before CLI 3.211 (pulumi/pulumi#19882), and there they would only be metadata nobody reads.
        The team and cost centre reach AWS as resource tags (the provider's default_tags) anyway.
        """
        stack = create_or_select_stack(
            stack_name=spec.team,
            project_name=self.settings.project,
            program=self._program(spec, live),
            opts=self._workspace_options(self._work_dir(spec.team)),
        )
        stack.set_all_config({"aws:region": ConfigValue(value=spec.region)})
        if not is_self_managed(self.settings.effective_backend_url):
            for key, value in _stack_tags(spec).items():
                stack.set_tag(key, value)
        return stack

    def _existing_stack(self, team: str) -> Stack:
        return select_stack(
            stack_name=team,
            project_name=self.settings.project,
            program=_no_program,
            opts=self._workspace_options(self._work_dir(team)),
        )

    def _project_workspace(self) -> LocalWorkspace:
        # Listing needs no secrets: no passphrase required.
        options = self._workspace_options(self._work_root() / ".project", require_passphrase=False)
        return LocalWorkspace(**options.__dict__)

    def _workspace_options(self, work_dir: Path, *, require_passphrase: bool = True) -> LocalWorkspaceOptions:
        command = self._command()
        env_vars = self._env_vars(require_passphrase)
        self._ensure_local_backend()
        work_dir.mkdir(parents=True, exist_ok=True)
        return LocalWorkspaceOptions(
            work_dir=str(work_dir),
            env_vars=env_vars,
            secrets_provider=self._secrets_provider(),
            project_settings=ProjectSettings(
                name=self.settings.project,
                runtime="python",
                backend=ProjectBackend(url=self.settings.effective_backend_url),
            ),
            pulumi_command=command,
        )

    def _work_root(self) -> Path:
        return self.settings.state_dir / "pulumi" / "work"

    def _work_dir(self, team: str) -> Path:
        # Persistent: Pulumi.<team>.yaml there holds the secrets provider's salt.
        return self._work_root() / team

    def _ensure_local_backend(self) -> None:
        url = self.settings.effective_backend_url
        if url.startswith("file://"):
            Path(url.removeprefix("file://")).expanduser().mkdir(parents=True, exist_ok=True)

    def _secrets_provider(self) -> str | None:
        provider = self.settings.secrets_provider
        return None if provider in ("", "default") else provider

    def _env_vars(self, require_passphrase: bool) -> dict[str, str]:
        env = {
            "PULUMI_BACKEND_URL": self.settings.effective_backend_url,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            # A fresh work dir (a CI runner) has no Pulumi.<team>.yaml with the secrets provider's
            # settings: without this the CLI makes a new passphrase manager and re-keys (or fails)
            # instead of using the provider recorded in the stack's state, and writes that one back.
            "PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER": "true",
        }
        if self.settings.secrets_provider == "passphrase":
            env.update(_passphrase_env(required=require_passphrase))
        return env

    def _program(self, spec: ResolvedSpec, live: LiveInputs | None = None,
                 kept: "KeptData | None" = None) -> Callable[[], None]:
        from dataclasses import replace

        from provisioner.program import BuildOptions, pulumi_program

        factory = self._program_factory or pulumi_program
        options = self._build_options or BuildOptions()
        if live is not None:
            options = replace(options, live=live)
        if kept is not None and not kept.empty:
            options = replace(options, kept=kept)
        return factory(spec, options)

    def _live_inputs(self, spec: ResolvedSpec) -> LiveInputs:
        """What the program needs from the team's account (default image pushed? model promoted?).
        A missing or unusable Pulumi CLI is reported first: it is the first thing to fix."""
        self._command()
        return read_live_inputs(spec, self.aws_client)

    def _kept_data(self, spec: ResolvedSpec, stack: Stack, progress: Progress, *, restore: bool) -> "FoundData":
        """The team's data an earlier destroy kept, for the program to import instead of creating it
        (CreateBucket, CreateAlias and CreateSecret fail for what exists); only the secrets when the
        stack already holds the bucket and key (its outputs name the bucket)."""
        from botocore.exceptions import BotoCoreError, ClientError

        from provisioner.engines.kept_data import find_kept_data, team_secret_names

        holds_data = "bucket_name" in stack.outputs()
        try:
            found = find_kept_data(self.aws_client, spec.team, spec.region, team_secret_names(spec.team, spec.spec.secrets),
                                   restore=restore, secrets_only=holds_data, progress=progress)
        except (BotoCoreError, ClientError) as exc:
            raise EnvctlError(f"team {spec.team}: could not look for the data an earlier destroy kept: {exc}") from None
        if not found.kept.empty and not holds_data:
            progress("adopting what an earlier destroy kept: " + ", ".join(found.kept.described()))
        return found

    def _command(self) -> PulumiCommand:
        if self._pulumi_command is None:
            self._pulumi_command = _installed_cli()
        _require_supported_version(self._pulumi_command.version)
        return self._pulumi_command

    def _streams(self, progress: Progress) -> dict[str, Callable[[str], None]]:
        def show(line: str) -> None:
            text = _plain_text(line)
            if text:
                progress(text)

        return {"on_output": show, "on_error": show}

    # ------------------------------------------------------------------ results and errors

    def _result(self, team: str, operation: str, recorder: EventRecorder, started: float, *,
                outputs: dict[str, Any] | None = None, reported: dict | None = None) -> OperationResult:
        warnings = list(recorder.warnings)
        if not recorder.changes and _reported_changes(reported):
            warnings.append(f"Pulumi reported changes {_reported_changes(reported)} but sent no per-resource events")
        return OperationResult(
            team=team,
            target=self.name,
            operation=operation,
            changes=recorder.changes,
            outputs=outputs or {},
            duration_s=time.monotonic() - started,
            warnings=warnings,
        )

    @contextmanager
    def _translated_errors(self, team: str, operation: str, recorder: EventRecorder | None = None) -> Iterator[None]:
        try:
            yield
        except ConcurrentUpdateError:
            raise LockConflict(
                f"another run holds the lock of team {team}'s stack; wait for it or, if it died, "
                f"run `pulumi cancel --yes {team}` in {self._work_dir(team)}"
            ) from None
        except StackNotFoundError:
            raise NotFound(f"team {team} has no stack on {self.settings.effective_backend_url}") from None
        except CommandError as exc:
            raise _command_failure(team, operation, exc, recorder.errors if recorder else []) from None
        except InvalidVersionError as exc:
            raise _unsupported_cli(str(exc)) from None
        except builtins.RuntimeError as exc:  # a preview whose summary never arrived
            raise EnvctlError(f"pulumi {operation} of team {team} did not complete: {exc}") from None

    def run_on_host(self, team: str, script: str, *, timeout_s: float,
                    progress: Progress = no_progress) -> HostCommandResult:
        from provisioner.engines.host_commands import run_with_ssm

        outputs = self.outputs(team)
        ssm = self.aws_client("ssm", outputs["region"])
        return run_with_ssm(ssm, outputs["instance_id"], script, comment=f"envctl {team}", timeout_s=timeout_s,
                            progress=progress)

    def push_image(self, local_ref: str, repository_url: str, region: str, progress: Progress = no_progress) -> str:
        """To the team's ECR repository, logged in with the caller's credentials."""
        from provisioner.inference_image import push_image

        return push_image(local_ref, repository_url, ecr_client=self.aws_client("ecr", region), progress=progress)

    def aws_client(self, service: str, region: str) -> Any:
        import boto3

        return boto3.client(service, region_name=region, endpoint_url=getattr(self._build_options, "endpoint_url", None))

    def _delete_retained_data(self, team: str, data: RetainedData, progress: Progress) -> list[str]:
        """Delete what the destroy kept: the bucket with every object version, the key alias, the key
        (scheduled for deletion), the team's secrets (without recovery); returns what to tell the user."""
        if not data.bucket_name or not data.kms_key_arn or not data.region:
            return [f"team {team}'s stack had no bucket_name/kms_key_arn outputs: no data was deleted"]
        from botocore.exceptions import BotoCoreError, ClientError

        from provisioner.engines.kept_data import delete_kept_data

        try:
            return delete_kept_data(self.aws_client, team, data.region, bucket=data.bucket_name,
                                    key_arn=data.kms_key_arn, progress=progress)
        except (BotoCoreError, ClientError) as exc:
            raise EnvctlError(f"team {team}'s stack was destroyed but its data could not be deleted: {exc}") from None


# ---------------------------------------------------------------------- helpers


def _installed_cli() -> PulumiCommand:
    """The Pulumi CLI on PATH; creating it runs `pulumi version`."""
    try:
        return PulumiCommand(version=MIN_CLI_VERSION)
    except FileNotFoundError:
        raise MissingTool(CLI_MISSING) from None
    except InvalidVersionError as exc:
        raise _unsupported_cli(str(exc)) from None
    except (subprocess.CalledProcessError, PermissionError) as exc:
        raise MissingTool(f"the Pulumi CLI on PATH does not run (`pulumi version`: {exc}); {INSTALL_HINT}") from None


def is_self_managed(backend_url: str) -> bool:
    """Whether the backend is a self-managed ("diy") one rather than Pulumi Cloud (http(s)://)."""
    return backend_url.lower().startswith(SELF_MANAGED_SCHEMES)


def cli_supported(version: VersionInfo) -> bool:
    """Whether envctl can drive a Pulumi CLI of this version (on any backend)."""
    return version.major == MIN_CLI_VERSION.major and version >= MIN_CLI_VERSION


def _require_supported_version(version: VersionInfo | None) -> None:
    # None: the version check was opted out of (PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK).
    if version is not None and not cli_supported(version):
        raise _unsupported_cli(f"the Pulumi CLI is version {version}")


def _unsupported_cli(detail: str) -> MissingTool:
    return MissingTool(
        f"the installed Pulumi CLI cannot be used ({_plain_text(detail.splitlines()[0]) if detail else 'unknown version'}); "
        f"envctl needs Pulumi CLI {MIN_CLI_VERSION.major}.x, at least {MIN_CLI_VERSION}; "
        f"{INSTALL_HINT}"
    )


def _passphrase_env(*, required: bool) -> dict[str, str]:
    passphrase = os.environ.get("PULUMI_CONFIG_PASSPHRASE")
    if passphrase is not None:
        return {"PULUMI_CONFIG_PASSPHRASE": passphrase}
    passphrase_file = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if passphrase_file:
        if not Path(passphrase_file).is_file():
            raise InvalidInput(f"PULUMI_CONFIG_PASSPHRASE_FILE: {passphrase_file}: no such file")
        return {"PULUMI_CONFIG_PASSPHRASE_FILE": passphrase_file}
    if required:
        raise InvalidInput(
            "the passphrase secrets provider needs a passphrase: set PULUMI_CONFIG_PASSPHRASE "
            "or PULUMI_CONFIG_PASSPHRASE_FILE (or set secrets_provider to an awskms:// key)"
        )
    return {}


def _stack_tags(spec: ResolvedSpec) -> dict[str, str]:
    return {"envctl:team": spec.team, "envctl:cost-center": spec.spec.cost_center}


def _command_failure(team: str, operation: str, exc: CommandError, diagnostics: list[str]) -> EnvctlError:
    stdout, stderr = _streams_of(exc)
    if MISSING_PLUGIN.search(stderr) or MISSING_PLUGIN.search(stdout):
        return MissingTool(f"the Pulumi aws plugin is missing; {INSTALL_HINT}")
    if PASSPHRASE_NEEDED.search(stderr):
        # The stack's state (or Pulumi.<team>.yaml) records the passphrase provider, whatever envctl.toml says.
        return InvalidInput(
            f"team {team}'s stack uses the passphrase secrets provider: set PULUMI_CONFIG_PASSPHRASE or "
            "PULUMI_CONFIG_PASSPHRASE_FILE to the passphrase it was created with"
        )
    lines = diagnostics or useful_lines(stderr) or useful_lines(stdout)
    reason = " | ".join(lines[-MAX_ERROR_LINES:]) or "the Pulumi CLI failed without a message"
    subject = f"pulumi {operation} failed for team {team}" if team else f"pulumi {operation} failed"
    return EnvctlError(f"{subject}: {reason}")


def _reported_changes(reported: dict | None) -> dict[str, int]:
    return {str(getattr(op, "value", op)): count for op, count in (reported or {}).items()
            if str(getattr(op, "value", op)) != "same" and count}


def _iso_utc(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.replace(tzinfo=moment.tzinfo or timezone.utc).isoformat()


def _kept_data_notes(data: RetainedData) -> list[str]:
    kept = [f"bucket {data.bucket_name}" if data.bucket_name else "", f"KMS key {data.kms_key_arn}" if data.kms_key_arn else ""]
    kept = [item for item in kept if item]
    if not kept:
        return []
    return [f"kept {' and '.join(kept)} with the key's alias and the team's secrets (the team's data; the next "
            "create adopts them); destroy with --delete-data to delete them"]
