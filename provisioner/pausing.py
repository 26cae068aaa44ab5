"""`envctl pause` / `envctl resume`: an idle environment that costs little and keeps its data.

The program stays the truth. Pausing writes the pause record (an SSM parameter, `TeamNames.pause_parameter`)
and applies: the engine reads the record as a live input (live_inputs.py), so the program registers the
host stopped (`InstanceState`) and no endpoint, keeping its model and endpoint configuration; a later
`envctl update` reads the same record and keeps the pause. Resuming deletes the record and applies: the
host starts (the userdata does not run again; Postgres is on the kept data volume) and the endpoint is
made again from its configuration. The notebook, which the AWS provider cannot stop, is stopped and
started here (StopNotebookInstance / StartNotebookInstance).

Both always apply, so re-running one after an interrupted run finishes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from provisioner.components.names import TeamNames
from provisioner.errors import EnvctlError, InvalidInput
from provisioner.live_inputs import paused_since

if TYPE_CHECKING:
    from provisioner.engines.base import Engine, OperationResult, Progress
    from provisioner.spec import ResolvedSpec


@dataclass
class PauseOutcome:
    team: str
    action: str  # pause | resume
    paused: bool  # after the operation
    paused_since: str | None  # when it was paused (pause: now or earlier; resume: until now)
    already: bool  # the environment already was as asked
    result: OperationResult | None = None
    notebook: str = ""  # what happened to the notebook ("" without one)
    notes: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        if self.action == "pause":
            return (f"{self.team} was already paused (since {self.paused_since}); its resources are as a pause leaves them"
                    if self.already else f"{self.team} is paused (since {self.paused_since}): the host is stopped, "
                    f"its data volume kept; `envctl resume {self.team}` brings it back")
        return (f"{self.team} was not paused; its resources are as the request says" if self.already
                else f"{self.team} is resumed (it was paused since {self.paused_since}): the host is starting")

    def to_json(self) -> dict[str, Any]:
        return {"team": self.team, "action": self.action, "paused": self.paused, "paused_since": self.paused_since,
                "already": self.already, "notebook": self.notebook, "notes": self.notes,
                "result": self.result.to_json() if self.result else None}


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def pause(engine: Engine, spec: ResolvedSpec, progress: Progress) -> PauseOutcome:
    """Write the pause record (unless there is one), stop the notebook, apply."""
    _require_environment(engine, spec.team)
    ssm = engine.aws_client("ssm", spec.region)
    parameter = TeamNames(spec.team).pause_parameter
    since = paused_since(ssm, parameter)
    already = since is not None
    if since is None:
        since = now_iso()
        progress(f"{spec.team}: writing the pause record {parameter}")
        ssm.put_parameter(Name=parameter, Type="String", Overwrite=True,
                          Value=json.dumps({"since": since, "by": "envctl pause"}),
                          Description=f"envctl {spec.team}: paused by `envctl pause`; `envctl resume` deletes it")
    notebook = _notebook(engine, spec, progress, running=False)
    progress(f"{spec.team}: applying the pause (the host stops, the endpoint goes; the data stays)")
    result = engine.up(spec, progress)
    return PauseOutcome(team=spec.team, action="pause", paused=True, paused_since=since, already=already,
                        result=result, notebook=notebook)


def resume(engine: Engine, spec: ResolvedSpec, progress: Progress) -> PauseOutcome:
    """Delete the pause record, apply (the host starts, the endpoint comes back), start the notebook."""
    from botocore.exceptions import ClientError

    _require_environment(engine, spec.team)
    ssm = engine.aws_client("ssm", spec.region)
    parameter = TeamNames(spec.team).pause_parameter
    since = paused_since(ssm, parameter)
    if since is not None:
        progress(f"{spec.team}: deleting the pause record {parameter}")
        try:
            ssm.delete_parameter(Name=parameter)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ParameterNotFound":
                raise EnvctlError(f"could not delete the pause record {parameter}: {error}") from None
    progress(f"{spec.team}: applying the resume (the host starts, the endpoint comes back)")
    result = engine.up(spec, progress)
    notebook = _notebook(engine, spec, progress, running=True)
    return PauseOutcome(team=spec.team, action="resume", paused=False, paused_since=since, already=since is None,
                        result=result, notebook=notebook)


def _require_environment(engine: Engine, team: str) -> None:
    if team not in {stack.team for stack in engine.list_stacks()}:
        raise InvalidInput(f"team {team} has no environment on this target to pause or resume; "
                           f"`envctl create {team}` makes it", hint="`envctl list` shows the teams that have one")


def _notebook(engine: Engine, spec: ResolvedSpec, progress: Progress, *, running: bool) -> str:
    """Stop (or start) the team's notebook instance; what was done, '' when the request has none."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not spec.spec.sagemaker.notebook.enabled:
        return ""
    name = f"{TeamNames(spec.team).prefix}-notebook"
    sagemaker = engine.aws_client("sagemaker", spec.region)
    try:
        status = sagemaker.describe_notebook_instance(NotebookInstanceName=name)["NotebookInstanceStatus"]
        if running and status == "Stopped":
            progress(f"{spec.team}: starting notebook {name}")
            sagemaker.start_notebook_instance(NotebookInstanceName=name)
            return "starting"
        if not running and status in ("InService", "Pending"):
            if status == "Pending":
                sagemaker.get_waiter("notebook_instance_in_service").wait(NotebookInstanceName=name)
            progress(f"{spec.team}: stopping notebook {name} (its storage volume is kept)")
            sagemaker.stop_notebook_instance(NotebookInstanceName=name)
            return "stopping"
        return status.lower()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("ValidationException", "ResourceNotFound"):
            return "missing"  # not made yet (e.g. an interrupted create); the next apply makes it
        raise EnvctlError(f"could not {'start' if running else 'stop'} notebook {name}: {error}") from None
    except BotoCoreError as error:
        raise EnvctlError(f"could not {'start' if running else 'stop'} notebook {name}: {error}") from None
