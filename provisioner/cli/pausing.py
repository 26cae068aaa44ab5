"""`envctl pause <team>` / `envctl resume <team>`: stop an idle environment keeping its data, and bring it
back (provisioner/pausing.py). Any environment, on either target."""

from __future__ import annotations

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.cli.common import engine_for, load_settings, print_result, resolve_team, start


def _run(action: str, team: str, target: str | None, as_json: bool, hosts: bool | None) -> None:
    from provisioner import pausing

    settings = load_settings(target=target, sandbox_hosts=hosts)
    spec = resolve_team(settings, team)
    start(settings, f"{action} {team}")
    engine = engine_for(settings)
    with output.progress(f"{'pausing' if action == 'pause' else 'resuming'} {team}") as report:
        outcome = (pausing.pause if action == "pause" else pausing.resume)(engine, spec, report)
    if as_json:
        output.print_json(outcome.to_json())
        return
    if outcome.result is not None:
        print_result(outcome.result, as_json=False)
    if outcome.notebook:
        output.out.print(f"notebook: {outcome.notebook}")
    output.out.print(outcome.message)


def pause(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False, hosts: opt.Hosts = None) -> None:
    """Pause a team's environment: the host stops (its data volume kept), the notebook stops, the endpoint
    goes (its model and configuration kept). Updates keep the pause until `envctl resume`."""
    _run("pause", team, target, as_json, hosts)


def resume(team: opt.Team, target: opt.Target = None, as_json: opt.Json = False, hosts: opt.Hosts = None) -> None:
    """Resume a paused environment: the host starts with its metadata, the endpoint and the notebook come back."""
    _run("resume", team, target, as_json, hosts)
