#!/usr/bin/env bash
# tests/scripts/mpi_examples.sh BUILD_DIR — dfx under MPI as users run it:
#  1. `mpiexec -n 3 dfx train` writes the same loss per step as `mpiexec -n 1 dfx train` for the
#     same global batch (7, uneven on purpose) and seed (loss integrity with SyncBatchNorm), with
#     Adam, L-BFGS, Newton-CG, AdaHessian, Gauss-Newton and K-FAC (its factors summed over ranks);
#     also with output-space preconditioning (--output-precondition);
#  2. examples/split_comm.cpp, built against the installed library, splits MPI_COMM_WORLD in two
#     and trains two independent models side by side inside the host's MPI program.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=$1
DFX="$BUILD/apps/dfx"
if ! command -v mpiexec >/dev/null || [[ ! -x "$BUILD/tests/mpi/dfx_mpi" ]]; then
  echo "MPI not built; nothing to check"; exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Every optimiser, first and second order, takes the same steps on 1 and 3 ranks. Gauss-Newton's
# damped CG amplifies the rounding of the sums' order (1 vs 3 ranks) by ~1e4 per step (its
# products agree to 1e-10: tests/mpi/test_sync_bn.cpp), so it is checked to 1e-7 over 3 steps
# with a fixed CG budget; a missing cross-rank term would show at 1e-2 from step 2.
# kfac-pc: K-FAC on the output-preconditioned gradient (its factors drawn in the L2 metric).
for opt in adam lbfgs newton-cg adahessian gauss-newton kfac kfac-pc; do
  args=(train --problem poisson2d --res 16 --depth 2 --width 4 --batch 7 --samples 14 --steps 3
        --seed 9 --threads 1 --eval-samples 0 --dtype float64 --optimizer "${opt%-pc}")
  tol=1e-9
  if [[ $opt == gauss-newton ]]; then args+=(--cg-iters 10); tol=1e-7; fi
  if [[ $opt == kfac* ]]; then args+=(--hessian-every 2); fi  # a refresh at steps 0 and 2
  if [[ $opt == *-pc ]]; then args+=(--output-precondition); fi
  mpiexec -n 1 "$DFX" "${args[@]}" --out "$tmp/np1_$opt" >/dev/null
  mpiexec -n 3 "$DFX" "${args[@]}" --out "$tmp/np3_$opt" >"$tmp/np3.log"
  grep -q "on 3 ranks" "$tmp/np3.log"
  python3 - "$tmp/np1_$opt/metrics.jsonl" "$tmp/np3_$opt/metrics.jsonl" "$opt" "$tol" <<'PY'
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1]) if '"loss"' in l]
b = [json.loads(l)["loss"] for l in open(sys.argv[2]) if '"loss"' in l]
assert len(a) == len(b) == 3, (a, b)
for x, y in zip(a, b):
    assert abs(x - y) <= float(sys.argv[4]) * abs(x), (sys.argv[3], a, b)
print(f"{sys.argv[3]}: np=1 and np=3 losses agree:", ["%.12g" % x for x in a])
PY
done

# Multigrid training across a level change (N = 8 -> 16 -> 8 -> 16, V-cycles): 1 and 3 ranks.
mg=(train --problem poisson2d --res 16 --depth 2 --width 4 --batch 7 --samples 14 --levels 8,16
    --level-steps 2,1 --cycle v --cycles 2 --seed 9 --threads 1 --eval-samples 0 --dtype float64)
mpiexec -n 1 "$DFX" "${mg[@]}" --out "$tmp/mg1" >/dev/null
mpiexec -n 3 "$DFX" "${mg[@]}" --out "$tmp/mg3" >/dev/null
python3 - "$tmp/mg1/metrics.jsonl" "$tmp/mg3/metrics.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
b = [json.loads(l) for l in open(sys.argv[2]) if '"loss"' in l]
assert [r["res"] for r in a] == [16, 8, 8, 16, 16, 8, 8, 16], [r["res"] for r in a]
assert len(a) == len(b)
for x, y in zip(a, b):
    assert x["res"] == y["res"] and abs(x["loss"] - y["loss"]) <= 1e-9 * abs(x["loss"]), (a, b)
print("multigrid V-cycles: np=1 and np=3 losses agree across level changes")
PY

# Multigrid with depth growth (depth 2 at N = 8, 3 at N = 16): 1 and 3 ranks across the growth.
gr=(train --problem poisson2d --res 16 --depth 2 --width 4 --batch 7 --samples 14 --levels 8,16
    --level-steps 2,2 --grow-depth --seed 9 --threads 1 --eval-samples 0 --dtype float64)
mpiexec -n 1 "$DFX" "${gr[@]}" --out "$tmp/gr1" >/dev/null
mpiexec -n 3 "$DFX" "${gr[@]}" --out "$tmp/gr3" >/dev/null
python3 - "$tmp/gr1/metrics.jsonl" "$tmp/gr3/metrics.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
b = [json.loads(l) for l in open(sys.argv[2]) if '"loss"' in l]
assert [r["res"] for r in a] == [8, 8, 16, 16], [r["res"] for r in a]
assert len(a) == len(b)
for x, y in zip(a, b):
    assert x["res"] == y["res"] and abs(x["loss"] - y["loss"]) <= 1e-9 * abs(x["loss"]), (a, b)
print("multigrid with depth growth: np=1 and np=3 losses agree across the growth")
PY

# Output-space preconditioning (a multigrid V-cycle per sample): the same steps on 1 and 3 ranks.
pc=(train --problem poisson2d --res 16 --depth 2 --width 4 --batch 7 --samples 14 --steps 3
    --seed 9 --threads 1 --eval-samples 0 --dtype float64 --output-precondition)
mpiexec -n 1 "$DFX" "${pc[@]}" --out "$tmp/pc1" >/dev/null
mpiexec -n 3 "$DFX" "${pc[@]}" --out "$tmp/pc3" >/dev/null
python3 - "$tmp/pc1/metrics.jsonl" "$tmp/pc3/metrics.jsonl" "$tmp/np1_adam/metrics.jsonl" <<'PY'
import json, sys
a, b, plain = ([json.loads(l)["loss"] for l in open(p) if '"loss"' in l] for p in sys.argv[1:4])
assert len(a) == len(b) == 3, (a, b)
for x, y in zip(a, b):
    assert abs(x - y) <= 1e-9 * abs(x), (a, b)
assert a[0] == plain[0] and abs(a[2] - plain[2]) > 1e-6 * abs(plain[2]), (a, plain)  # same start, other path
print("output preconditioning: np=1 and np=3 losses agree:", ["%.12g" % x for x in a])
PY

# An error on rank 0 alone (its --out is a regular file) ends the whole job with its message
# (MPI_Abort), instead of leaving rank 1 waiting in a collective forever.
touch "$tmp/afile"
set +e
timeout 60 mpiexec -n 2 "$DFX" train --res 16 --depth 2 --width 4 --batch 4 --samples 4 --steps 3 \
  --threads 1 --eval-samples 0 --out "$tmp/afile" >/dev/null 2>"$tmp/abort.err"
rc=$?
set -e
[[ $rc -ne 0 && $rc -ne 124 ]] || { echo "rank-0 failure: exit $rc (124: the job hung)"; exit 1; }
grep -q "cannot create output directory" "$tmp/abort.err" || { cat "$tmp/abort.err"; exit 1; }
echo "a failure on rank 0 aborted the job (exit $rc)"

# An error every rank meets (a bad value) is printed once, by rank 0.
set +e
timeout 60 mpiexec -n 2 "$DFX" train --steps -5 --threads 1 --out "$tmp/bad" >/dev/null 2>"$tmp/bad.err"
rc=$?
set -e
[[ $rc -ne 0 && $(grep -c "steps must be >= 1" "$tmp/bad.err") -eq 1 ]] || { cat "$tmp/bad.err"; echo "bad value under MPI: exit $rc"; exit 1; }
set +e
timeout 60 mpiexec -n 2 "$DFX" train --bogus 1 >/dev/null 2>"$tmp/bad.err"
rc=$?
set -e
[[ $rc -ne 0 && $(grep -c "unknown option 'bogus'" "$tmp/bad.err") -eq 1 ]] || { cat "$tmp/bad.err"; echo "bad flag under MPI: exit $rc"; exit 1; }
echo "a bad value and a bad flag under mpiexec -n 2 are reported once"

stage="$tmp/stage"
meson install -C "$BUILD" --destdir "$stage" --quiet >/dev/null
pc=$(find "$stage" -name dfx.pc | head -1)
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$stage
mpicxx -std=c++20 examples/split_comm.cpp $(pkg-config --cflags --libs dfx) -o "$tmp/split_comm"
libdir=$(dirname "$(find "$stage" -name 'libdfx.so' | head -1)")
out=$(LD_LIBRARY_PATH="$libdir" mpiexec -n 4 "$tmp/split_comm")
echo "$out"
grep -q "group 0 (2 ranks): w = 2.000000" <<<"$out"
grep -q "group 1 (2 ranks): w = -3.000000" <<<"$out"
