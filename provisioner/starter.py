"""`envctl dags init`: a team's starter project, copied from templates/starter/.

Every file under templates/starter/ is copied to the project folder; `*.j2` files are rendered
with Jinja (StrictUndefined: a name the context lacks fails the render) and lose the suffix;
`__team__` in a file or folder name becomes the team's name. Everything is rendered before
anything is written, and no existing file is overwritten unless asked (`force`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from provisioner.components.names import TeamNames
from provisioner.errors import InvalidInput

if TYPE_CHECKING:
    from provisioner.spec import ResolvedSpec

STARTER = Path(__file__).resolve().parents[1] / "templates" / "starter"
TEAM_PLACEHOLDER = "__team__"
TEMPLATE_SUFFIX = ".j2"


@dataclass(frozen=True)
class StarterFile:
    relative: str  # posix, relative to the project folder
    content: bytes
    executable: bool


def starter_context(spec: ResolvedSpec, outputs: dict[str, Any]) -> dict[str, Any]:
    """What the starter's templates may use: the request and the environment's outputs (all of them
    under `outputs`). deploy_role_arn is None without `deploy:` in the request."""
    github = spec.spec.deploy.github if spec.spec.deploy else None
    return {
        "team": spec.team,
        "region": spec.region,
        "environment": spec.spec.environment,
        "owners": list(spec.spec.owners),
        "owner": spec.spec.owners[0],
        "airflow_version": spec.spec.airflow.version,
        "bucket": outputs["bucket_name"],
        "dag_prefix": spec.spec.airflow.dags.prefix,
        "kms_key_arn": outputs["kms_key_arn"],
        "ecr_repository_url": outputs["ecr_repository_url"],
        "endpoint_name": outputs.get("endpoint_name") or TeamNames(spec.team).endpoint,
        "sagemaker_role_arn": outputs.get("sagemaker_role_arn"),
        "deploy_role_arn": outputs.get("deploy_role_arn"),
        "deploy_repository": github.repository if github else None,
        "deploy_branch": github.branch if github else "main",
        "deploy_environment": github.environment if github else None,
        "outputs": dict(outputs),
    }


def render_starter(context: dict[str, Any], source: Path = STARTER) -> list[StarterFile]:
    """The project's files, rendered; InvalidInput naming the template when one cannot be rendered."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    team = str(context["team"])
    rendered = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        relative = path.relative_to(source).as_posix().replace(TEAM_PLACEHOLDER, team)
        content = path.read_bytes()
        if relative.endswith(TEMPLATE_SUFFIX):
            relative = relative[: -len(TEMPLATE_SUFFIX)]
            try:
                content = env.from_string(content.decode("utf-8")).render(**context).encode("utf-8")
            except jinja2.TemplateError as error:
                line = getattr(error, "lineno", None)
                raise InvalidInput(f"{path}{f':{line}' if line else ''}: the starter template does not render: "
                                   f"{error}") from None
        rendered.append(StarterFile(relative=relative, content=content, executable=bool(path.stat().st_mode & 0o111)))
    return rendered


def write_project(files: list[StarterFile], target: Path, *, force: bool) -> list[str]:
    """Write the files under target; InvalidInput naming every file that exists (nothing written) unless force."""
    if target.exists() and not target.is_dir():
        raise InvalidInput(f"{target}: exists and is not a folder; name a new or existing folder for the project")
    existing = [f.relative for f in files if (target / f.relative).exists()]
    if existing and not force:
        raise InvalidInput(f"{target}: {len(existing)} file(s) of the starter project exist already; nothing was written",
                           errors=[str(target / name) for name in existing],
                           hint="move them away, choose another folder, or pass --force to overwrite them")
    for item in files:
        path = target / item.relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(item.content)
        if item.executable:
            path.chmod(path.stat().st_mode | 0o111)
    return [f.relative for f in files]
