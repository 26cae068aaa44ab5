"""envctl invoke: call a team's inference endpoint (SageMaker InvokeEndpoint) and print its answer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.cli.common import engine_for, load_settings, resolve_team, start

Data = Annotated[
    Optional[str],
    typer.Option("--data", "-d", show_default=False,
                 help="The request body: a file, or - for standard input (default: standard input when it is not a terminal)."),
]
ContentType = Annotated[
    Optional[str],
    typer.Option("--content-type", show_default=False,
                 help="The body's media type (default: from the file's suffix, .csv -> text/csv, else application/json)."),
]
Accept = Annotated[Optional[str], typer.Option("--accept", show_default=False, help="The media type wanted back, e.g. text/csv.")]

SUFFIX_TYPES = {".json": "application/json", ".csv": "text/csv", ".txt": "text/plain"}
DEFAULT_CONTENT_TYPE = "application/json"


def invoke(team: opt.Team, data: Data = None, content_type: ContentType = None, accept: Accept = None,
           target: opt.Target = None) -> None:
    """Send a request to the team's endpoint and print the model's answer on stdout (nothing else)."""
    body = read_body(data)
    content_type = content_type or content_type_of(data)
    settings = load_settings(target=target)
    spec = resolve_team(settings, team)
    start(settings, f"invoke {team}")
    engine = engine_for(settings)
    outputs = engine.outputs(team)
    endpoint_name = endpoint_of(team, outputs)
    runtime = engine.aws_client("sagemaker-runtime", outputs.get("region") or spec.region)
    answer = call_endpoint(runtime, endpoint_name, body, content_type, accept)
    output.err.print(f"{endpoint_name} answered ({answer['ContentType']}, variant "
                     f"{answer.get('InvokedProductionVariant') or 'unknown'})", markup=False)
    answered = answer["Body"].read()
    sys.stdout.buffer.write(answered if answered.endswith(b"\n") else answered + b"\n")
    sys.stdout.flush()


def read_body(data: str | None) -> bytes:
    """The body from the file, or standard input for `-` (or no --data when stdin is not a terminal)."""
    from provisioner.errors import InvalidInput

    if data is None and sys.stdin.isatty():
        raise InvalidInput("no request body: give --data FILE, or --data - to read standard input")
    if data is None or data == "-":
        return sys.stdin.buffer.read()
    path = Path(data)
    if not path.exists():
        raise InvalidInput(f"--data {data}: no such file")
    if path.is_dir():
        raise InvalidInput(f"--data {data} is a folder; give a file (or - for standard input)")
    return path.read_bytes()  # a pipe or /dev/stdin too


def content_type_of(data: str | None) -> str:
    return SUFFIX_TYPES.get(Path(data).suffix.lower(), DEFAULT_CONTENT_TYPE) if data and data != "-" else DEFAULT_CONTENT_TYPE


def endpoint_of(team: str, outputs: dict) -> str:
    from provisioner.errors import EnvctlError

    name = outputs.get("endpoint_name")
    if not name:
        raise EnvctlError(f"team {team} has no inference endpoint yet" + (
            f" ({outputs['inference_status']})" if outputs.get("inference_status") else ""),
            hint=f"`envctl inference push {team}` builds and pushes the default image and creates the endpoint")
    return name


def call_endpoint(runtime, endpoint_name: str, body: bytes, content_type: str, accept: str | None) -> dict:
    """InvokeEndpoint; the model's own failure (ModelError) and SageMaker's refusals as EnvctlError."""
    from botocore.exceptions import BotoCoreError, ClientError

    from provisioner.errors import EnvctlError

    arguments = {"EndpointName": endpoint_name, "Body": body, "ContentType": content_type}
    if accept:
        arguments["Accept"] = accept
    try:
        return runtime.invoke_endpoint(**arguments)
    except ClientError as error:
        response = error.response
        code, message = response.get("Error", {}).get("Code", ""), response.get("Error", {}).get("Message", str(error))
        if code == "ModelError":
            status = response.get("OriginalStatusCode", "?")
            raise EnvctlError(f"the model of {endpoint_name} answered {status}: "
                              f"{response.get('OriginalMessage') or message}") from None
        raise EnvctlError(f"InvokeEndpoint {endpoint_name} failed ({code}): {message}") from None
    except BotoCoreError as error:
        raise EnvctlError(f"InvokeEndpoint {endpoint_name} failed: {error}") from None
