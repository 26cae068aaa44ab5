"""SandboxEngine: the unchanged program under Pulumi mocks, each resource made real in moto.

The sandbox differs from AWS where moto does (each handler's docstring says how); it never
drops a resource silently: a type without a handler is recorded and reported "not materialised".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provisioner.engines.base import (EnvironmentStatus, HostCommandResult, OperationResult, Progress, ResourceChange,
                                     StackInfo, no_progress)
from provisioner.engines.sandbox.handlers import handler_for
from provisioner.engines.sandbox.handlers.registry import Handler, SandboxContext, region_of
from provisioner.engines.sandbox.server_control import ACCOUNT_ID, SandboxServer, ServerInfo, aws_command
from provisioner.engines.sandbox.state import StackState, StateStore, StoredResource, inputs_hash, now_iso
from provisioner.errors import EnvctlError, NotFound
from provisioner.live_inputs import LiveInputs, inference_notes, read_live_inputs
from provisioner.settings import Settings

if TYPE_CHECKING:  # pulumi and the spec model are heavy: list, status and outputs need neither
    from provisioner.engines.kept_data import FoundData
    from provisioner.engines.mocked import Registration
    from provisioner.spec import ResolvedSpec


@dataclass
class _Changes:
    items: list[ResourceChange] = field(default_factory=list)

    def add(self, reg: "Registration | StoredResource", action: str, *, detail: str = "", materialised: bool = True,
            physical_id: str = "") -> None:
        self.items.append(ResourceChange(urn=reg.urn, type=reg.type, name=reg.name, action=action, detail=detail,
                                         materialised=materialised, physical_id=physical_id))


def _changed_keys(old: dict[str, Any], new: dict[str, Any], ignore: list[str]) -> list[str]:
    keys = (set(old) | set(new)) - set(ignore)
    return sorted(k for k in keys if old.get(k) != new.get(k))


class _Materialiser:
    """Applies (or, with apply=False, only plans) each registration against the stored state."""

    def __init__(self, ctx: SandboxContext, state: StackState, store: StateStore, default_region: str,
                 progress: Progress, *, apply: bool):
        self.ctx = ctx
        self.state = state
        self.store = store
        self.region = default_region
        self.progress = progress
        self.apply = apply
        self.changes = _Changes()
        self.seen: set[str] = set()
        self.replaced: list[StoredResource] = []  # old resources to delete once the program is done
        from provisioner.engines.offline import OfflineMaterialiser

        self.placeholders = OfflineMaterialiser(default_region)

    # ---------------------------------------------------------------- the Materialiser protocol

    def call(self, token: str, args: dict[str, Any]) -> dict[str, Any]:
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": self.ctx.account_id, "arn": self.ctx.admin_arn, "userId": "sandbox", "id": self.ctx.account_id}
        if token == "aws:ssm/getParameter:getParameter":
            ssm = self.ctx.client("ssm", args.get("region") or self.region)
            value = ssm.get_parameter(Name=args["name"], WithDecryption=True)["Parameter"]["Value"]
            return {"name": args["name"], "value": value, "insecureValue": value, "type": "String", "id": args["name"],
                    "arn": "", "version": 1, "withDecryption": True}
        from provisioner.engines.sandbox.invokes import EC2_INVOKES

        if token in EC2_INVOKES:
            return EC2_INVOKES[token](self.ctx.client("ec2", args.get("region") or self.region), args)
        return self.placeholders.call(token, args)

    def register(self, reg: Registration) -> tuple[str, dict[str, Any]]:
        if reg.is_provider:
            self.ctx.provider_tags[reg.urn] = reg.default_tags
            return "sandbox-provider", dict(reg.inputs)
        self.seen.add(reg.urn)
        handler = handler_for(reg.type)
        prior = self.state.resources.get(reg.urn)
        digest = inputs_hash(reg.inputs, reg.ignore_changes)
        if handler is None:
            return self._not_materialised(reg, prior, digest)
        if prior is not None and prior.materialised and prior.inputs_hash == digest:
            self._record(reg, prior.id, prior.outputs, digest, inputs=prior.inputs, save=False)
            self.changes.add(reg, "same", physical_id=prior.id)
            return prior.id, prior.outputs
        region = region_of(reg, self.region)
        if prior is None or not prior.materialised:
            return self._create(handler, reg, region, digest)
        changed = _changed_keys(prior.inputs, reg.inputs, reg.ignore_changes)
        forced = [k for k in changed if k in handler.replace_on or k in reg.replace_on_changes]
        if handler.can_update and not forced:
            return self._update(handler, reg, prior, region, digest, changed)
        return self._replace(handler, reg, prior, region, digest, forced or changed)

    # ---------------------------------------------------------------- actions

    def _create(self, handler: Handler, reg: Registration, region: str, digest: str) -> tuple[str, dict[str, Any]]:
        if reg.import_id:
            return self._import(handler, reg, region, digest)
        if not self.apply:
            physical_id, outputs = self.placeholders.register(reg)
            self.changes.add(reg, "create")
            return physical_id, outputs
        self.progress(f"creating {reg.type} {reg.name}")
        self._journal(reg)
        physical_id, outputs = handler.create(self.ctx, reg, region)
        self._record(reg, physical_id, outputs, digest)
        self.changes.add(reg, "create", physical_id=physical_id)
        return physical_id, outputs

    def _import(self, handler: Handler, reg: Registration, region: str, digest: str) -> tuple[str, dict[str, Any]]:
        """The program's `import_` (data an earlier destroy kept): adopt the existing resource, as Pulumi
        does, never create it; like Pulumi, fail when it does not exist. A resource the program keeps
        (retain_on_delete) but does not import is created, and AWS's refusals apply."""
        found = handler.find(self.ctx, reg, region)
        if found is None:
            raise EnvctlError(f"cannot import {reg.type} {reg.name}: {reg.import_id} does not exist")
        physical_id, outputs = found
        shown = reg.inputs.get("name") or reg.inputs.get("bucket") or reg.import_id  # names read better than ARNs
        if self.apply:
            self.progress(f"adopting {reg.type} {reg.name} ({shown}, kept by an earlier destroy)")
            self._record(reg, physical_id, outputs, digest)
        self.changes.add(reg, "create", detail=f"adopted the kept {shown}", physical_id=physical_id)
        return physical_id, outputs

    def _update(self, handler: Handler, reg: Registration, prior: StoredResource, region: str, digest: str,
                changed: list[str]) -> tuple[str, dict[str, Any]]:
        detail = "changed: " + ", ".join(changed)
        if not self.apply:
            self.changes.add(reg, "update", detail=detail, physical_id=prior.id)
            return prior.id, {**prior.outputs, **reg.inputs}
        self.progress(f"updating {reg.type} {reg.name} ({', '.join(changed)})")
        outputs = handler.update(self.ctx, reg, prior, region)
        self._record(reg, prior.id, outputs, digest)
        self.changes.add(reg, "update", detail=detail, physical_id=prior.id)
        return prior.id, outputs

    def _replace(self, handler: Handler, reg: Registration, prior: StoredResource, region: str, digest: str,
                 reasons: list[str]) -> tuple[str, dict[str, Any]]:
        detail = "replaced because of: " + ", ".join(reasons)
        if not self.apply:
            physical_id, outputs = self.placeholders.register(reg)
            self.changes.add(reg, "replace", detail=detail, physical_id=prior.id)
            return physical_id, outputs
        self.progress(f"replacing {reg.type} {reg.name} ({', '.join(reasons)})")
        if handler.delete_before_replace or reg.delete_before_replace:
            handler.delete(self.ctx, prior, region_of(prior, self.region))
        else:
            self.replaced.append(prior)
        self._journal(reg)
        physical_id, outputs = handler.create(self.ctx, reg, region)
        self._record(reg, physical_id, outputs, digest)
        self.changes.add(reg, "replace", detail=detail, physical_id=physical_id)
        return physical_id, outputs

    def _not_materialised(self, reg: Registration, prior: StoredResource | None, digest: str) -> tuple[str, dict[str, Any]]:
        physical_id, outputs = self.placeholders.register(reg)
        action = "create" if prior is None else ("same" if prior.inputs_hash == digest else "update")
        if self.apply:
            self._record(reg, physical_id, outputs, digest, materialised=False)
        self.changes.add(reg, action, materialised=False, physical_id=physical_id)
        return physical_id, outputs

    # ---------------------------------------------------------------- state bookkeeping

    def _journal(self, reg: Registration) -> None:
        """Before a create: note it, so that a run killed mid-call can find what it made."""
        with self.store.changing():
            self.state.pending[reg.urn] = {"type": reg.type, "name": reg.name, "inputs": reg.inputs, "provider": reg.provider}
        self.store.save(self.state)

    def _record(self, reg: Registration, physical_id: str, outputs: dict[str, Any], digest: str, *,
                materialised: bool = True, inputs: dict[str, Any] | None = None, save: bool = True) -> None:
        """Remember a resource (in registration order, which is a dependency order) and save the state."""
        with self.store.changing():
            self.state.resources[reg.urn] = StoredResource(
                urn=reg.urn, type=reg.type, name=reg.name, id=physical_id, inputs=inputs if inputs is not None else reg.inputs,
                outputs=outputs, inputs_hash=digest, parent=reg.parent, dependencies=reg.dependencies,
                provider=reg.provider, retain_on_delete=reg.retain_on_delete, materialised=materialised,
                seq=self.state.next_seq,
            )
            self.state.next_seq += 1
            self.state.pending.pop(reg.urn, None)
        if self.apply and save:
            self.store.save(self.state)


KEPT_TYPES_SHOWN = ("aws:s3/bucket:Bucket", "aws:kms/key:Key", "aws:kms/alias:Alias")


class SandboxEngine:
    name = "sandbox"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.server = SandboxServer(settings.sandbox_dir, settings.sandbox_port)
        self.store = StateStore(settings.sandbox_dir)

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
            ctx = self._context(info, delete_data=delete_data, hosts=self._hosts(info, progress))
            changes = _Changes()
            kept: list[StoredResource] = []
            for resource in reversed(state.ordered()):
                if resource.retain_on_delete and not delete_data:
                    kept.append(resource)
                else:
                    self._delete(ctx, resource, state.region, progress)
                    changes.add(resource, "delete", physical_id=resource.id)
                with self.store.changing():
                    state.resources.pop(resource.urn, None)
                self.store.save(state)
            if delete_data:  # secrets the program never made (`envctl secrets set` of connections, variables)
                from provisioner.engines.kept_data import delete_team_secrets

                delete_team_secrets(ctx.client("secretsmanager", state.region), team, progress)
            self.store.remove(team)
            if kept:
                shown = [f"{r.type.split(':')[-1]} {r.id}" for r in kept if r.type in KEPT_TYPES_SHOWN]
                if secrets := sum(r.type == "aws:secretsmanager/secret:Secret" for r in kept):
                    shown.append(f"{secrets} secrets")
                result.warnings.append("kept with the team's data, adopted by the next create (pass --delete-data "
                                       "to delete them): " + ", ".join(dict.fromkeys(shown)))
            result.changes = changes.items
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
            ctx = self._context(info)
            changes = _Changes()
            for resource in state.ordered():
                handler = handler_for(resource.type)
                if resource.materialised and handler and not handler.exists(ctx, resource, region_of(resource, spec.region)):
                    state.resources.pop(resource.urn)
                    changes.add(resource, "delete", detail="gone from the sandbox", physical_id=resource.id)
                else:
                    changes.add(resource, "same", physical_id=resource.id)
            state.last_operation, state.last_updated = "refresh", now_iso()
            self.store.save(state)
            result.changes = changes.items
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
                                        status=state.status))
        return stacks

    def status(self, team: str) -> EnvironmentStatus:
        state = self.store.load(team)
        if state is None:
            raise NotFound(f"team {team} has no environment in the sandbox", hint=f"create it with `envctl create {team}`")
        info = self.server.running()
        host = self._host_status(state)
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
            hosts = self._existing_hosts(progress)
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
        from provisioner.fingerprint import program_fingerprint

        started = time.monotonic()
        with self.store.lock(spec.team):
            info = self.server.ensure_started(progress)
            live = self._live_inputs(spec, info)
            # A pushed image or a promotion changes what the program registers: part of the fingerprint.
            fingerprint = f"{program_fingerprint(spec)}-{live.digest}"
            state, warnings = self._trusted_state(spec.team, info)
            warnings = warnings + inference_notes(spec, live)
            operation = "up" if apply else "preview"
            if state is not None and apply:
                warnings = warnings + self._hostless_instances(state)
            if state is not None and self._unchanged_since_last_apply(state, fingerprint):
                progress(f"{spec.team}: same request and same envctl as the last apply, so nothing can change")
                return OperationResult(
                    team=spec.team, target=self.name, operation=operation, outputs=state.outputs,
                    changes=[ResourceChange(urn=r.urn, type=r.type, name=r.name, action="same", physical_id=r.id)
                             for r in state.ordered()],
                    duration_s=time.monotonic() - started, warnings=warnings, api_writes=0,
                )
            return self._run_program(spec, progress, state, info, warnings, fingerprint, started, live, apply=apply)

    @staticmethod
    def _live_inputs(spec: ResolvedSpec, info: ServerInfo) -> LiveInputs:
        """The team's default image and promotion record, as the sandbox's moto holds them."""
        import botocore.session  # not boto3: this runs on the no-change fast path

        session = botocore.session.get_session()
        return read_live_inputs(spec, lambda service, region: session.create_client(
            service, endpoint_url=info.endpoint, region_name=region, **info.credentials))

    @staticmethod
    def _unchanged_since_last_apply(state: StackState, fingerprint: str) -> bool:
        """Same request, same envctl, last apply complete: the program would register exactly what is there."""
        return (state.fingerprint == fingerprint and state.status == "ok" and not state.pending
                and all(r.materialised for r in state.resources.values()))

    def _run_program(self, spec: ResolvedSpec, progress: Progress, state: StackState | None, info: ServerInfo,
                     warnings: list[str], fingerprint: str, started: float, live: LiveInputs, *,
                     apply: bool) -> OperationResult:
        from provisioner.engines.mocked import ProgramFailed, run_program
        from provisioner.program import BuildOptions, build

        state = state or StackState(team=spec.team, server_id=info.server_id)
        state.region = spec.region
        ctx = self._context(info, hosts=self._hosts(info, progress, spec) if apply else None)
        materialiser = _Materialiser(ctx, state, self.store, spec.region, progress, apply=apply)
        if apply:
            self._adopt_interrupted(ctx, state, spec.region, progress)
        found = self._kept_data(ctx, spec, state, progress, restore=apply)
        warnings = warnings + found.notes
        operation = "up" if apply else "preview"
        state.fingerprint = ""  # set again only when this apply completes
        try:
            run = run_program(lambda: build(spec, BuildOptions(live=live, kept=found.kept)).outputs, materialiser,
                              project=self.settings.project, stack=spec.team, config={"aws:region": spec.region})
        except ProgramFailed as failed:
            if apply:
                self._finish(state, operation, "failed", error=str(failed.cause))
            raise _as_envctl_error(spec.team, failed.cause) from None
        removed = [r for r in state.ordered() if r.urn not in materialiser.seen]
        for resource in reversed(materialiser.replaced + removed):
            if resource in removed:
                materialiser.changes.add(resource, "delete", physical_id=resource.id)
            if not apply:
                continue
            if not (resource.retain_on_delete and resource in removed):
                self._delete(ctx, resource, spec.region, progress)
            if resource in removed:
                with self.store.changing():
                    state.resources.pop(resource.urn, None)
                self.store.save(state)
        if apply:
            state.outputs = run.outputs
            state.fingerprint = fingerprint
            self._finish(state, operation, "ok")
            warnings = warnings + self._wait_for_hosts(ctx, progress)
        return OperationResult(team=spec.team, target=self.name, operation=operation,
                               changes=materialiser.changes.items, outputs=run.outputs,
                               duration_s=time.monotonic() - started, warnings=warnings, api_writes=ctx.write_calls)

    @staticmethod
    def _kept_data(ctx: SandboxContext, spec: ResolvedSpec, state: StackState, progress: Progress, *,
                   restore: bool) -> "FoundData":
        """What an earlier destroy kept, for the program to import (as on AWS: engines/kept_data.py);
        only the secrets when this stack already holds the team's bucket and key."""
        from provisioner.engines.kept_data import find_kept_data, team_secret_names

        return find_kept_data(ctx.client, spec.team, spec.region, team_secret_names(spec.team, spec.spec.secrets),
                              restore=restore, secrets_only=bool(state.outputs.get("bucket_name")), progress=progress)

    def _finish(self, state: StackState, operation: str, status: str, error: str = "") -> None:
        state.last_operation, state.last_updated, state.status, state.error = operation, now_iso(), status, error
        self.store.save(state)

    def _context(self, info: ServerInfo, *, delete_data: bool = False, hosts: Any = None) -> SandboxContext:
        """Provider tags are filled in as the program registers its provider."""
        return SandboxContext(endpoint_url=info.endpoint, account_id=ACCOUNT_ID, credentials=info.credentials,
                              admin_arn=info.admin_arn, provider_tags={}, delete_data=delete_data, hosts=hosts)

    # ---------------------------------------------------------------- sandbox hosts

    def _hosts(self, info: ServerInfo, progress: Progress, spec: ResolvedSpec | None = None) -> Any:
        """Container hosts for an apply with hosts on (spec given), or to remove hosts that exist."""
        from provisioner.engines.sandbox.host_records import hosts_dir
        from provisioner.engines.sandbox.hosts import SandboxHosts

        launching = spec is not None and self.settings.sandbox_hosts
        if not launching and not any(hosts_dir(self.settings.sandbox_dir).glob("i-*.json")):
            return None
        hosts = SandboxHosts(self.settings.sandbox_dir, moto_port=info.port, account_id=ACCOUNT_ID,
                             boot_new_hosts=launching, airflow_versions={spec.spec.airflow.version} if spec else set(),
                             progress=progress, image_registry=self.settings.image_registry)
        if launching:
            # Here, not in a handler thread: Docker is found (or missing) before anything is created, and
            # docker/requests are first imported by one thread only (concurrent first imports fail).
            hosts.prepare()
        return hosts

    @staticmethod
    def _wait_for_hosts(ctx: SandboxContext, progress: Progress) -> list[str]:
        """Wait for the hosts this apply booted to run their userdata; a failure becomes a warning."""
        warnings = []
        for instance_id in ctx.hosts.started if ctx.hosts is not None else ():
            progress(f"waiting for host {instance_id} to run its userdata")
            result = ctx.hosts.wait_for_bootstrap(instance_id)
            if result.get("exit_status") != 0:
                reason = result.get("error") or f"exit status {result.get('exit_status')}"
                tail = " | ".join(result.get("log_tail", [])[-3:])
                warnings.append(f"host {instance_id}: the userdata failed ({reason}): {tail}")
        return warnings

    def _hostless_instances(self, state: StackState) -> list[str]:
        """With hosts on, instances made before hosts were: a host boots only when its instance is created."""
        from provisioner.engines.sandbox.host_records import hosts_dir

        if not self.settings.sandbox_hosts:
            return []
        records = hosts_dir(self.settings.sandbox_dir)
        return [f"instance {r.id} was created without sandbox hosts and has none; destroy and create "
                f"{state.team} again to boot it" for r in state.ordered()
                if r.type == "aws:ec2/instance:Instance" and r.materialised and not (records / f"{r.id}.json").exists()]

    def _host_status(self, state: StackState) -> dict[str, Any] | None:
        instances = [r.id for r in state.ordered() if r.type == "aws:ec2/instance:Instance" and r.materialised]
        return self._existing_hosts().describe(instances[0]) if instances else None

    def _existing_hosts(self, progress: Progress = no_progress) -> Any:
        """The hosts that exist, to describe or run commands in (boots none)."""
        from provisioner.engines.sandbox.host_inventory import HostInventory

        return HostInventory(self.settings.sandbox_dir, progress=progress)

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

    def _adopt_interrupted(self, ctx: SandboxContext, state: StackState, region: str, progress: Progress) -> None:
        """Resources whose create was interrupted (process killed mid-call): adopt them if they exist."""
        from provisioner.engines.mocked import Registration

        for urn, pending in list(state.pending.items()):
            handler = handler_for(pending["type"])
            reg = Registration(urn=urn, type=pending["type"], name=pending["name"], parent="", custom=True,
                               inputs=pending["inputs"], dependencies=[], provider=pending.get("provider", ""))
            found = handler.find(ctx, reg, region_of(reg, region)) if handler else None
            if found is not None:
                progress(f"adopting {reg.type} {reg.name} made by an interrupted run")
                physical_id, outputs = found
                state.resources[urn] = StoredResource(
                    urn=urn, type=reg.type, name=reg.name, id=physical_id, inputs=reg.inputs, outputs=outputs,
                    inputs_hash=inputs_hash(reg.inputs), provider=reg.provider, seq=state.next_seq)
                state.next_seq += 1
            state.pending.pop(urn)
        self.store.save(state)

    def _delete(self, ctx: SandboxContext, resource: StoredResource, region: str, progress: Progress) -> None:
        if not resource.materialised:
            return
        handler = handler_for(resource.type)
        if handler is None:
            raise EnvctlError(f"cannot delete {resource.type} {resource.id}: no sandbox handler for its type")
        progress(f"deleting {resource.type} {resource.name}")
        handler.delete(ctx, resource, region_of(resource, region))

    def _bootstrap_result(self, info: ServerInfo, state: StackState) -> dict[str, Any]:
        import json

        ssm = self.aws_client("ssm", state.outputs.get("region", state.region))
        try:
            value = ssm.get_parameter(Name=state.outputs["bootstrap_parameter"])["Parameter"]["Value"]
            return json.loads(value)
        except Exception as exc:  # noqa: BLE001 - status reports what it can
            return {"status": "unknown", "error": str(exc).splitlines()[0]}


def _as_envctl_error(team: str, cause: BaseException) -> EnvctlError:
    if isinstance(cause, EnvctlError):
        return cause
    from botocore.exceptions import ClientError

    if isinstance(cause, ClientError):
        op = cause.operation_name
        return EnvctlError(f"{team}: the sandbox refused {op}: {cause.response.get('Error', {}).get('Message', cause)}")
    return EnvctlError(f"{team}: the program failed: {type(cause).__name__}: {cause}")

