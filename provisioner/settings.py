"""Resolved settings: flag > ENVCTL_* environment variable > envctl.toml > defaults.

`envctl.toml` is looked up from the working directory upwards (or named by ENVCTL_CONFIG);
relative paths in it are taken from the folder that holds it, the project root.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from provisioner.errors import InvalidInput

TARGETS = ("sandbox", "aws")
CONFIG_NAME = "envctl.toml"


@dataclass(frozen=True)
class Settings:
    target: str = "sandbox"
    region: str = "eu-west-1"
    backend_url: str = ""  # empty: file:// under state_dir
    secrets_provider: str = "passphrase"
    sandbox_port: int = 0  # 0: pick a free port when the sandbox starts
    sandbox_hosts: bool = False
    state_dir: Path = Path(".envctl")
    stacks_dir: Path = Path("stacks")
    cidr_pool: str = "10.0.0.0/8"
    team_prefix: int = 20  # size of an allocated team network
    project: str = "envctl"
    endpoint_url: str = ""  # target aws only: a custom AWS endpoint (e.g. a moto server for tests)
    image_registry: str = "docker.io"  # the registry that stands for Docker Hub when building images
    root: Path = field(default=Path("."), compare=False)

    @property
    def sandbox_dir(self) -> Path:
        return self.state_dir / "sandbox"

    @property
    def effective_backend_url(self) -> str:
        return self.backend_url or f"file://{(self.state_dir / 'pulumi').resolve()}"

    def describe_target(self) -> str:
        if self.target == "aws":
            return f"target aws (Pulumi, backend {self.effective_backend_url}, region {self.region})"
        return f"target sandbox (embedded moto, state {self.sandbox_dir})"


_KEYS = {f.name: f for f in fields(Settings) if f.name != "root"}


def find_config(start: Path | None = None) -> Path | None:
    named = os.environ.get("ENVCTL_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise InvalidInput(f"ENVCTL_CONFIG: {named}: no such file")
        return path
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def _coerce(name: str, value: Any, origin: str) -> Any:
    kind = _KEYS[name].type
    try:
        if kind in ("int", int):
            return int(value)
        if kind in ("bool", bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind in ("Path", Path):
            return Path(value)
        return str(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{origin}: {name}: {value!r} is not a valid {kind}") from None


def load_settings(overrides: dict[str, Any] | None = None, *, cwd: Path | None = None) -> Settings:
    """Settings for this invocation; `overrides` are the command-line flags (None = not given)."""
    values: dict[str, Any] = {}
    config = find_config(cwd)
    root = config.parent if config else (cwd or Path.cwd())
    if config:
        try:
            data = tomllib.loads(config.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"{config}: not valid TOML: {exc}") from None
        for key, value in data.items():
            if key not in _KEYS:
                raise InvalidInput(f"{config}: {key}: unknown setting; allowed: {', '.join(sorted(_KEYS))}")
            values[key] = _coerce(key, value, str(config))
    for key in _KEYS:
        env = os.environ.get(f"ENVCTL_{key.upper()}")
        if env not in (None, ""):
            values[key] = _coerce(key, env, f"ENVCTL_{key.upper()}")
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(key, value, f"--{key.replace('_', '-')}")
    settings = replace(Settings(root=root), **values)
    for key in ("state_dir", "stacks_dir"):
        path = getattr(settings, key)
        if not path.is_absolute():
            settings = replace(settings, **{key: root / path})
    _check(settings, str(config) if config else "settings")
    return settings


def _check(settings: Settings, origin: str) -> None:
    if settings.target not in TARGETS:
        raise InvalidInput(f"{origin}: target: {settings.target!r} is not allowed; allowed: {', '.join(TARGETS)}")
    try:
        pool = ipaddress.ip_network(settings.cidr_pool)
    except ValueError:
        raise InvalidInput(f"{origin}: cidr_pool: {settings.cidr_pool!r} is not a network like 10.0.0.0/8") from None
    if not 16 <= settings.team_prefix <= 24 or settings.team_prefix < pool.prefixlen:
        raise InvalidInput(f"{origin}: team_prefix: {settings.team_prefix} must be within 16..24 and inside cidr_pool")
    if not 0 <= settings.sandbox_port < 65536:
        raise InvalidInput(f"{origin}: sandbox_port: {settings.sandbox_port} is not a TCP port")
