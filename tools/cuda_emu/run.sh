#!/usr/bin/env bash
# tools/cuda_emu/run.sh — runs dfx's CUDA kernels (kernels/cuda/*.cu) on the host under a small
# emulation of CUDA and compares them with the CPU kernels, for machines without a GPU. Every CUDA
# thread is a coroutine; __syncthreads and warp shuffles are barriers; WMMA fragments are held
# whole by every lane; launches run in order (streams are not emulated); cuDNN and NCCL are not.
# It checks index logic, reductions and determinism, not races, limits or device rounding.
#   usage: bash tools/cuda_emu/run.sh [test ...]   (tests: elementwise adam leaky_relu_backward
#          reduce norm norm_rows fem pool conv conv_tf32; all by default). Needs a CPU-only build
#          of dfx, made here in build-emu/ (about 10 minutes on 2 cores the first time).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EMU=$ROOT/tools/cuda_emu
WORK=$ROOT/build-emu
mkdir -p "$WORK/src/kernels/cuda" "$WORK/obj"
if [[ ! -f $WORK/lib/build.ninja ]]; then
  meson setup "$WORK/lib" "$ROOT" -Dcuda=disabled -Dtests=false -Dbenchmarks=disabled \
    --buildtype=debugoptimized >/dev/null
fi
ninja -C "$WORK/lib" libdfx.a >/dev/null
# The kernels as host C++: <<<grid, block, ...>>> launches become emu::launch(grid, block, ...),
# and the "is this a CUDA tensor" checks are dropped (host tensors stand in for device ones).
python3 - "$ROOT/kernels/cuda" "$WORK/src/kernels/cuda" <<'PY'
import glob, os, re, sys
src, dst = sys.argv[1], sys.argv[2]
launch = re.compile(r'([A-Za-z_][\w:]*(?:<[^<>;{}]*?>)?)<<<(.*?)>>>\(', re.S)
for f in glob.glob(src + '/*'):
    s = open(f).read()
    s = launch.sub(lambda m: 'emu::launch(%s, %s, ' % (','.join(m.group(2).split(',')[:2]).strip(),
                                                      m.group(1)), s)
    s = re.sub(r'DFX_CHECK\(t\.device\(\)\.is_cuda\(\),.*?CUDA tensor"\);', '(void)0;', s, flags=re.S)
    open(os.path.join(dst, os.path.basename(f)), 'w').write(s)
PY
FL="-std=c++20 -O1 -fopenmp -w -I$EMU/include -I$WORK/src -I$ROOT -I$WORK/lib"
pids=()
for f in conv elementwise fem norm pool reduce; do
  g++ $FL -x c++ -c "$WORK/src/kernels/cuda/$f.cu" -o "$WORK/obj/$f.o" & pids+=($!)
done
g++ $FL -c "$EMU/driver.cpp" -o "$WORK/obj/driver.o" & pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
g++ -fopenmp "$WORK"/obj/*.o "$WORK/lib/libdfx.a" -lopenblas -o "$WORK/emu_test"
if [[ $# -eq 0 ]]; then exec "$WORK/emu_test"; fi
for t in "$@"; do "$WORK/emu_test" "$t"; done
