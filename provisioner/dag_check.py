"""The check `envctl dags deploy` makes before it uploads anything: the DAG folder loaded the way the
team's Airflow loads it.

**airflow** (the default, faithful): Airflow's own `DagBag` (templates/dag_check/dagbag_report.py)
runs in the team's Airflow image with the local Docker engine, on a copy of the files at the path
the host mounts them (/opt/airflow/dags), with no network (`--network none`). DagBag records
import errors, syntax errors, cycles and duplicate dag_ids, exactly as the scheduler would. The
copy goes in with `put_archive` (read-only to the container's user) rather than a bind mount: the
same isolation, and it works with a remote engine (DOCKER_HOST) and with private (0700) folders.
The image is the one the team's host runs: in the sandbox the image its hosts run (built by
`envctl create --hosts` or `envctl sandbox images`), else `apache/airflow:<version>` as the host
pulls it. Without a Docker engine or that image, the check refuses and says what it needs.

**syntax** (weaker, only when asked for with `--check syntax`): each .py file compiled by this
machine's Python. It finds syntax errors only: no imports, no cycles, no duplicate dag_ids.

What the check cannot see: DAG code that reaches the network, Variables or Connections while
it is parsed (the host's secrets backend and database are not there) fails here as an import
error, and such code is slow on the host too (it runs at every parse).
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable

from provisioner.errors import EnvctlError, MissingTool

if TYPE_CHECKING:
    from provisioner.settings import Settings

Progress = Callable[[str], None]

CHECK_SCRIPT = Path(__file__).resolve().parents[1] / "templates" / "dag_check" / "dagbag_report.py"
HOST_DAGS_FOLDER = "/opt/airflow/dags"  # where the host's compose file mounts the synced DAGs
REPORT_MARKER = "ENVCTL_DAGBAG_REPORT="
CHECK_TIMEOUT_S = 300  # Airflow's own limit is 30 s per file (dagbag_import_timeout)
KINDS = ("airflow", "syntax")


@dataclass(frozen=True)
class DagProblem:
    file: str  # relative to the DAG folder
    line: int | None
    message: str

    def describe(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


@dataclass
class CheckReport:
    method: str  # what checked the DAGs, said to the user
    dags: dict[str, str] = field(default_factory=dict)  # dag_id -> file (the airflow check only)
    problems: list[DagProblem] = field(default_factory=list)


# ---- the weaker check ----------------------------------------------------------------------


def check_syntax(files: dict[str, Path]) -> CheckReport:
    """Every .py file compiled by this Python: syntax errors only."""
    problems = []
    for relative, path in sorted(files.items()):
        if not relative.endswith(".py"):
            continue
        try:
            compile(path.read_bytes(), relative, "exec")
        except SyntaxError as error:
            problems.append(DagProblem(relative, error.lineno, f"SyntaxError: {error.msg}"))
        except ValueError as error:  # source with NUL bytes
            problems.append(DagProblem(relative, None, f"cannot be compiled: {error}"))
    return CheckReport(method="syntax only (weaker than Airflow's check: no imports, cycles or duplicate dag_ids)",
                       problems=problems)


# ---- Airflow's DagBag in the team's image --------------------------------------------------


def airflow_images(settings: Settings, version: str) -> list[str]:
    """The images that run the team's Airflow, the best first: the sandbox hosts' (sandbox target),
    then the public image the host pulls."""
    from provisioner.image_source import ImageSource, public_ref

    registry = settings.image_registry
    candidates = []
    if settings.target == "sandbox":
        from provisioner.engines.sandbox.images import airflow_image_ref

        candidates += [airflow_image_ref(version, ImageSource(registry, "", registry)),
                       airflow_image_ref(version, ImageSource(None, "", registry))]
    return candidates + [public_ref(registry, f"apache/airflow:{version}")]


def find_image(client, candidates: list[str], registry: str, progress: Progress) -> str | None:
    """The first candidate the engine holds, else the public image (the last) pulled when its registry answers."""
    from provisioner import image_source
    from provisioner.local_images import ensure_pulled, image_exists

    for ref in candidates:
        if image_exists(client, ref):
            return ref
    urls = image_source.probe_urls(registry, client.info().get("RegistryConfig") or {})
    if image_source.probe(urls)[0] is None:
        return None
    try:
        return ensure_pulled(client, candidates[-1], progress)
    except EnvctlError:
        return None


def check_with_airflow(files: dict[str, Path], *, airflow_version: str, candidates: list[str], registry: str,
                       environment: dict[str, str], progress: Progress) -> CheckReport:
    """Airflow's DagBag over a copy of the files, in the team's image, without network."""
    from provisioner.local_images import connect_docker

    try:
        client = connect_docker()
    except MissingTool as missing:
        raise MissingTool(f"the DAG check runs Airflow {airflow_version}'s DagBag in the team's Airflow image and needs "
                          f"a Docker engine: {missing.message}",
                          hint="start one, or deploy with `--check syntax` (a weaker check: syntax errors only)") from None
    image = find_image(client, candidates, registry, progress)
    if image is None:
        raise MissingTool(
            f"the DAG check needs the image of Airflow {airflow_version} (one of: {', '.join(candidates)}); "
            f"none is here and {registry} does not answer",
            hint=f"`docker pull {candidates[-1]}` where a registry answers, or build the sandbox's with "
                 f"`envctl sandbox images --airflow-version {airflow_version}`; or deploy with `--check syntax` "
                 "(a weaker check: syntax errors only)")
    progress(f"checking {len(files)} file(s) with Airflow's DagBag in {image} (no network)")
    output = _run_report(client, image, files, environment)
    report = _parse_report(output, image)
    return CheckReport(method=f"Airflow {report.get('airflow_version', airflow_version)}'s DagBag in {image}",
                       dags=report["dags"],
                       problems=[DagProblem(e["file"], e.get("line"), e["message"]) for e in report["errors"]])


def _archive(files: dict[str, Path]) -> bytes:
    """The files under dags/ as a tar owned by root, readable (not writable) by the image's airflow user."""
    buffer = io.BytesIO()
    top = PurePosixPath(HOST_DAGS_FOLDER).name
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folders: set[str] = set()
        for relative, path in sorted(files.items()):
            relative = f"{top}/{relative}"
            parts = relative.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                folder = "/".join(parts[:depth])
                if folder not in folders:
                    folders.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    archive.addfile(info)
            data = path.read_bytes()
            info = tarfile.TarInfo(relative)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _run_report(client, image: str, files: dict[str, Path], environment: dict[str, str]) -> str:
    import docker
    import requests

    env = {
        **environment,
        "AIRFLOW__CORE__DAGS_FOLDER": HOST_DAGS_FOLDER,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
        # Deep enough to hold the DAG file's own frame when the error is raised in a library it calls.
        "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACK_DEPTH": "50",
    }
    container = client.containers.create(image, command=["python", "-c", CHECK_SCRIPT.read_text()],
                                         network_mode="none", environment=env, labels={"envctl.role": "dag-check"})
    try:
        if not container.put_archive(str(PurePosixPath(HOST_DAGS_FOLDER).parent), _archive(files)):
            raise EnvctlError(f"could not copy the DAG files into a container of {image}")
        container.start()
        try:
            container.wait(timeout=CHECK_TIMEOUT_S)
        except requests.exceptions.RequestException:
            raise EnvctlError(f"the DAG check did not finish within {CHECK_TIMEOUT_S} s (image {image})") from None
        return container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
    except docker.errors.APIError as error:
        raise EnvctlError(f"the DAG check could not run in {image}: {error.explanation or error}") from None
    finally:
        try:
            container.remove(force=True)
        except docker.errors.APIError:
            pass  # already gone; nothing of the user's is in it


def _parse_report(output: str, image: str) -> dict:
    line = next((text for text in reversed(output.splitlines()) if text.startswith(REPORT_MARKER)), None)
    if line is None:
        tail = "\n".join(output.strip().splitlines()[-8:])
        raise EnvctlError(f"the DAG check in {image} printed no report; its last lines:\n{tail}")
    report = json.loads(line[len(REPORT_MARKER):])
    if "fatal" in report:
        last = report["fatal"].strip().splitlines()[-1]
        raise EnvctlError(f"Airflow did not load in {image}, so the DAGs could not be checked: {last}")
    return report
