#!/usr/bin/env bash
# run.sh — installs what is missing, builds, and runs dfx's main job.
set -euo pipefail
cd "$(dirname "$0")"
tools/setup.sh
tools/build.sh build >/dev/null
exec build/apps/dfx demo "$@"
