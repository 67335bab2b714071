#!/usr/bin/env bash
# tests/scripts/embed_examples.sh BUILD_DIR — the C API (train/dfx_c.h) from programs built
# against the installed library:
#  1. tests/c/c_api_local.c (plain cc, no MPI): errors come back as status codes with messages,
#     a resume from a checkpoint takes the same losses bit for bit, an end checkpoint predicts
#     (and `dfx eval` reads it), and it accepts exactly the keys of `dfx train --help`;
#  2. examples/embed.c and examples/embed.f90, host programs that own MPI and pass
#     MPI_COMM_WORLD (C: `mpicc ... $(pkg-config --cflags --libs dfx)`, Fortran: `mpif90 ...
#     $(pkg-config --libs dfx)`; libdfx.so brings the C++ runtime): under `mpiexec -n 1` and
#     `-n 3` each prints the same per-step losses as `dfx train` writes to metrics.jsonl for the
#     same configuration (relative 1e-9, float64), np=1 and np=3 agree, and its prediction for a
#     field of its own is finite with poisson2d's Dirichlet values.
# Part 2 is skipped (exit 0, with a message) without mpicc/mpiexec or when dfx was built without
# MPI, and its Fortran half without gfortran/mpif90.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stage="$tmp/stage"
meson install -C "$BUILD" --destdir "$stage" --quiet >/dev/null
pc=$(find "$stage" -name dfx.pc | head -1)
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$stage
libdir="$(dirname "$(find "$stage" -name 'libdfx.so' | head -1)")"
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMP_NUM_THREADS=1

# pkg-config's cflags carry -std=c++20 for C++ users; a C compiler only warns about it.
cc -O2 tests/c/c_api_local.c $(pkg-config --cflags --libs dfx) -lm -o "$tmp/c_api_local" 2>"$tmp/cc.log" || {
  cat "$tmp/cc.log"; exit 1; }
mkdir "$tmp/scratch"
"$tmp/c_api_local" "$tmp/scratch" >"$tmp/local.log"
grep -v "^unknown key" "$tmp/local.log"
# The keys it accepts are exactly `dfx train`'s (but --config, a file of them).
c_keys=$(grep "^unknown key" "$tmp/local.log" | sed 's/.* with _ for -: //; s/, /\n/g' | sort)
cli_keys=$("$BUILD/apps/dfx" train --help | grep -oE '^  --[a-z0-9-]+' | sed 's/^  --//; s/-/_/g' \
  | grep -vx config | sort)
if [[ "$c_keys" != "$cli_keys" ]]; then
  echo "the C API's keys differ from dfx train's:"; diff <(echo "$c_keys") <(echo "$cli_keys"); exit 1
fi
echo "C API keys == dfx train's ($(echo "$c_keys" | wc -l))"
# Its checkpoints carry the JSON given as their config: `dfx eval` rebuilds the model from it.
"$BUILD/apps/dfx" eval --checkpoint "$tmp/scratch/end.safetensors" --samples 2 --threads 1 \
  | grep "poisson2d N=16, step 6"

if ! command -v mpicc >/dev/null || ! command -v mpiexec >/dev/null; then
  echo "embed examples: MPI part skipped (no mpicc/mpiexec)"
  exit 0
fi
if ! grep -q '^#define DFX_HAVE_MPI 1' "$BUILD/config.h"; then
  echo "embed examples: MPI part skipped (dfx built without MPI)"
  exit 0
fi
mpicc -O2 examples/embed.c $(pkg-config --cflags --libs dfx) -lm -o "$tmp/embed_c" 2>"$tmp/cc.log" || {
  cat "$tmp/cc.log"; exit 1; }
progs=(embed_c)
if command -v mpif90 >/dev/null && command -v gfortran >/dev/null; then
  (cd "$tmp" && mpif90 -std=f2008 -O2 "$OLDPWD/examples/embed.f90" $(pkg-config --libs dfx) \
     -o "$tmp/embed_f")
  progs+=(embed_f)
else
  echo "embed examples: Fortran part skipped (no gfortran/mpif90)"
fi

"$BUILD/apps/dfx" train --problem poisson2d --res 16 --depth 2 --width 4 --batch 7 --samples 14 \
  --steps 5 --seed 9 --dtype float64 --schedule cosine --optimizer adam --eval-samples 0 \
  --threads 1 --out "$tmp/cli" >/dev/null

logs=()
for p in "${progs[@]}"; do
  for np in 1 3; do
    mpiexec -n "$np" "$tmp/$p" 5 >"$tmp/$p.np$np.log"
    logs+=("$tmp/$p.np$np.log")
  done
done
cat "$tmp/embed_c.np3.log"
python3 - "$tmp/cli/metrics.jsonl" "${logs[@]}" <<'PY'
import json, os, sys
cli = [json.loads(l)["loss"] for l in open(sys.argv[1]) if '"loss"' in l]
assert len(cli) == 5, cli
runs = {}
for path in sys.argv[2:]:
    lines = open(path).read().splitlines()
    got = [float(l.split()[3]) for l in lines if l.startswith("step ")]
    steps = [int(l.split()[1]) for l in lines if l.startswith("step ")]
    name = os.path.basename(path)
    assert steps == [1, 2, 3, 4, 5], (name, steps)
    for a, b in zip(got, cli):
        assert abs(a - b) <= 1e-9 * abs(b), (name + " and dfx train differ", got, cli)
    assert any(l.startswith("prediction ok") for l in lines), (name, lines)
    runs[name.split(".")[0]] = runs.get(name.split(".")[0], []) + [got]
    print("%-16s == dfx train: %s" % (name[:-4], ["%.10g" % x for x in got]))
for prog, (np1, np3) in runs.items():
    for a, b in zip(np1, np3):
        assert abs(a - b) <= 1e-9 * abs(a), (prog + ": np=1 and np=3 differ", np1, np3)
    print("%-16s np=1 == np=3" % prog)
PY
echo "embed examples: ok (${progs[*]})"
