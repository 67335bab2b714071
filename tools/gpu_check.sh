#!/usr/bin/env bash
# tools/gpu_check.sh — the one script to run on a lent H100 (see the device tool's README):
# configure with that machine's cuDNN/NCCL (inside PyTorch's venv), build for sm_90, run the GPU
# suite, then W1 for dfx and the PyTorch peer side by side, distribution on the GPU, and a
# compute-sanitizer memcheck subset, and print a short table last.
#   run: bash tools/gpu_check.sh   (device timeout_s ~ 540; BUDGET=seconds, default 480)
# Stages run in order of importance and each is capped by what is left of BUDGET (skipped when
# too little is left), so the script ends by itself inside the lease, with time for a rerun.
# The summary is also written to $OUT/summary.txt as it grows (it comes back with the run).
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
BUDGET=${BUDGET:-480}
VENV_NV=/opt/torch/.venv/lib/python3.12/site-packages/nvidia
PY=${PY:-/opt/torch/.venv/bin/python}
export PATH="/usr/local/cuda/bin:/opt/torch/.venv/bin:$PATH"
export LD_LIBRARY_PATH="$VENV_NV/cudnn/lib:$VENV_NV/nccl/lib:${LD_LIBRARY_PATH:-}"
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
: >"$OUT/summary.txt"

elapsed() { echo $(( $(date +%s) - T0 )); }
note() { echo "$1" >>"$OUT/summary.txt"; }
# cap SECONDS MIN: prints min(SECONDS, time left) or nothing when less than MIN is left.
cap() {
  local left=$(( BUDGET - $(elapsed) ))
  (( left >= $2 )) && echo $(( $1 < left ? $1 : left ))
}
finish() {
  echo
  echo "==== gpu_check summary ($(elapsed) s of a $BUDGET s budget) ===="
  cat "$OUT/summary.txt"
}
trap finish EXIT

# ---- 1. build ---------------------------------------------------------------------------------
if [[ ! -f build-gpu/build.ninja ]]; then
  meson setup build-gpu --buildtype=release -Dsm_arch=90 -Dcuda=enabled \
    -Dcudnn_root="$VENV_NV/cudnn" -Dnccl_root="$VENV_NV/nccl" -Dtests=true >"$OUT/configure.log" 2>&1 \
    || { tail -30 "$OUT/configure.log"; note "configure: FAILED"; exit 1; }
fi
ninja -C build-gpu >"$OUT/build.log" 2>&1 || { grep -E "error|FAILED" -A5 "$OUT/build.log" | head -60; note "build: FAILED"; exit 1; }
note "build: ok ($(elapsed) s); $(grep -E 'cuDNN|NCCL|MPI' "$OUT/configure.log" 2>/dev/null | tr -s ' ' | tr '\n' ';')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

# ---- 2. the GPU suite (every op against the CPU, a W1 step, HVP, streams, cuDNN, NCCL P = 1) -
if t=$(cap 120 30); then
  timeout "$t" build-gpu/tests/dfx_gpu >"$OUT/gpu_tests.log" 2>&1
  note "dfx_gpu (exit $?): $(grep -E 'test cases:' "$OUT/gpu_tests.log" | tail -1)"
  grep -E "ERROR|FAILED|TEST CASE" "$OUT/gpu_tests.log" | grep -B1 ERROR | grep "TEST CASE" | sort | uniq -c \
    | head -12 | while IFS= read -r l; do note "    failing: $l"; done
else note "dfx_gpu: skipped (budget)"; fi

# ---- 3. W1 at N = 1024 (the issue's bar), then N = 256 -----------------------------------------
# dfx: convolutions autotuned (dfx's kernels against cuDNN; each decision logged by
# DFX_CONV_LOG to dfx_<N>_<tag>.err), 5 timed steps after 2 warm-up steps (the first autotunes).
# The N = 1024 TF32 row also prints per-kernel CUDA-event timings (5 more steps). PyTorch: 10
# after 3, as in ANCHORS.md. Each row is one line: the JSON of bench / torch_ref.py.
dfx_row() {  # N TAG EXTRA-FLAGS...
  local N=$1 tag=$2; shift 2
  local t; t=$(cap 150 40) || { note "dfx   W1 N=$N $tag: skipped (budget)"; return; }
  if DFX_CONV_LOG=1 timeout "$t" build-gpu/apps/dfx bench --res "$N" --batch 8 --device cuda \
       --conv-backend auto --steps 5 --warmup 2 --json "$@" \
       >"$OUT/dfx_${N}_$tag.json" 2>"$OUT/dfx_${N}_$tag.err"; then
    local tuned native
    tuned=$(grep -c 'dfx conv autotune' "$OUT/dfx_${N}_$tag.err")
    native=$(grep -c -- '-> native \[' "$OUT/dfx_${N}_$tag.err")
    note "dfx   W1 N=$N $tag (conv auto: $tuned decisions, $native dfx's kernel): $(tail -1 "$OUT/dfx_${N}_$tag.json" | head -c 700)"
    if grep -q '^kernel ' "$OUT/dfx_${N}_$tag.err"; then
      note "dfx   W1 N=$N $tag per-kernel (top 12):"
      grep -A12 '^kernel ' "$OUT/dfx_${N}_$tag.err" | while IFS= read -r l; do note "    $l"; done
    fi
  else
    note "dfx   W1 N=$N $tag: failed: $(grep -v 'dfx conv autotune' "$OUT/dfx_${N}_$tag.err" | tail -c 300)"
  fi
}
torch_row() {  # N TAG FLAGS...
  local N=$1 tag=$2; shift 2
  local t; t=$(cap 150 40) || { note "torch W1 N=$N $tag: skipped (budget)"; return; }
  if timeout "$t" $PY bench/torch_ref.py --res "$N" --batch 8 --device cuda --steps 10 --warmup 3 \
       --json "$@" >"$OUT/torch_${N}_$tag.json" 2>"$OUT/torch_${N}_$tag.err"; then
    note "torch W1 N=$N $tag: $(tail -1 "$OUT/torch_${N}_$tag.json")"
  else
    note "torch W1 N=$N $tag: failed: $(tail -c 200 "$OUT/torch_${N}_$tag.err")"
  fi
}
dfx_row 1024 tf32 --tf32 --profile
torch_row 1024 tf32 --tf32
dfx_row 1024 fp32
torch_row 1024 fp32
dfx_row 256 fp32 --hvp
torch_row 256 fp32 --hvp
dfx_row 256 tf32 --tf32
torch_row 256 tf32 --tf32

# ---- 4. training end to end, and distribution on the GPU (docs/distributed.md) ---------------
if t=$(cap 90 30); then
  if timeout "$t" build-gpu/apps/dfx train --device cuda --res 64 --batch 8 --steps 200 --lr 3e-3 \
       --eval-samples 16 --panels 0 --out "$OUT/train_gpu" >"$OUT/train_gpu.log" 2>&1; then
    note "dfx train --device cuda (200 steps): $(grep 'held-out' "$OUT/train_gpu.log" | tail -1)"
  else
    note "dfx train --device cuda: FAILED: $(tail -3 "$OUT/train_gpu.log" | tr '\n' ' ')"
  fi
else note "dfx train --device cuda: skipped (budget)"; fi
# NCCL at P = 1 is in dfx_gpu above. Here: the MPI backend on device buffers with two ranks
# sharing the one GPU (NCCL must refuse that cleanly on both), NCCL itself with two ranks made
# to see two hosts (a distinct NCCL_HOSTID each, sockets over lo), dfx train with --comm nccl
# (P = 1) and under mpirun. Hangs are cut by the timeouts.
if [[ -x build-gpu/tests/mpi/dfx_mpi ]] && command -v mpirun >/dev/null; then
  mpi=(mpirun --allow-run-as-root --oversubscribe -np 2)
  if t=$(cap 60 20); then
    timeout "$t" "${mpi[@]}" build-gpu/tests/mpi/dfx_mpi -ts=mpi-gpu >"$OUT/mpi_gpu.log" 2>&1
    note "dfx_mpi mpi-gpu, 2 ranks on one GPU (exit $?): $(grep -E 'test cases:' "$OUT/mpi_gpu.log" | tail -1)"
  fi
  if t=$(cap 45 20); then
    timeout "$t" "${mpi[@]}" -x NCCL_SOCKET_IFNAME=lo -x NCCL_NET=Socket -x NCCL_IB_DISABLE=1 \
      -x NCCL_P2P_DISABLE=1 -x NCCL_SHM_DISABLE=1 \
      bash -c 'NCCL_HOSTID=dfx-rank$OMPI_COMM_WORLD_RANK exec "$0" "$@"' \
      build-gpu/tests/mpi/dfx_mpi -ts=mpi-gpu -tc='NCCL*' >"$OUT/nccl_np2.log" 2>&1
    note "NCCL over MPI, 2 ranks as two hosts (exit $?): $(grep -E 'test cases:' "$OUT/nccl_np2.log" | tail -1)"
  fi
  if t=$(cap 45 20); then
    if timeout "$t" "${mpi[@]}" build-gpu/apps/dfx train --device cuda --res 32 --depth 3 --width 8 \
         --batch 4 --samples 16 --steps 10 --eval-samples 0 --panels 0 --out "$OUT/train_mpi_gpu" \
         >"$OUT/train_mpi_gpu.log" 2>&1; then
      note "dfx train --device cuda, 2 MPI ranks: $(grep -o 'on 2 ranks ([^)]*)' "$OUT/train_mpi_gpu.log"), $(grep -o 'loss [0-9.e+-]*' "$OUT/train_mpi_gpu.log" | tail -1)"
    else
      note "dfx train --device cuda, 2 MPI ranks: FAILED: $(tail -3 "$OUT/train_mpi_gpu.log" | tr '\n' ' ')"
    fi
  fi
else
  note "dfx_mpi: not built (no MPI at configure time)"
fi
if t=$(cap 45 20); then
  if timeout "$t" build-gpu/apps/dfx train --comm nccl --device cuda --res 32 --depth 3 --width 8 \
       --batch 4 --samples 16 --steps 10 --eval-samples 0 --panels 0 --out "$OUT/train_nccl" \
       >"$OUT/train_nccl.log" 2>&1; then
    note "dfx train --comm nccl --device cuda (P = 1): $(grep -o 'loss [0-9.e+-]*' "$OUT/train_nccl.log" | tail -1)"
  else
    note "dfx train --comm nccl: FAILED: $(tail -3 "$OUT/train_nccl.log" | tr '\n' ' ')"
  fi
fi

# ---- 5. extras while the budget lasts ----------------------------------------------------------
dfx_row 1024 tf32_channels_last --tf32 --channels-last
torch_row 1024 tf32_channels_last --tf32 --channels-last
# dfx's own NHWC kernels alone (16-byte gathers, no layout copies), with per-kernel timings.
dfx_row 1024 tf32_cl_native --tf32 --channels-last --conv-backend native --profile
torch_row 1024 tf32_compile --tf32 --compile
if command -v compute-sanitizer >/dev/null && t=$(cap 90 40); then
  timeout "$t" compute-sanitizer --tool memcheck build-gpu/tests/dfx_gpu \
    -tc='*copy*,*unary*,*batch-norm*,*pooling*,*streams*,*leaky*' >"$OUT/memcheck.log" 2>&1
  note "memcheck: $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1)"
fi
# Memory: batch norm rebuilding its input and activation checkpointing (first-order only), at
# N = 1024 and 2048
# (PyTorch eager TF32: 16.2 and 63.4 GiB in ANCHORS.md); peak_gib is in each row's JSON.
dfx_row 1024 tf32_cl_lowmem --tf32 --channels-last --bn-recompute --activation-checkpoint
dfx_row 2048 tf32_cl_lowmem --tf32 --channels-last --bn-recompute --activation-checkpoint
