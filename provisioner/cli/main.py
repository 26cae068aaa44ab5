"""envctl's entry point (the console script `envctl = provisioner.cli.main:main`); the commands
are assembled in provisioner/cli/app.py."""

from __future__ import annotations

from provisioner.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
