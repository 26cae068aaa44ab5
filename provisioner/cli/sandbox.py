"""envctl sandbox: the embedded moto server that stands in for AWS (start, stop, status, reset)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.airflow_releases import DEFAULT_AIRFLOW_VERSION
from provisioner.cli.common import load_settings

app = typer.Typer(help="The local sandbox (a moto server on 127.0.0.1) that stands in for AWS.", no_args_is_help=True)


def _server_and_store():
    from provisioner.engines.sandbox.server_control import SandboxServer
    from provisioner.engines.sandbox.state import StateStore

    settings = load_settings(target="sandbox")
    return settings, SandboxServer(settings.sandbox_dir, settings.sandbox_port), StateStore(settings.sandbox_dir)


def _describe(info, teams: list[str]) -> dict:
    from provisioner.engines.sandbox.server_control import aws_command


    return {
        "running": True, "endpoint": info.endpoint, "pid": info.pid, "server_id": info.server_id,
        "uptime_s": round(time.time() - info.started_at, 1), "teams": teams,
        "try": f"{aws_command(info.endpoint, '<region>')} ec2 describe-instances",
    }


@app.command()
def start(as_json: opt.Json = False) -> None:
    """Start the sandbox server (commands that need it start it themselves)."""
    settings, server, store = _server_and_store()
    output.header(f"{settings.describe_target()} · sandbox start")
    info = server.running()
    if info is None:
        with output.progress("starting the sandbox") as report:
            info = server.start(report)
    described = _describe(info, store.teams())
    if as_json:
        output.print_json(described)
    else:
        output.out.print(f"sandbox running at [bold]{info.endpoint}[/] (pid {info.pid})")
        output.out.print(f"look inside: {described['try']}")


@app.command()
def status(as_json: opt.Json = False) -> None:
    """Whether the sandbox runs, where, and which teams have environments in it."""
    settings, server, store = _server_and_store()
    output.header(f"{settings.describe_target()} · sandbox status")
    info = server.running()
    if info is None:
        described = {"running": False, "endpoint": "", "teams": store.teams()}
        if as_json:
            output.print_json(described)
        else:
            output.out.print("sandbox not running (it starts with the first command that needs it, or `envctl sandbox start`)")
        return
    described = _describe(info, store.teams())
    if as_json:
        output.print_json(described)
        return
    output.out.print(f"sandbox running at [bold]{info.endpoint}[/] (pid {info.pid}, up {described['uptime_s']:.0f}s)")
    output.out.print(f"teams: {', '.join(described['teams']) or 'none'}")
    output.out.print(f"look inside: {described['try']}")


@app.command()
def stop() -> None:
    """Stop the sandbox server. Everything in it is gone; team states are kept and reported stale."""
    settings, server, _ = _server_and_store()
    output.header(f"{settings.describe_target()} · sandbox stop")
    info = server.stop()
    if info is not None:
        _remove_endpoint_containers(info.server_id)
    _stop_host_services(settings)
    output.out.print(f"stopped the sandbox at {info.endpoint}" if info else "the sandbox was not running")


def _remove_endpoint_containers(server_id: str) -> None:
    """What the server's own stop left of its endpoints' containers (it was killed before it could remove them)."""
    from provisioner.engines.sandbox.endpoint_containers import remove_server_containers

    for name in remove_server_containers(server_id):
        output.err.print(f"removed endpoint container {name}", markup=False)


def _stop_host_services(settings) -> None:
    """The registry and the host gateway of sandbox hosts, when they run."""
    from provisioner.engines.sandbox.gateway import HostGateway
    from provisioner.engines.sandbox.container_registry import RegistryServer

    HostGateway(settings.sandbox_dir).stop()
    RegistryServer(settings.sandbox_dir).stop()


AirflowVersion = Annotated[str, typer.Option("--airflow-version", help="The Airflow release to build an image of.")]
Rebuild = Annotated[bool, typer.Option("--rebuild", help="Build again even when the content tags exist.")]


@app.command()
def images(airflow_version: AirflowVersion = DEFAULT_AIRFLOW_VERSION, rebuild: Rebuild = False,
           as_json: opt.Json = False) -> None:
    """Build the images of sandbox hosts (host OS, Airflow, Postgres) when missing, FROM the public images
    when a registry answers, else as local stand-ins; cached by content tag. Lists each with its source."""
    from provisioner.engines.sandbox import images as host_images
    from provisioner.local_images import connect_docker

    settings, _, _ = _server_and_store()
    output.header(f"{settings.describe_target()} · sandbox images")
    client = connect_docker()
    if rebuild:
        for ref in host_images.image_refs(airflow_version, settings.image_registry):
            if host_images.image_exists(client, ref):
                client.images.remove(ref, force=True)
    started = time.monotonic()
    with output.progress("building the sandbox host images") as report:
        built = host_images.ensure_host_images({airflow_version}, report, registry=settings.image_registry)
    rows = [host_images.describe_image(client, ref) for ref in [built.host, *(image.local_ref for image in built.pulled)]]
    if as_json:
        source = {"kind": built.source.kind, "registry": built.source.registry, "reason": built.source.reason}
        output.print_json({"images": rows, "source": source,
                           "seconds": round(time.monotonic() - started, 1)})
        return
    output.out.print(built.source.describe())
    for row in rows:
        output.out.print(f"{row['image']}  {row['size_mb']} MB  {row['source']} FROM {row['base']}")
    output.out.print(f"ready in {time.monotonic() - started:.0f}s")


@app.command()
def reset(yes: opt.Yes = False) -> None:
    """Start the sandbox afresh: stop it, set every team's state aside (kept under stacks/stale/)."""
    settings, server, store = _server_and_store()
    output.header(f"{settings.describe_target()} · sandbox reset")
    teams = store.teams()
    if teams:
        output.confirm(f"Forget the sandbox environments of {', '.join(teams)}?", command="sandbox reset", yes=yes)
    server.stop()
    for team in teams:
        with store.lock(team):
            store.archive(team, "reset")
    with output.progress("starting a fresh sandbox") as report:
        info = server.start(report)
    output.out.print(f"fresh sandbox at [bold]{info.endpoint}[/]; {len(teams)} team state(s) set aside")
