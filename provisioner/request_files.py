"""Where the requests are: one `<team>.yaml` per team in the stacks folder (kept light: no pydantic)."""

from __future__ import annotations

from pathlib import Path


def request_files(stacks_dir: Path) -> list[Path]:
    return sorted(p for p in stacks_dir.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
