#!/usr/bin/env bash
# Makes a Docker engine available to the tests marked `docker` (tests/inference/test_image.py):
# installs docker.io, debootstrap and docker-registry when missing, and starts dockerd in the
# background when `docker info` fails, waiting up to 30 s for it.
#
#   source .ci/docker.sh || exit 1      (from .ci/run)
#   bash .ci/docker.sh                  (by hand)
#
# Defines only envctl_ci_* functions; changes no shell options of the caller.

envctl_ci_as_root() {
  if [[ ${EUID} -eq 0 ]]; then
    "$@"
  else
    sudo "$@"
  fi
}

envctl_ci_install_docker_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  if [[ ${#missing[@]} -eq 0 ]]; then
    return 0
  fi
  echo "docker.sh: installing ${missing[*]}" >&2
  envctl_ci_as_root apt-get update -qq &&
    envctl_ci_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

envctl_ci_start_dockerd() {
  local log="${TMPDIR:-/tmp}/dockerd.log" waited=0 pid
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  if [[ -n ${DOCKER_HOST:-} ]]; then
    echo "docker.sh: no Docker engine answers at DOCKER_HOST=${DOCKER_HOST}" >&2
    return 1
  fi
  echo "docker.sh: starting dockerd (log: ${log})" >&2
  envctl_ci_as_root setsid dockerd >"${log}" 2>&1 </dev/null &
  pid=$!
  until docker info >/dev/null 2>&1; do
    if [[ ${waited} -ge 30 ]] || ! kill -0 "${pid}" 2>/dev/null; then
      echo "docker.sh: dockerd did not answer (waited ${waited} s); the end of ${log}:" >&2
      tail -n 20 "${log}" >&2
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "docker.sh: dockerd ready after ${waited} s" >&2
}

envctl_ci_install_docker_packages && envctl_ci_start_dockerd
