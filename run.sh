#!/usr/bin/env bash
# run.sh — installs what is missing, builds, and runs dfx's main job: data-free training of the W1
# U-Net (Poisson 2-d, N = 64) on the CPU with configs/w1_n64.json (~1 % held-out error; about
# 10 minutes of training on 2 cores of an AMX Xeon, 18 on a CPU without AMX: BENCHMARKS.md),
# then the held-out error against the multigrid reference and where the pictures are.
# Extra arguments override the configuration, e.g. ./run.sh --steps 500 --out runs/short
set -euo pipefail
cd "$(dirname "$0")"
tools/setup.sh
tools/build.sh build >/dev/null
source tools/blas_env.sh
exec build/apps/dfx train --config configs/w1_n64.json "$@"
