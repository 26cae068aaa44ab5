"""Teams side by side: a bounded thread pool, each team's progress and failure reported as its own,
and the two facts both plan and apply start from (the requests in stacks/, the environments on
the target)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from provisioner.engines.base import Engine, Progress
from provisioner.errors import EnvctlError, InvalidInput
from provisioner.settings import Settings
from provisioner.spec import ResolvedSpec, request_files, validate_files

DEFAULT_PARALLEL = 4
MAX_PARALLEL = 16


def prepare_for_threads(engine: Engine, progress: Progress) -> None:
    from provisioner.program import preload_provider_modules

    preload_provider_modules()
    engine.prepare(progress)  # e.g. the sandbox's one server, before the teams race to start it


def run_bounded(items: list[Any], work: Callable[[Any], Any], parallel: int) -> list[Any]:
    """`work` on every item, at most `parallel` at once; `work` must report its own failures."""
    if not items:
        return []
    if not 1 <= parallel <= MAX_PARALLEL:
        raise InvalidInput(f"--parallel: {parallel} is not allowed; use 1 to {MAX_PARALLEL}")
    with ThreadPoolExecutor(max_workers=min(parallel, len(items)), thread_name_prefix="envctl-team") as pool:
        return list(pool.map(work, items))


def team_progress(progress: Progress, team: str) -> Progress:
    """Each line as `<team>: <message>` (once: an engine's message may already name the team)."""
    prefix = f"{team}: "
    return lambda message: progress(message if message.startswith(prefix) else prefix + message)


def failure_text(exc: Exception) -> str:
    if isinstance(exc, EnvctlError):
        return exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    return f"unexpected {type(exc).__name__}: {exc}"


def validate_stacks(settings: Settings) -> tuple[dict[str, ResolvedSpec], list[str]]:
    """Every request in stacks/, alone and together (team CIDRs depend on all of them)."""
    resolved, errors = validate_files(request_files(settings.stacks_dir), default_region=settings.region,
                                      pool=settings.cidr_pool, prefix=settings.team_prefix, root=settings.root)
    return {item.team: item for item in resolved}, errors


def existing_stacks(engine: Engine) -> dict[str, int]:
    """Team -> number of resources, for every environment on the target."""
    return {stack.team: stack.resources for stack in engine.list_stacks()}
