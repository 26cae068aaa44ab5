"""A digest of everything a team's program run depends on: its resolved request and envctl's code.

Two runs with the same fingerprint register the same resources with the same inputs (the
program is deterministic and the AMI lookup is ignored as drift), so an engine that recorded
the fingerprint of its last successful apply can skip running the program.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from provisioner.spec import ResolvedSpec

_ROOT = Path(__file__).resolve().parents[1]
_CODE = (("provisioner", "*.py"), ("templates", "*"), ("userdata", "*"))


@lru_cache(maxsize=1)
def code_digest() -> str:
    digest = hashlib.sha256()
    for folder, pattern in _CODE:
        for path in sorted((_ROOT / folder).rglob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(_ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def program_fingerprint(spec: ResolvedSpec) -> str:
    digest = hashlib.sha256(code_digest().encode())
    digest.update(spec.spec.model_dump_json(by_alias=True).encode())
    digest.update(f"{spec.region}|{spec.cidr}".encode())
    return digest.hexdigest()[:32]
