"""envctl inference: build and push a team's default inference image (SageMaker's container contract)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.cli.common import engine_for, load_settings, print_result, resolve_team, start

app = typer.Typer(help="The team's inference image: build it locally, push it to the team's ECR repository.",
                  no_args_is_help=True)

BaseImage = Annotated[
    Optional[str],
    typer.Option("--base-image", help="Base image to build on (default: python:3.11-slim from the image registry, "
                                      "or a local Debian image built with debootstrap when no registry answers)."),
]


@app.command()
def build(team: opt.Team, base_image: BaseImage = None, as_json: opt.Json = False) -> None:
    """Build the default inference image for a team with the local Docker engine."""
    from provisioner.inference_image import build_image

    settings = load_settings()
    resolve_team(settings, team)
    start(settings, f"inference build {team}")
    with output.progress(f"building the inference image of {team}") as report:
        ref = build_image(team, base_image=base_image, registry=settings.image_registry, progress=report)
    if as_json:
        output.print_json({"team": team, "image": ref})
    else:
        output.out.print(f"built {ref}")
        output.out.print(f"try it: docker run --rm -p 127.0.0.1:8080:8080 {ref} serve")


@app.command()
def push(team: opt.Team, target: opt.Target = None, base_image: BaseImage = None, as_json: opt.Json = False) -> None:
    """Build (if needed) and push the image to the team's ECR repository, then apply the team so the
    endpoint serves it (in the sandbox: its registry, recorded in the sandbox's ECR)."""
    from provisioner.errors import EnvctlError
    from provisioner.inference_image import build_image

    settings = load_settings(target=target)
    spec = resolve_team(settings, team)
    start(settings, f"inference push {team}")
    engine = engine_for(settings)
    repository_url = engine.outputs(team).get("ecr_repository_url")
    if not repository_url:
        raise EnvctlError(f"team {team}'s environment has no ECR repository output yet",
                          hint=f"run `envctl update {team}` first")
    with output.progress(f"pushing the inference image of {team}") as report:
        ref = build_image(team, base_image=base_image, registry=settings.image_registry, progress=report)
        pushed = engine.push_image(ref, repository_url, spec.region, report)
        report(f"pushed {pushed}; applying {team} so that its endpoint serves it")
        result = engine.up(spec, report)
    if as_json:
        output.print_json({"team": team, "image": pushed, "apply": result.to_json()})
    else:
        output.out.print(f"pushed {pushed}")
        print_result(result, as_json=False)
