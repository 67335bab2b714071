#!/usr/bin/env bash
# tools/setup.sh — installs what dfx needs from Debian's packages, only what is missing, quietly.
# Idempotent: a second run prints nothing and installs nothing.
set -euo pipefail

PACKAGES=(meson ninja-build pkg-config g++ libopenblas-dev doctest-dev libbenchmark-dev
          mpich libmpich-dev nlohmann-json3-dev libpng-dev libcli11-dev)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
