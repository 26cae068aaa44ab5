#!/usr/bin/env bash
# What `make test` needs besides the venv: a Docker engine that answers (inference image, sandbox
# hosts) and docker-registry (the registry tests), debootstrap where no base image can be pulled, and
# Debian's chromium + chromium-driver (the browser test drives a headless Chromium).
#
# Where it can (root, or sudo without a password, and apt-get) it installs what is missing
# (docker.io, debootstrap, docker-registry, chromium, chromium-driver; `apt-get update` first) and starts dockerd in the
# background (`setsid dockerd`, log in ${TMPDIR:-/tmp}/dockerd.log), waiting up to 60 s for it.
# Where it cannot, it stops at once with one message: what is missing, how to get it, and that
# `make test-fast` runs every test that needs no Docker. Exit 0 when ready, 1 otherwise.
#
#   scripts/test-prereqs.sh            (`make test` runs it before anything else)
#
# ENVCTL_PREREQS_AS_USER=1 behaves as a user who is not root (sudo is still used when it needs no
# password), whoever runs it: the tests use it.
set -uo pipefail

me="make test"
# dockerd and debootstrap live in sbin, which a user's PATH often lacks (the tests set this empty).
sbin=${ENVCTL_PREREQS_SBIN-/usr/local/sbin:/usr/sbin:/sbin}
PATH="${PATH}${sbin:+:${sbin}}"
problems=()
notes=()

# How to run a command as root: "" (we are root), "sudo -n", or "none".
root_prefix() {
  if [[ ${EUID} -eq 0 && ${ENVCTL_PREREQS_AS_USER:-} != 1 ]]; then
    echo ""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    echo "sudo -n"
  else
    echo none
  fi
}

as_root() {
  # shellcheck disable=SC2086  # the prefix is empty or "sudo -n": split on purpose
  ${root} "$@"
}

can_install() {
  [[ ${root} != none ]] && command -v apt-get >/dev/null 2>&1
}

# `docker info` bounded in time: a DOCKER_HOST that does not answer must not hang make test.
engine_answers() {
  command -v docker >/dev/null 2>&1 || return 1
  if command -v timeout >/dev/null 2>&1; then
    timeout 20 docker info >/dev/null 2>&1
  else
    docker info >/dev/null 2>&1
  fi
}

# Why `docker info` fails, in one line (its first error line).
engine_problem() {
  if ! command -v docker >/dev/null 2>&1; then
    echo "the docker command is not installed"
    return
  fi
  local why
  why=$(docker info 2>&1 >/dev/null | grep -m1 -iE 'error|cannot|permission|denied' || true)
  echo "no Docker engine answers${why:+ (${why})}"
}

install_missing() {
  local missing=()
  if ! engine_answers && [[ -z ${DOCKER_HOST:-} ]]; then
    command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 || missing+=(docker.io)
  fi
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  local log="${TMPDIR:-/tmp}/envctl-apt.log"
  echo "${me}: installing ${missing[*]} (apt-get, log: ${log}; a minute or two)" >&2
  if ! as_root apt-get update -qq >"${log}" 2>&1; then
    problems+=("\`apt-get update\` failed, so ${missing[*]} could not be installed: $(tail -n 3 "${log}" | tr '\n' ' ')")
    return 1
  fi
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >>"${log}" 2>&1; then
    problems+=("\`apt-get install ${missing[*]}\` failed: $(tail -n 3 "${log}" | tr '\n' ' ')")
    return 1
  fi
}

start_dockerd() {
  local log="${TMPDIR:-/tmp}/dockerd.log" waited=0 pid
  echo "${me}: starting dockerd in the background (log: ${log})" >&2
  as_root setsid dockerd >"${log}" 2>&1 </dev/null &
  pid=$!
  until engine_answers; do
    if [[ ${waited} -ge 60 ]] || ! kill -0 "${pid}" 2>/dev/null; then
      problems+=("dockerd did not answer (waited ${waited} s); the end of ${log}: $(tail -n 5 "${log}" | tr '\n' ' ')")
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "${me}: dockerd ready after ${waited} s" >&2
}

ensure_engine() {
  engine_answers && return 0
  if [[ -n ${DOCKER_HOST:-} ]]; then
    problems+=("DOCKER_HOST=${DOCKER_HOST} is set and nothing answers there ($(engine_problem)); start that engine or unset DOCKER_HOST")
    return 1
  fi
  if [[ ${root} != none ]] && command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then
    start_dockerd
    return
  fi
  problems+=("the Docker-backed tests need a Docker engine: $(engine_problem)")
  return 1
}

root=$(root_prefix)
if can_install; then
  install_missing
fi
ensure_engine
if ! command -v docker-registry >/dev/null 2>&1; then
  problems+=("the registry tests need docker-registry (Debian/Ubuntu: apt-get install docker-registry)")
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  problems+=("the browser test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  notes+=("debootstrap is not installed: the local stand-in images can be built only where public base images can be pulled or are cached")
fi

if [[ ${#problems[@]} -eq 0 ]]; then
  for note in ${notes[@]+"${notes[@]}"}; do
    echo "${me}: note: ${note}" >&2
  done
  exit 0
fi
{
  echo "${me}: cannot run the Docker-backed tests on this machine:"
  for problem in ${problems[@]+"${problems[@]}"}; do
    echo "  - ${problem}"
  done
  echo "  How to get it: install Docker (https://docs.docker.com/engine/install/) and start it (on Linux, your"
  echo "  user in the docker group), or run \`make test\` as root (or with sudo without a password) on"
  echo "  Debian/Ubuntu so it installs and starts docker.io, debootstrap, docker-registry and chromium itself."
  echo "  Meanwhile \`make test-fast\` runs every test that needs no Docker."
} >&2
exit 1
