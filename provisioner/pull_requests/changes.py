"""What a change touches: the teams whose request file it adds, modifies or removes, from git
(`changed_requests`: the working tree against the merge base of a ref) or from explicit files
(`requests_at`).

A change to the program itself (PROGRAM: its code, templates, userdata, settings and dependencies)
can change every team's environment, so it is a fleet change: every other team with a request is in
the change set as PROGRAM_CHANGE, and the plan narrows that down to the teams whose resources change.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from provisioner.errors import InvalidInput
from provisioner.request_files import request_files
from provisioner.settings import Settings
from provisioner.spec import display_path

NEW, CHANGE, REMOVE = "new", "change", "remove"
PROGRAM_CHANGE = "program"  # the request is as it was; the program that builds it changed
REQUEST_SUFFIXES = (".yaml", ".yml")

# What every team's environment is built from, relative to the project root (settings.root).
PROGRAM = ("provisioner/", "templates/", "userdata/", "envctl.toml", "pyproject.toml")


@dataclass(frozen=True)
class RequestChange:
    """One team whose request a change adds, modifies or removes."""

    team: str
    action: str  # new | change | remove | program
    path: Path  # the request now; for a removal, the file that was removed
    old_path: Path | None = None  # the file at the base (modified, renamed or removed)
    old_text: str | None = None  # its content at the base


@dataclass(frozen=True)
class ChangeSet:
    changes: list[RequestChange]
    base: str | None = None  # the ref as given; None for explicit paths
    merge_base: str | None = None  # the commit the change is compared with
    program_paths: list[str] = field(default_factory=list)  # the program's files the change touches

    @property
    def is_fleet(self) -> bool:
        """The program changed, so teams whose request did not change are in it too."""
        return bool(self.program_paths)


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise InvalidInput("git is not installed; --changed needs git (or pass the request files as arguments)") from None
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1].removeprefix("fatal: ")
        raise InvalidInput(f"git {args[0]} failed in {repo}: {detail}")
    return done.stdout


def git_toplevel(folder: Path) -> Path:
    try:
        return Path(_git(folder, "rev-parse", "--show-toplevel").strip()).resolve()
    except InvalidInput:
        raise InvalidInput(f"{folder} is not inside a git repository; --changed needs one "
                           "(or pass the request files as arguments)") from None


def merge_base(repo: Path, base: str) -> str:
    """The commit where HEAD left `base`: what a pull request is compared with."""
    if not base or base.startswith("-"):
        raise InvalidInput(f"--base: {base!r} is not a git ref; give a branch, tag or commit, e.g. --base origin/main")
    try:
        _git(repo, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    except InvalidInput:
        raise InvalidInput(f"--base: {base!r} is not a commit in {repo}; fetch it first "
                           f"(e.g. `git fetch origin {base.removeprefix('origin/')}`) or check the name") from None
    try:
        return _git(repo, "merge-base", base, "HEAD").strip()
    except InvalidInput:
        raise InvalidInput(f"--base: {base} and HEAD have no common commit; in CI fetch the whole history "
                           "(actions/checkout with fetch-depth: 0)") from None


def _is_request(relative: str, stacks_rel: str) -> bool:
    path = Path(relative)
    return path.parent.as_posix() == stacks_rel and path.suffix in REQUEST_SUFFIXES


def _name_status(repo: Path, commit: str, stacks_rel: str) -> list[tuple[str, list[str]]]:
    """`git diff --name-status` of the working tree against `commit`, as (letter, paths)."""
    fields = _git(repo, "diff", "--name-status", "-z", "-M", "--no-ext-diff", commit, "--", stacks_rel).split("\0")
    entries, index = [], 0
    while index < len(fields) and fields[index]:
        letter = fields[index][0]
        count = 2 if letter in "RC" else 1
        entries.append((letter, fields[index + 1:index + 1 + count]))
        index += 1 + count
    return entries


def _untracked(repo: Path, stacks_rel: str) -> list[str]:
    return [p for p in _git(repo, "ls-files", "--others", "--exclude-standard", "-z", "--", stacks_rel).split("\0") if p]


def _program_pathspecs(repo: Path, settings: Settings) -> list[str]:
    try:
        project = settings.root.resolve().relative_to(repo)
    except ValueError:
        return []
    return [(project / entry).as_posix() + ("/" if entry.endswith("/") else "") for entry in PROGRAM]


def changed_program_paths(repo: Path, settings: Settings, commit: str) -> list[str]:
    """The program's files (tracked or new) that differ between `commit` and the working tree."""
    specs = _program_pathspecs(repo, settings)
    if not specs:
        return []
    changed = _git(repo, "diff", "--name-only", "-z", "--no-ext-diff", commit, "--", *specs).split("\0")
    untracked = _git(repo, "ls-files", "--others", "--exclude-standard", "-z", "--", *specs).split("\0")
    return sorted({path for path in changed + untracked if path and "__pycache__" not in path})


def changed_requests(settings: Settings, base: str) -> ChangeSet:
    """The teams whose request differs between the merge base of `base` and the working tree.

    A rename removes the old team and adds the new one, unless both files name the same team
    (e.g. `fraud.yaml` to `fraud.yml`): then it is a change of that team. When the program changed
    too, every other team with a request is in the set as PROGRAM_CHANGE.
    """
    repo = git_toplevel(settings.root)
    try:
        stacks_rel = settings.stacks_dir.resolve().relative_to(repo).as_posix()
    except ValueError:
        raise InvalidInput(f"stacks_dir: {settings.stacks_dir} is not inside the git repository {repo}") from None
    commit = merge_base(repo, base)
    removed: dict[str, str] = {}
    added: dict[str, str] = {}
    modified: dict[str, str] = {}
    for letter, paths in _name_status(repo, commit, stacks_rel):
        old, new = paths[0], paths[-1]
        if letter in "MT" and _is_request(new, stacks_rel):
            modified[Path(new).stem] = new
            continue
        if letter in "DR" and _is_request(old, stacks_rel):
            removed[Path(old).stem] = old
        if letter in "ACR" and _is_request(new, stacks_rel):
            added[Path(new).stem] = new
    for path in _untracked(repo, stacks_rel):
        if _is_request(path, stacks_rel):
            added.setdefault(Path(path).stem, path)

    def old_text(relative: str) -> str:
        return _git(repo, "cat-file", "blob", f"{commit}:{relative}")

    changes = [RequestChange(team, CHANGE, repo / path, repo / path, old_text(path)) for team, path in modified.items()]
    for team, path in added.items():
        if team in removed:
            old = removed.pop(team)
            changes.append(RequestChange(team, CHANGE, repo / path, repo / old, old_text(old)))
        else:
            changes.append(RequestChange(team, NEW, repo / path))
    changes += [RequestChange(team, REMOVE, repo / path, repo / path, old_text(path)) for team, path in removed.items()]
    program_paths = changed_program_paths(repo, settings, commit)
    if program_paths:
        named = {c.team for c in changes}
        for path in request_files(settings.stacks_dir):
            if path.stem not in named:
                relative = path.resolve().relative_to(repo).as_posix()
                changes.append(RequestChange(path.stem, PROGRAM_CHANGE, path.resolve(), path.resolve(), old_text(relative)))
    return ChangeSet(sorted(changes, key=lambda c: c.team), base=base, merge_base=commit, program_paths=program_paths)


def requests_at(settings: Settings, paths: Iterable[Path], existing_teams: set[str]) -> ChangeSet:
    """Explicit request files: a file that exists is new or a change (by whether the team has an
    environment on the target); a named file that no longer exists is a removal."""
    stacks = settings.stacks_dir.resolve()
    changes = []
    for given in paths:
        path = given if given.is_absolute() else Path.cwd() / given
        if path.resolve().parent != stacks or path.suffix not in REQUEST_SUFFIXES:
            raise InvalidInput(f"{given}: not a request file; requests are {display_path(stacks, settings.root)}/<team>.yaml")
        team = path.stem
        if not path.exists():
            changes.append(RequestChange(team, REMOVE, path))
        else:
            changes.append(RequestChange(team, CHANGE if team in existing_teams else NEW, path))
    return ChangeSet(sorted({c.team: c for c in changes}.values(), key=lambda c: c.team))
