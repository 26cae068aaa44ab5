"""SandboxEngine: the unchanged program under Pulumi mocks, each resource made real in moto.

The sandbox differs from AWS where moto does (each handler's docstring says how); it never
drops a resource silently: a type without a handler is recorded and reported "not materialised".

This module is the Engine protocol and composes the parts: planner.py decides what each
registration needs, applier.py carries it out (or, for a preview, answers as if), materialiser.py
connects both to the mocked program run, state.py keeps the team's state, team_hosts.py the hosts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from provisioner.engines.base import EnvironmentStatus, HostCommandResult, OperationResult, Progress, StackInfo, no_progress
from provisioner.engines.sandbox.applier import Applier, DryRun
from provisioner.engines.sandbox.handlers.context import SandboxContext
from provisioner.engines.sandbox.planner import (nothing_can_change, removals_after_program, removals_for_destroy,
                                                 stored_change)
from provisioner.engines.sandbox.server_control import ACCOUNT_ID, SandboxServer, ServerInfo, aws_command
from provisioner.engines.sandbox.state import StackState, StateStore, StoredResource
from provisioner.engines.sandbox.team_hosts import TeamHosts
from provisioner.errors import EnvctlError, NotFound
from provisioner.live_inputs import LiveInputs, forget_pause, inference_notes, read_live_inputs
from provisioner.settings import Settings

if TYPE_CHECKING:  # pulumi and the spec model are heavy: list, status and outputs need neither
    from provisioner.engines.kept_data import FoundData
    from provisioner.spec import ResolvedSpec


KEPT_TYPES_SHOWN = ("aws:s3/bucket:Bucket", "aws:kms/key:Key", "aws:kms/alias:Alias")


class SandboxEngine:
    name = "sandbox"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.server = SandboxServer(settings.sandbox_dir, settings.sandbox_port)
        self.store = StateStore(settings.sandbox_dir)
        self.hosts = TeamHosts(settings, ACCOUNT_ID)

    # ---------------------------------------------------------------- Engine protocol

    def prepare(self, progress: Progress = no_progress) -> None:
        """Start the one sandbox server before teams race to start it."""
        self.server.ensure_started(progress)

    def preview(self, spec: ResolvedSpec, progress: Progress = no_progress) -> OperationResult:
        return self._run(spec, progress, apply=False)

    def up(self, spec: ResolvedSpec, progress: Progress = no_progress) -> OperationResult:
        return self._run(spec, progress, apply=True)

    def destroy(self, team: str, *, delete_data: bool = False, progress: Progress = no_progress) -> OperationResult:
        started = time.monotonic()
        with self.store.lock(team):
            if self.store.load(team) is None:
                raise NotFound(f"team {team} has no environment in the sandbox",
                               hint="`envctl list` shows the teams that have one")
            info = self.server.ensure_started(progress)
            state, warnings = self._trusted_state(team, info)
            result = OperationResult(team=team, target=self.name, operation="destroy", warnings=warnings)
            if state is None:
                result.duration_s = time.monotonic() - started
                return result
            ctx = self._context(info, delete_data=delete_data, hosts=self.hosts.for_operation(info, progress))
            removals = removals_for_destroy(state, delete_data=delete_data)
            Applier(ctx, self.store, state, state.region, progress).remove(removals)
            if delete_data:  # secrets the program never made (`envctl secrets set` of connections, variables)
                from provisioner.engines.kept_data import delete_team_secrets

                delete_team_secrets(ctx.client("secretsmanager", state.region), team, progress)
            if warning := forget_pause(ctx.client("ssm", state.region), team):
                result.warnings.append(warning)
            self.store.remove(team)
            if kept := [removal.resource for removal in removals if not removal.delete]:
                result.warnings.append(_kept_warning(kept))
            result.changes = [removal.change() for removal in removals if removal.delete]
            result.duration_s = time.monotonic() - started
            result.api_writes = ctx.write_calls
            return result

    def refresh(self, spec: ResolvedSpec, progress: Progress = no_progress) -> OperationResult:
        """Drops from the state what is no longer in the sandbox, and reports it as deleted."""
        started = time.monotonic()
        with self.store.lock(spec.team):
            info = self.server.ensure_started(progress)
            state, warnings = self._trusted_state(spec.team, info)
            result = OperationResult(team=spec.team, target=self.name, operation="refresh", warnings=warnings)
            if state is None:
                raise NotFound(f"team {spec.team} has no environment in the sandbox")
            result.changes = Applier(self._context(info), self.store, state, spec.region, progress).forget_vanished()
            result.duration_s = time.monotonic() - started
            return result

    def outputs(self, team: str) -> dict[str, Any]:
        state = self.store.load(team)
        if state is None:
            raise NotFound(f"team {team} has no environment in the sandbox", hint=f"create it with `envctl create {team}`")
        return state.outputs

    def list_stacks(self) -> list[StackInfo]:
        stacks = []
        for team in self.store.teams():
            state = self.store.load(team)
            if state is not None:
                stacks.append(StackInfo(team=team, target=self.name, resources=len(state.resources),
                                        last_operation=state.last_operation, last_updated=state.last_updated,
                                        status=state.status, paused=bool(state.outputs.get("paused_since"))))
        return stacks

    def status(self, team: str) -> EnvironmentStatus:
        state = self.store.load(team)
        if state is None:
            raise NotFound(f"team {team} has no environment in the sandbox", hint=f"create it with `envctl create {team}`")
        info = self.server.running()
        host = self.hosts.describe(state)
        details: dict[str, Any] = {
            "status": state.status,
            "not_materialised": [r.urn for r in state.resources.values() if not r.materialised],
            "sandbox": {"endpoint": info.endpoint if info else "", "running": info is not None,
                        "state_matches_server": bool(info and info.server_id == state.server_id)},
        }
        if state.error:
            details["error"] = state.error
        if info and info.server_id == state.server_id and state.outputs.get("bootstrap_parameter"):
            details["bootstrap"] = self._bootstrap_result(info, state)
            details["bootstrap_status"] = details["bootstrap"].get("status", "unknown")
        if host is not None:
            details["host"] = host
        region = state.outputs.get("region") or state.region
        return EnvironmentStatus(
            team=team, target=self.name, resources=len(state.resources), last_operation=state.last_operation,
            last_updated=state.last_updated, outputs=state.outputs, host_url=host["airflow_url"] if host else None,
            inspect_hint=aws_command(info.endpoint, region) if info and region else None, reachable=info is not None,
            no_sessions="the sandbox has no Session Manager; create the team with --hosts to get a local Airflow URL",
            details=details,
        )

    def run_on_host(self, team: str, script: str, *, timeout_s: float,
                    progress: Progress = no_progress) -> HostCommandResult:
        """The team's sandbox host runs it (moto's SSM records commands but runs none). Holds the
        team's lock: an update must not replace the host under a running command."""
        with self.store.lock(team):
            state = self.store.load(team)
            if state is None:
                raise NotFound(f"team {team} has no environment in the sandbox",
                               hint=f"create it with `envctl create {team} --hosts`")
            instance_id = state.outputs.get("instance_id", "")
            hosts = self.hosts.existing(progress)
            if not instance_id or hosts.describe(instance_id) is None:
                raise EnvctlError(f"{team}'s instance {instance_id or '(none)'} has no sandbox host, and in the sandbox only "
                                  "a host runs commands: it was created without --hosts",
                                  hint=f"`envctl destroy {team} --yes` then `envctl create {team} --hosts` "
                                       "(the team bucket and its backups are kept)")
            progress(f"running on sandbox host {instance_id}")
            exit_code, output = hosts.run_in_host(instance_id, script, timeout_s=timeout_s)
            return HostCommandResult(instance_id=instance_id, exit_code=exit_code, output=output)

    def image_registry(self, progress: Progress = no_progress) -> str:
        """host:port of the sandbox's container registry, where pushes to a team's ECR repository go."""
        from provisioner.engines.sandbox.container_registry import RegistryServer

        return RegistryServer(self.settings.sandbox_dir, self.settings.image_registry).ensure_started(progress).address

    def inspect_hint(self, region: str) -> str | None:
        info = self.server.running()
        return aws_command(info.endpoint, region) if info else None

    def push_image(self, local_ref: str, repository_url: str, region: str, progress: Progress = no_progress) -> str:
        """To the sandbox's registry, the image recorded in its ECR (moto's ECR has no registry behind it)."""
        from provisioner.inference_image import push_to_sandbox

        return push_to_sandbox(local_ref, repository_url, registry=self.image_registry(progress),
                               ecr_client=self.aws_client("ecr", region), progress=progress)

    def aws_client(self, service: str, region: str) -> Any:
        import boto3

        info = self.server.ensure_started()
        return boto3.client(service, endpoint_url=info.endpoint, region_name=region, **info.credentials)

    # ---------------------------------------------------------------- internals

    def _run(self, spec: ResolvedSpec, progress: Progress, *, apply: bool) -> OperationResult:
        from provisioner.engines.mocked import ProgramFailed, run_program
        from provisioner.engines.sandbox.materialiser import SandboxMaterialiser
        from provisioner.fingerprint import program_fingerprint
        from provisioner.program import BuildOptions, build

        started = time.monotonic()
        operation = "up" if apply else "preview"
        with self.store.lock(spec.team):
            info = self.server.ensure_started(progress)
            live = self._live_inputs(spec, info)
            # A pushed image or a promotion changes what the program registers: part of the fingerprint.
            fingerprint = f"{program_fingerprint(spec)}-{live.digest}"
            state, warnings = self._trusted_state(spec.team, info)
            warnings = warnings + inference_notes(spec, live)
            if state is not None and apply:
                warnings = warnings + self.hosts.hostless_instances(state)
            if state is not None and nothing_can_change(state, fingerprint):
                progress(f"{spec.team}: same request and same envctl as the last apply, so nothing can change")
                return OperationResult(team=spec.team, target=self.name, operation=operation, outputs=state.outputs,
                                       changes=[stored_change(r, "same") for r in state.ordered()],
                                       duration_s=time.monotonic() - started, warnings=warnings, api_writes=0)
            state = state or StackState(team=spec.team, server_id=info.server_id)
            state.region = spec.region
            ctx = self._context(info, hosts=self.hosts.for_operation(info, progress, spec) if apply else None)
            executor = Applier(ctx, self.store, state, spec.region, progress) if apply else DryRun(ctx, spec.region)
            executor.adopt_interrupted()
            found = self._kept_data(ctx, spec, state, progress, restore=apply)
            warnings = warnings + found.notes
            state.fingerprint = ""  # set again only when this apply completes
            materialiser = SandboxMaterialiser(ctx, state, executor, spec.region)
            try:
                run = run_program(lambda: build(spec, BuildOptions(live=live, kept=found.kept)).outputs, materialiser,
                                  project=self.settings.project, stack=spec.team, config={"aws:region": spec.region})
            except ProgramFailed as failed:
                executor.fail(operation, str(failed.cause))
                raise _as_envctl_error(spec.team, failed.cause) from None
            removals = removals_after_program(state, materialiser.registered, executor.replaced)
            executor.remove(removals)
            executor.complete(operation, outputs=run.outputs, fingerprint=fingerprint)
            warnings = warnings + self.hosts.wait_for_bootstrap(ctx.hosts, progress)
            return OperationResult(team=spec.team, target=self.name, operation=operation,
                                   changes=materialiser.changes + [r.change() for r in removals if r.forget],
                                   outputs=run.outputs, duration_s=time.monotonic() - started, warnings=warnings,
                                   api_writes=ctx.write_calls)

    @staticmethod
    def _live_inputs(spec: ResolvedSpec, info: ServerInfo) -> LiveInputs:
        """The team's default image and promotion record, as the sandbox's moto holds them."""
        import botocore.session  # not boto3: this runs on the no-change fast path

        session = botocore.session.get_session()
        return read_live_inputs(spec, lambda service, region: session.create_client(
            service, endpoint_url=info.endpoint, region_name=region, **info.credentials))

    @staticmethod
    def _kept_data(ctx: SandboxContext, spec: ResolvedSpec, state: StackState, progress: Progress, *,
                   restore: bool) -> FoundData:
        """What an earlier destroy kept, for the program to import (as on AWS: engines/kept_data.py);
        only the secrets when this stack already holds the team's bucket and key."""
        from provisioner.engines.kept_data import find_kept_data, team_secret_names

        return find_kept_data(ctx.client, spec.team, spec.region, team_secret_names(spec.team, spec.spec.secrets),
                              restore=restore, secrets_only=bool(state.outputs.get("bucket_name")), progress=progress)

    @staticmethod
    def _context(info: ServerInfo, *, delete_data: bool = False, hosts: Any = None) -> SandboxContext:
        """Provider tags are filled in as the program registers its provider."""
        return SandboxContext(endpoint_url=info.endpoint, account_id=ACCOUNT_ID, credentials=info.credentials,
                              admin_arn=info.admin_arn, provider_tags={}, delete_data=delete_data, hosts=hosts)

    def _trusted_state(self, team: str, info: ServerInfo) -> tuple[StackState | None, list[str]]:
        """The stored state, unless it was made against a sandbox server that no longer holds it."""
        state = self.store.load(team)
        if state is None or not state.resources:
            return state, []
        if state.server_id == info.server_id and self.server.holds_identity(info):
            return state, []
        archived = self.store.archive(team, "stale")
        return None, [
            f"the sandbox state of {team} was made against a sandbox server that is gone (restarted or reset), "
            f"so its {len(state.resources)} resources no longer exist; the old state was kept at {archived} "
            f"and the environment is made afresh"
        ]

    def _bootstrap_result(self, info: ServerInfo, state: StackState) -> dict[str, Any]:
        import json

        ssm = self.aws_client("ssm", state.outputs.get("region", state.region))
        try:
            value = ssm.get_parameter(Name=state.outputs["bootstrap_parameter"])["Parameter"]["Value"]
            return json.loads(value)
        except Exception as exc:  # noqa: BLE001 - status reports what it can
            return {"status": "unknown", "error": str(exc).splitlines()[0]}


def _kept_warning(kept: list[StoredResource]) -> str:
    shown = [f"{r.type.split(':')[-1]} {r.id}" for r in kept if r.type in KEPT_TYPES_SHOWN]
    if secrets := sum(r.type == "aws:secretsmanager/secret:Secret" for r in kept):
        shown.append(f"{secrets} secrets")
    return ("kept with the team's data, adopted by the next create (pass --delete-data to delete them): "
            + ", ".join(dict.fromkeys(shown)))


def _as_envctl_error(team: str, cause: BaseException) -> EnvctlError:
    if isinstance(cause, EnvctlError):
        return cause
    from botocore.exceptions import ClientError

    if isinstance(cause, ClientError):
        op = cause.operation_name
        return EnvctlError(f"{team}: the sandbox refused {op}: {cause.response.get('Error', {}).get('Message', cause)}")
    return EnvctlError(f"{team}: the program failed: {type(cause).__name__}: {cause}")

