#!/usr/bin/env bash
# tools/build.sh [BUILD_DIR] — configures (once) and builds dfx: Meson release-with-debug-info,
# CUDA objects included when nvcc is found (here: /usr/local/cuda), MPI when installed.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
if [[ -x /usr/local/cuda/bin/nvcc && ":$PATH:" != *":/usr/local/cuda/bin:"* ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [[ ! -f "$BUILD/build.ninja" ]]; then
  # shellcheck disable=SC2086  # DFX_MESON_ARGS is a list of options
  if ! meson setup "$BUILD" --buildtype=debugoptimized ${DFX_MESON_ARGS:-} >"$log" 2>&1; then
    cat "$log"
    exit 1
  fi
  sed -n '/dfx parts/,/^$/p' "$log"
fi
if ! ninja -C "$BUILD" >"$log" 2>&1; then
  grep -vE '^\[[0-9]+/[0-9]+\] ' "$log" | tail -60
  echo "build: FAILED (full log: ninja -C $BUILD)"
  exit 1
fi
echo "build: $BUILD up to date"
