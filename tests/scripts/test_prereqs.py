"""scripts/test-prereqs.sh, which `make test` runs first: it installs and starts what the Docker-backed
tests need where it can, and otherwise stops at once with one message. No Docker needed: the machine
is simulated by a PATH of stand-ins for docker, dockerd, sudo and apt-get (the true boundary)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "test-prereqs.sh"
# What the script (and make, for the Makefile test) may use from the real machine: no docker, no sudo.
TOOLS = ("bash", "grep", "tail", "tr", "sleep", "timeout", "env", "setsid", "touch", "cat", "make", "kill", "true",
         "cp", "chmod")
MESSAGE = "cannot run the Docker-backed tests on this machine"

# apt-get as on a fresh Debian container (lists removed): `install` locates no package before an `update`.
# Each package puts the commands it provides in the stand-in bin directory.
FAKE_APT_GET = r"""#!/bin/bash
echo "apt-get $*" >>"$STATE/calls"
case "$1" in
  update) touch "$STATE/lists"; exit 0 ;;
  install)
    [ -f "$STATE/lists" ] || { echo "E: Unable to locate package ${*: -1}" >&2; exit 100; }
    for arg in "$@"; do
      case "$arg" in
        docker.io) cp "$STATE/docker.io/"* "$FAKEBIN/" ;;
        debootstrap|docker-registry|chromium) printf '#!/bin/bash\nexit 0\n' >"$FAKEBIN/$arg"; chmod +x "$FAKEBIN/$arg" ;;
        chromium-driver) printf '#!/bin/bash\nexit 0\n' >"$FAKEBIN/chromedriver"; chmod +x "$FAKEBIN/chromedriver" ;;
      esac
    done ;;
esac
"""
# docker info answers once dockerd has started (it marks $STATE/engine), like the real CLI and engine.
FAKE_DOCKER = r"""#!/bin/bash
[ "$1" = info ] || exit 2
[ -f "$STATE/engine" ] && exit 0
echo "Cannot connect to the Docker daemon at ${DOCKER_HOST:-unix:///var/run/docker.sock}. Is the docker daemon running?" >&2
exit 1
"""
FAKE_DOCKERD = """#!/bin/bash
echo "dockerd $*" >>"$STATE/calls"
touch "$STATE/engine"
exec sleep 3
"""
# sudo without a password: runs the command (sudo -n true succeeds), recording it.
FAKE_SUDO = """#!/bin/bash
[ "$1" = -n ] && shift
echo "sudo $*" >>"$STATE/calls"
exec "$@"
"""


class Machine:
    """A simulated machine: a bin directory of stand-ins first on PATH, then only the real TOOLS."""

    def __init__(self, tmp_path: Path):
        self.state = tmp_path / "state"
        self.fakebin = tmp_path / "fakebin"
        self.tools = tmp_path / "tools"
        for directory in (self.state, self.fakebin, self.tools, self.state / "docker.io"):
            directory.mkdir()
        for tool in TOOLS:
            found = shutil.which(tool)
            assert found, f"{tool} is needed on this machine for the test"
            (self.tools / tool).symlink_to(found)
        self.env = {"PATH": f"{self.fakebin}:{self.tools}", "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
                    "STATE": str(self.state), "FAKEBIN": str(self.fakebin), "ENVCTL_PREREQS_AS_USER": "1",
                    "ENVCTL_PREREQS_SBIN": ""}

    def stub(self, name: str, body: str, *, into: Path | None = None) -> None:
        path = (into or self.fakebin) / name
        path.write_text(body)
        path.chmod(0o755)

    def installable_docker(self) -> None:
        """What apt-get install docker.io would put on PATH."""
        self.stub("docker", FAKE_DOCKER, into=self.state / "docker.io")
        self.stub("dockerd", FAKE_DOCKERD, into=self.state / "docker.io")

    def calls(self) -> list[str]:
        path = self.state / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def run(self, *command: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
        started = time.monotonic()
        result = subprocess.run(list(command or ["bash", str(SCRIPT)]), env={**self.env, **env}, cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        return result, time.monotonic() - started


@pytest.fixture
def machine(tmp_path) -> Machine:
    return Machine(tmp_path)


def test_without_root_or_docker_it_stops_at_once_with_one_message(machine):
    """Not root, no sudo, no docker, apt-get present: exit 1 within seconds, one message naming the
    Docker engine, how to get it and `make test-fast`; apt-get is never tried."""
    machine.stub("apt-get", FAKE_APT_GET)
    result, seconds = machine.run()
    assert result.returncode == 1, result.stderr
    assert seconds < 5
    assert result.stderr.count(MESSAGE) == 1, result.stderr
    assert "need a Docker engine: the docker command is not installed" in result.stderr
    assert "install Docker (https://docs.docker.com/engine/install/) and start it" in result.stderr
    assert "run `make test` as root" in result.stderr
    assert "`make test-fast` runs every test that needs no Docker" in result.stderr
    assert machine.calls() == []


def test_an_engine_that_does_not_answer_at_docker_host_is_named(machine):
    """DOCKER_HOST set and nothing answers: the message names DOCKER_HOST and docker's own error."""
    machine.stub("docker", FAKE_DOCKER)
    machine.stub("docker-registry", "#!/bin/bash\n")
    machine.stub("debootstrap", "#!/bin/bash\n")
    machine.stub("chromium", "#!/bin/bash\n")
    machine.stub("chromedriver", "#!/bin/bash\n")
    result, seconds = machine.run(DOCKER_HOST="tcp://127.0.0.1:1")
    assert result.returncode == 1, result.stderr
    assert seconds < 5
    assert "DOCKER_HOST=tcp://127.0.0.1:1 is set and nothing answers there" in result.stderr
    assert "Cannot connect to the Docker daemon at tcp://127.0.0.1:1" in result.stderr
    assert "make test-fast" in result.stderr


def test_an_engine_without_docker_registry_is_not_enough(machine):
    """A running engine but no docker-registry (the registry tests need it), no root: exit 1 naming it."""
    machine.stub("docker", FAKE_DOCKER)
    (machine.state / "engine").touch()
    result, _ = machine.run()
    assert result.returncode == 1, result.stderr
    assert "the registry tests need docker-registry (Debian/Ubuntu: apt-get install docker-registry)" in result.stderr
    assert "need a Docker engine" not in result.stderr


def test_with_everything_in_place_it_is_ready_and_installs_nothing(machine):
    """Engine answering, debootstrap, docker-registry, chromium and chromedriver on PATH, sudo available:
    exit 0, no call at all."""
    for name, body in (("docker", FAKE_DOCKER), ("apt-get", FAKE_APT_GET), ("sudo", FAKE_SUDO),
                       ("debootstrap", "#!/bin/bash\n"), ("docker-registry", "#!/bin/bash\n"),
                       ("chromium", "#!/bin/bash\n"), ("chromedriver", "#!/bin/bash\n")):
        machine.stub(name, body)
    (machine.state / "engine").touch()
    result, seconds = machine.run()
    assert (result.returncode, result.stderr) == (0, "")
    assert seconds < 5
    assert machine.calls() == ["sudo true"]  # the check for sudo without a password


def test_with_sudo_it_installs_after_apt_get_update_and_starts_dockerd(machine):
    """Sudo without a password and apt-get, nothing installed: `apt-get update` first (a fresh machine
    has no package lists), then docker.io, debootstrap, docker-registry, chromium and its driver, then
    `setsid dockerd`."""
    machine.stub("apt-get", FAKE_APT_GET)
    machine.stub("sudo", FAKE_SUDO)
    machine.installable_docker()
    result, seconds = machine.run()
    assert result.returncode == 0, result.stderr
    assert seconds < 10
    calls = machine.calls()
    assert calls[:3] == ["sudo true", "sudo apt-get update -qq", "apt-get update -qq"]
    assert calls[4] == "apt-get install -y -qq docker.io debootstrap docker-registry chromium chromium-driver"
    assert calls[5:] == ["sudo setsid dockerd", "dockerd "]
    assert "dockerd ready after" in result.stderr


def test_make_test_stops_before_the_venv_is_made(machine, tmp_path):
    """`make test` runs the check before the (minute-long) venv install: no venv, the message, quickly."""
    venv = tmp_path / "venv"
    result, seconds = machine.run("make", "--no-print-directory", "test", f"VENV={venv}")
    assert result.returncode != 0
    assert seconds < 5
    assert MESSAGE in result.stderr and "make test-fast" in result.stderr
    assert not venv.exists()


def test_prereqs_script_passes_shellcheck(shellcheck):
    """The script is bash that shellcheck accepts at info level."""
    result = subprocess.run([shellcheck, "--severity=info", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_ci_runs_make_test_and_nothing_else():
    """.ci/run is the README's test command alone (comments, `set` and `cd` lines aside)."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    body = [line for line in lines if line and not line.startswith(("#", "set ", "cd "))]
    assert body == ["exec make test"]
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


def test_a_failed_apt_get_update_is_reported_with_its_error(machine):
    """apt-get update fails (no network): exit 1 in one message quoting apt's error; no install tried."""
    machine.stub("apt-get", '#!/bin/bash\necho "apt-get $*" >>"$STATE/calls"\n'
                            'echo "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease" >&2\nexit 100\n')
    machine.stub("sudo", FAKE_SUDO)
    result, seconds = machine.run()
    assert result.returncode == 1, result.stderr
    assert seconds < 5
    assert result.stderr.count(MESSAGE) == 1, result.stderr
    assert ("`apt-get update` failed, so docker.io debootstrap docker-registry chromium chromium-driver could not be "
            "installed: E: Failed to fetch") \
        in result.stderr
    assert not [call for call in machine.calls() if "install" in call]
