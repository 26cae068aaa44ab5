"""envctl doctor: preflight checks (the checks themselves live in provisioner/doctor.py)."""

from __future__ import annotations

import typer

from provisioner.cli import options as opt
from provisioner.cli import output
from provisioner.cli.common import load_settings

MARK = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}


def doctor(target: opt.Target = None, as_json: opt.Json = False) -> None:
    """Check what a create needs: the Pulumi CLI, credentials, zones, quotas, backend, secrets (exit 1 on a failure)."""
    from provisioner import doctor as checks

    settings = load_settings(target=target)
    output.header(f"{settings.describe_target()} · doctor")
    results = checks.run_checks(settings, settings.target)
    if as_json:
        output.print_json({"target": settings.target, "ok": not checks.failed(results),
                           "checks": [check.to_json() for check in results]})
    else:
        for check in results:
            output.out.print(f"{MARK[check.status]} {check.name}: {check.detail}", markup=True, highlight=False)
            if check.fix and check.status != "ok":
                output.out.print(f"    fix: {check.fix}", markup=False)
    if checks.failed(results):
        raise typer.Exit(1)
