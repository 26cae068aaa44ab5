"""Where envctl's images start from: the public images a registry serves, or local stand-ins.

A real host pulls `debian:bookworm`, `postgres:16`, `apache/airflow:<version>` and a Python slim
image from Docker Hub (or the registry that stands for it: the `image_registry` setting). When
that registry answers, envctl builds its images FROM those public images; when it does not (an
offline build machine), FROM local stand-ins made with debootstrap and PyPI. The choice is made
once per run and told in one progress line (`describe`).

"Answers" means its `/v2/` endpoint, or that of a registry mirror the Docker engine is configured
with (`docker info`: RegistryConfig.Mirrors), replies 200 or 401 within PROBE_TIMEOUT_S: the
Registry HTTP API's version check (https://distribution.github.io/distribution/spec/api/#api-version-check).
The Docker engine then pulls the images itself, through its own mirrors and proxy.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable

from provisioner.errors import MissingTool

DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "https://registry-1.docker.io"
PROBE_TIMEOUT_S = 3.0
SOURCE_LABEL = "envctl.image-source"  # on every image envctl builds: "registry" or "stand-in"
BASE_LABEL = "envctl.base-image"  # the image it was built FROM
REGISTRY, STAND_IN = "registry", "stand-in"


@dataclass(frozen=True)
class ImageSource:
    """One run's choice: `registry` set means FROM its public images, None means local stand-ins."""

    registry: str | None
    reason: str
    wanted: str = DOCKER_HUB  # the registry the settings name, also when it did not answer

    @property
    def kind(self) -> str:
        return REGISTRY if self.registry else STAND_IN

    def public_ref(self, name: str) -> str:
        """How the Docker engine names public image `name` (e.g. `postgres:16`) in this registry."""
        return public_ref(self.registry or self.wanted, name)

    def describe(self) -> str:
        if self.registry:
            return f"images: FROM the public images of {self.registry} ({self.reason})"
        return f"images: local stand-ins, built with debootstrap and PyPI ({self.reason})"

    def labels(self, base: str) -> dict[str, str]:
        return {SOURCE_LABEL: self.kind, BASE_LABEL: base}


def public_ref(registry: str, name: str) -> str:
    """`postgres:16` as pulled from registry: itself on Docker Hub, `<registry>/library/postgres:16` elsewhere."""
    if registry == DOCKER_HUB:
        return name
    repository = name.split(":", 1)[0]
    return f"{registry}/{name if '/' in repository else 'library/' + name}"


# ---- probing ------------------------------------------------------------------------------


def probe_urls(registry: str, registry_config: dict[str, Any] | None) -> list[str]:
    """The `/v2/` URLs that stand for registry: the engine's mirrors first (Docker Hub only), then itself."""
    config = registry_config or {}
    if registry == DOCKER_HUB:
        mirrors = [mirror.rstrip("/") for mirror in config.get("Mirrors") or []]
        return [f"{endpoint}/v2/" for endpoint in [*mirrors, DOCKER_HUB_ENDPOINT]]
    index = (config.get("IndexConfigs") or {}).get(registry) or {}
    scheme = "http" if _loopback(registry) or index.get("Secure") is False else "https"
    return [f"{scheme}://{registry}/v2/"]


def _loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _answer(url: str) -> str | None:
    """None when url answers as a registry (200, or 401: it wants a login), else why not."""
    # A proxy of the environment is for the world, not for this machine's own registries.
    direct = _loopback(urllib.parse.urlsplit(url).netloc)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({})) if direct else urllib.request.build_opener()
    try:
        with opener.open(url, timeout=PROBE_TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))
    return None if status in (200, 401) else f"HTTP {status}"


def probe(urls: list[str], answer: Callable[[str], str | None] = _answer) -> tuple[str | None, str]:
    """(the first url that answers, or None; what was found), all asked at once and within about
    PROBE_TIMEOUT_S in all (a resolver that hangs does not hang envctl)."""
    pool = ThreadPoolExecutor(max_workers=len(urls))
    futures = {url: pool.submit(answer, url) for url in urls}
    wait(futures.values(), timeout=PROBE_TIMEOUT_S + 0.5)
    pool.shutdown(wait=False)
    problems = []
    for url, future in futures.items():
        if future.done() and future.result() is None:
            return url, f"{url} answers"
        problems.append(f"{url}: {future.result() if future.done() else f'no answer within {PROBE_TIMEOUT_S:.0f} s'}")
    return None, "; ".join(problems)


# ---- the choice ---------------------------------------------------------------------------


def choose(registry: str, *, registry_config: dict[str, Any] | None, real_cached: bool,
           answer: Callable[[str], str | None] = _answer) -> ImageSource:
    """Real images first: cached ones, else when the registry answers; stand-ins only when it does not."""
    if real_cached:
        return ImageSource(registry, "built from them before; cached by content tag", registry)
    url, found = probe(probe_urls(registry, registry_config), answer)
    if url:
        return ImageSource(registry, found, registry)
    return ImageSource(None, f"{registry} does not answer: {found}", registry)


def resolve(client: Any, registry: str, refs_for: Callable[[ImageSource], list[str]], *,
            exists: Callable[[str], bool], progress: Callable[[str], None]) -> ImageSource:
    """The source of this run's images, said in one progress line. `refs_for(source)`: the images
    that, all present, make a warm cache of that source's images (none is probed then)."""
    real_cached = all(exists(ref) for ref in refs_for(ImageSource(registry, "", registry)))
    registry_config = None if real_cached else (client.info().get("RegistryConfig") or {})
    source = choose(registry, registry_config=registry_config, real_cached=real_cached)
    progress(source.describe())
    return source


def standin_tools_missing() -> list[str]:
    """What building a stand-in base needs and this machine lacks."""
    missing = [] if shutil.which("debootstrap") else ["debootstrap"]
    return missing + ([] if os.geteuid() == 0 else ["root"])


def require_standin_tools(source: ImageSource, *, alternative: str = "") -> None:
    """MissingTool naming what is missing and both ways out, when a stand-in cannot be built here."""
    missing = standin_tools_missing()
    if not missing:
        return
    raise MissingTool(
        f"no registry serves the public base images ({source.reason}), and building the local stand-ins "
        f"needs root and debootstrap (missing: {' and '.join(missing)})",
        hint=f"either make {source.wanted} reachable, or name a registry that serves its images with "
             f"ENVCTL_IMAGE_REGISTRY (setting image_registry); or install debootstrap (apt-get install "
             f"debootstrap) and run as root{alternative}",
    )
