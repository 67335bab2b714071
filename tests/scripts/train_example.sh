#!/usr/bin/env bash
# tests/scripts/train_example.sh BUILD_DIR — examples/train_poisson.cpp, a user's experiment
# built against the installed library with exactly `pkg-config --cflags --libs dfx`:
#  1. with its user term off it takes the same per-step losses as `dfx train` for the same
#     configuration (the CLI is the same Trainer);
#  2. with the term on, 1 and 3 MPI ranks take the same per-step losses (loss integrity).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stage="$tmp/stage"
meson install -C "$BUILD" --destdir "$stage" --quiet >/dev/null
pc=$(find "$stage" -name dfx.pc | head -1)
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$stage
g++ -std=c++20 examples/train_poisson.cpp $(pkg-config --cflags --libs dfx) -o "$tmp/train_poisson"
export LD_LIBRARY_PATH="$(dirname "$(find "$stage" -name 'libdfx.so' | head -1)")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMP_NUM_THREADS=1

"$tmp/train_poisson" 5 0 >"$tmp/ex0.log"
cat "$tmp/ex0.log"
"$1/apps/dfx" train --problem poisson2d --res 16 --depth 2 --width 4 --batch 7 --samples 14 \
  --steps 5 --seed 9 --dtype float64 --schedule cosine --eval-samples 0 --threads 1 \
  --out "$tmp/cli" >/dev/null
python3 - "$tmp/ex0.log" "$tmp/cli/metrics.jsonl" <<'PY'
import json, sys
ex = [float(l.split()[3]) for l in open(sys.argv[1]) if l.startswith("step ")]
cli = [json.loads(l)["loss"] for l in open(sys.argv[2]) if '"loss"' in l]
assert len(ex) == len(cli) == 5, (ex, cli)
for a, b in zip(ex, cli):
    assert abs(a - b) <= 1e-12 * abs(b), ("example and dfx train differ", ex, cli)
print("example (no user term) == dfx train:", ["%.10g" % x for x in cli])
PY

if command -v mpiexec >/dev/null && [[ -x "$BUILD/tests/mpi/dfx_mpi" ]]; then
  mpiexec -n 1 "$tmp/train_poisson" 4 0.5 >"$tmp/np1.log"
  mpiexec -n 3 "$tmp/train_poisson" 4 0.5 >"$tmp/np3.log"
  cat "$tmp/np3.log"
  grep -q "^3 rank(s): 4 steps (done)" "$tmp/np3.log"
  python3 - "$tmp/np1.log" "$tmp/np3.log" <<'PY'
import sys
a = [float(l.split()[3]) for l in open(sys.argv[1]) if l.startswith("step ")]
b = [float(l.split()[3]) for l in open(sys.argv[2]) if l.startswith("step ")]
assert len(a) == len(b) == 4, (a, b)
for x, y in zip(a, b):
    assert abs(x - y) <= 1e-9 * abs(x), ("1 vs 3 ranks", a, b)
print("example with the user term: np=1 == np=3:", ["%.10g" % x for x in a])
PY
fi
echo "train example: ok"
