"""The errors envctl turns into exit codes (in one place: cli/app.py)."""

from __future__ import annotations


class EnvctlError(Exception):
    """An operation failed: exit 1."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class InvalidInput(EnvctlError):
    """The user's input (a request file, a flag, a setting) is wrong: exit 2."""

    exit_code = 2

    def __init__(self, message: str, *, errors: list[str] | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.errors = errors or []


class LockConflict(EnvctlError):
    """Another run holds the team's lock: exit 3."""

    exit_code = 3


class NotFound(EnvctlError):
    """The team, stack or resource asked for does not exist: exit 1."""


class MissingTool(EnvctlError):
    """A tool envctl needs (Pulumi CLI, Docker engine, session-manager plugin) is not available."""
