"""One side of a fleet comparison, in its own process: a version of envctl's code (the change's or
the merge base's) runs the program offline for teams and prints what each registers.

    python fleet_worker.py <code root> <project root> <stacks dir>   (team names on stdin, one a line)

The code root goes first on sys.path, so `provisioner` is that version's, not the one that started
this process. It imports once and then runs every team it is given (one JSON line each on stdout),
with the garbage collector frozen after the imports: a run makes many short-lived cycles and the
long-lived modules need no scanning. It uses only what every version since fleet plans has:
`settings.load_settings`, `spec.validate_files`, `request_files.request_files` and
`engines.offline.offline_registrations`.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

COLLECT_EVERY = 25  # runs between collections while the collector is off


def _bootstrap(code_root: Path) -> None:
    sys.path[0] = str(code_root)  # the script's own folder would come first otherwise
    import provisioner

    where = Path(provisioner.__file__).resolve().parent
    if where != (code_root / "provisioner").resolve():
        raise SystemExit(f"fleet worker: imported provisioner from {where}, not from {code_root}")


def _resources(registrations) -> list[dict]:
    return [{"urn": r.urn, "type": r.type, "name": r.name, "custom": r.custom, "inputs": r.inputs,
             "ignore_changes": list(r.ignore_changes), "replace_on_changes": list(r.replace_on_changes)}
            for r in registrations if r.custom and not r.is_provider]


def main(argv: list[str]) -> int:
    code_root, project, stacks = (Path(a).resolve() for a in argv[1:4])
    _bootstrap(code_root)
    from provisioner.engines.offline import offline_registrations
    from provisioner.program import preload_provider_modules
    from provisioner.request_files import request_files
    from provisioner.settings import load_settings
    from provisioner.spec import validate_files

    preload_provider_modules()
    settings = load_settings(cwd=project)
    resolved, _errors = validate_files(request_files(stacks), default_region=settings.region, pool=settings.cidr_pool,
                                       prefix=settings.team_prefix, root=project)
    specs = {spec.team: spec for spec in resolved}
    gc.collect()
    gc.freeze()
    gc.disable()
    print(json.dumps({"ready": True}), flush=True)
    for count, line in enumerate(sys.stdin, start=1):
        team = line.strip()
        if not team:
            continue
        answer: dict = {"team": team}
        spec = specs.get(team)
        if spec is None:
            answer["missing"] = True  # no valid request for the team in this version
        else:
            answer["environment"] = spec.spec.environment
            try:
                answer["resources"] = _resources(offline_registrations(spec))
            except Exception as exc:  # noqa: BLE001 - reported for this team; the others go on
                answer["error"] = f"{type(exc).__name__}: {exc}"
        sys.stdout.write(json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()
        if count % COLLECT_EVERY == 0:
            gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
