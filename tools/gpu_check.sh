#!/usr/bin/env bash
# tools/gpu_check.sh — the one script to run on a lent H100 (see the device tool's README):
# configure with that machine's cuDNN/NCCL (inside PyTorch's venv), build for sm_90, run the GPU
# suite, then W1 for dfx and the PyTorch peer side by side, distribution on the GPU, and a
# compute-sanitizer memcheck subset, and print a short table last (tools/gpu_table.py).
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
# The wheels' layout differs between releases (nvidia/cudnn, nvidia/cu13, ...): find each root
# by its header.
wheel_root() { local h; h=$(find "$VENV_NV" -path "*/include/$1" 2>/dev/null | head -1); [[ -n $h ]] && dirname "$(dirname "$h")"; }
CUDNN_ROOT=$(wheel_root cudnn.h)
NCCL_ROOT=$(wheel_root nccl.h)
export LD_LIBRARY_PATH="${CUDNN_ROOT:+$CUDNN_ROOT/lib:}${NCCL_ROOT:+$NCCL_ROOT/lib:}${LD_LIBRARY_PATH:-}"
# Logs go to LOGS; only the summary and one tarball of the logs go to OUT (the device tool brings
# back at most 8 files).
OUT=${OUT:-/tmp/gpu_check}
LOGS=${LOGS:-/tmp/gpu_check_logs}
mkdir -p "$OUT" "$LOGS"
: >"$OUT/summary.txt"

elapsed() { echo $(( $(date +%s) - T0 )); }
note() { echo "[$(elapsed)s] $1" >>"$OUT/summary.txt"; }
# cap SECONDS MIN: prints min(SECONDS, time left) or nothing when less than MIN is left.
cap() {
  local left=$(( BUDGET - $(elapsed) ))
  (( left >= $2 )) && echo $(( $1 < left ? $1 : left ))
}
pack() { tar czf "$OUT/logs.tgz" -C "$LOGS" . 2>/dev/null; }
finish() {
  pack
  echo
  echo "==== gpu_check summary ($(elapsed) s of a $BUDGET s budget) ===="
  cat "$OUT/summary.txt"
  echo
  echo "==== W1, dfx against PyTorch in this run (tools/gpu_table.py) ===="
  python3 tools/gpu_table.py "$LOGS" | tee "$OUT/table.txt"
}
trap finish EXIT

# ---- 1. build (only what this script runs: the library, dfx_gpu, dfx, dfx_mpi) ---------------
if [[ ! -f build-gpu/build.ninja ]]; then
  meson setup build-gpu --buildtype=release -Dsm_arch=90 -Dcuda=enabled -Dbenchmarks=disabled \
    ${CUDNN_ROOT:+-Dcudnn_root="$CUDNN_ROOT"} ${NCCL_ROOT:+-Dnccl_root="$NCCL_ROOT"} -Dtests=true \
    >"$LOGS/configure.log" 2>&1 \
    || { tail -30 "$LOGS/configure.log"; note "configure: FAILED"; exit 1; }
fi
targets=(tests/dfx_gpu apps/dfx)
ninja -C build-gpu -t targets all 2>/dev/null | grep -q '^tests/mpi/dfx_mpi:' && targets+=(tests/mpi/dfx_mpi)
ninja -C build-gpu "${targets[@]}" >"$LOGS/build.log" 2>&1 \
  || { grep -E "error|FAILED" -A5 "$LOGS/build.log" | head -60; note "build: FAILED"; exit 1; }
note "build: ok ($(elapsed) s); cuDNN root ${CUDNN_ROOT:-none}, NCCL root ${NCCL_ROOT:-none}; $(grep -E '^ *(cuDNN|NCCL|MPI) *:' "$LOGS/configure.log" 2>/dev/null | tr -s ' ' | tr '\n' ';')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$LOGS/gpu.txt"
note "gpu: $(cat "$LOGS/gpu.txt" 2>/dev/null)"

# ---- 2. the GPU suite (every op against the CPU, a W1 step, HVP, streams, cuDNN, NCCL P = 1) -
if t=$(cap 120 30); then
  timeout "$t" build-gpu/tests/dfx_gpu >"$LOGS/gpu_tests.log" 2>&1
  rc=$?
  note "dfx_gpu (exit $rc): $(grep -E 'test cases:' "$LOGS/gpu_tests.log" | tail -1)"
  # Each failed check with its test case and values (the whole log is in logs.tgz).
  awk '/TEST CASE:/ { tc = $0 } /ERROR:/ { e = 1; print tc " | " substr($0, 1, 220); next }
       e && /values:/ { print "      " substr($0, 1, 200) } NF == 0 { e = 0 }' "$LOGS/gpu_tests.log" \
    | head -30 | while IFS= read -r l; do note "    $l"; done
  grep -q 'test cases:' "$LOGS/gpu_tests.log" \
    || tail -8 "$LOGS/gpu_tests.log" | while IFS= read -r l; do note "    (no doctest summary) $l"; done
else note "dfx_gpu: skipped (budget)"; fi
pack

# ---- the GPU memory pre-flight: a run that cannot fit the device fails at once, naming it -----
if t=$(cap 30 10); then
  timeout "$t" build-gpu/apps/dfx train --device cuda --res 32768 --batch 8 --steps 1 \
    --eval-samples 0 --out "$LOGS/preflight_run" >"$LOGS/preflight.log" 2>&1
  rc=$?
  if [[ $rc -eq 2 ]] && grep -q "needs about .* of cuda:0 memory" "$LOGS/preflight.log"; then
    note "memory pre-flight on cuda:0: ok ($(grep -o 'needs about [^(]*' "$LOGS/preflight.log" | head -1)/ $(grep -o 'only [^.]* is free' "$LOGS/preflight.log" | head -1))"
  else note "memory pre-flight on cuda:0: FAILED (exit $rc) $(tail -2 "$LOGS/preflight.log" | tr '\n' ' ' | head -c 300)"; fi
fi

# ---- W1 rows: dfx and PyTorch, one JSON line each -------------------------------------------
# dfx: convolutions autotuned (dfx's kernels against cuDNN; each decision logged by
# DFX_CONV_LOG to dfx_<N>_<tag>.err), 5 timed steps after 2 warm-up steps (the first autotunes).
# The N = 1024 TF32 row also prints per-kernel CUDA-event timings (5 more steps). PyTorch: 10
# after 3, as in ANCHORS.md. Each row is one line: the JSON of bench / torch_ref.py.
dfx_row() {  # N TAG EXTRA-FLAGS...
  local N=$1 tag=$2; shift 2
  local t; t=$(cap 150 40) || { note "dfx   W1 N=$N $tag: skipped (budget)"; return; }
  if DFX_CONV_LOG=1 timeout "$t" build-gpu/apps/dfx bench --res "$N" --batch 8 --device cuda \
       --conv-backend auto --steps 5 --warmup 2 --json "$@" \
       >"$LOGS/dfx_${N}_$tag.json" 2>"$LOGS/dfx_${N}_$tag.err"; then
    local tuned native
    tuned=$(grep -c 'dfx conv autotune' "$LOGS/dfx_${N}_$tag.err")
    native=$(grep -c -- '-> native \[' "$LOGS/dfx_${N}_$tag.err")
    note "dfx   W1 N=$N $tag (conv auto: $tuned decisions, $native dfx's kernel): $(tail -1 "$LOGS/dfx_${N}_$tag.json" | head -c 700)"
    if grep -q '^kernel ' "$LOGS/dfx_${N}_$tag.err"; then
      note "dfx   W1 N=$N $tag per-kernel (top 12):"
      grep -A12 '^kernel ' "$LOGS/dfx_${N}_$tag.err" | while IFS= read -r l; do note "    $l"; done
    fi
  else
    note "dfx   W1 N=$N $tag: failed: $(grep -v 'dfx conv autotune' "$LOGS/dfx_${N}_$tag.err" | tail -c 300)"
  fi
}
torch_row() {  # N TAG FLAGS...
  local N=$1 tag=$2; shift 2
  local t; t=$(cap 150 40) || { note "torch W1 N=$N $tag: skipped (budget)"; return; }
  if timeout "$t" $PY bench/torch_ref.py --res "$N" --batch 8 --device cuda --steps 10 --warmup 3 \
       --json "$@" >"$LOGS/torch_${N}_$tag.json" 2>"$LOGS/torch_${N}_$tag.err"; then
    note "torch W1 N=$N $tag: $(tail -1 "$LOGS/torch_${N}_$tag.json")"
  else
    note "torch W1 N=$N $tag: failed: $(tail -c 200 "$LOGS/torch_${N}_$tag.err")"
  fi
}
# ---- 3. the stages, in order of importance; STAGES="..." picks and orders them (a rerun) ------
stage_bar() {       # the issue's bar: W1 N = 1024 TF32 NCHW, with per-kernel timings
  dfx_row 1024 tf32 --tf32 --profile
  torch_row 1024 tf32 --tf32
}
stage_cl_auto() {   # channels-last, autotuned, with per-kernel timings
  dfx_row 1024 tf32_channels_last --tf32 --channels-last --profile
}
stage_cl() {        # channels-last: autotuned, and dfx's own NHWC kernels alone with timings
  stage_cl_auto
  torch_row 1024 tf32_channels_last --tf32 --channels-last
  dfx_row 1024 tf32_cl_native --tf32 --channels-last --conv-backend native --profile
}
stage_nondet() {    # the bar's row with cuDNN's non-deterministic algorithms allowed (as PyTorch)
  DFX_CONV_DETERMINISTIC=0 dfx_row 1024 tf32_nondet --tf32
}
stage_dist() {      # distribution on the GPU (docs/distributed.md)
  # NCCL at P = 1 is in dfx_gpu above. Here: the MPI backend on device buffers with two ranks
  # sharing the one GPU (NCCL must refuse that cleanly on both), NCCL itself with two ranks made
  # to see two hosts (a distinct NCCL_HOSTID each, sockets over lo), dfx train with --comm nccl
  # (P = 1) and under mpirun. Hangs are cut by the timeouts.
  if [[ -x build-gpu/tests/mpi/dfx_mpi ]] && command -v mpirun >/dev/null; then
    mpi=(mpirun --allow-run-as-root --oversubscribe -np 2)
    if t=$(cap 60 20); then
      timeout "$t" "${mpi[@]}" build-gpu/tests/mpi/dfx_mpi -ts=mpi-gpu >"$LOGS/mpi_gpu.log" 2>&1
      note "dfx_mpi mpi-gpu, 2 ranks on one GPU (exit $?): $(grep -E 'test cases:' "$LOGS/mpi_gpu.log" | tail -1)"
    fi
    if t=$(cap 45 20); then
      timeout "$t" "${mpi[@]}" -x NCCL_SOCKET_IFNAME=lo -x NCCL_NET=Socket -x NCCL_IB_DISABLE=1 \
        -x NCCL_P2P_DISABLE=1 -x NCCL_SHM_DISABLE=1 \
        bash -c 'NCCL_HOSTID=dfx-rank$OMPI_COMM_WORLD_RANK exec "$0" "$@"' \
        build-gpu/tests/mpi/dfx_mpi -ts=mpi-gpu -tc='NCCL*' >"$LOGS/nccl_np2.log" 2>&1
      note "NCCL over MPI, 2 ranks as two hosts (exit $?): $(grep -E 'test cases:' "$LOGS/nccl_np2.log" | tail -1)"
    fi
    if t=$(cap 45 20); then
      if timeout "$t" "${mpi[@]}" build-gpu/apps/dfx train --device cuda --res 32 --depth 3 --width 8 \
           --batch 4 --samples 16 --steps 10 --eval-samples 0 --panels 0 --out "$LOGS/train_mpi_gpu" \
           >"$LOGS/train_mpi_gpu.log" 2>&1; then
        note "dfx train --device cuda, 2 MPI ranks: $(grep -o 'on 2 ranks ([^)]*)' "$LOGS/train_mpi_gpu.log"), $(grep -o 'loss [0-9.e+-]*' "$LOGS/train_mpi_gpu.log" | tail -1)"
      else
        note "dfx train --device cuda, 2 MPI ranks: FAILED: $(tail -3 "$LOGS/train_mpi_gpu.log" | tr '\n' ' ')"
      fi
    fi
  else
    note "dfx_mpi: not built (no MPI at configure time)"
  fi
  if t=$(cap 45 20); then
    if timeout "$t" build-gpu/apps/dfx train --comm nccl --device cuda --res 32 --depth 3 --width 8 \
         --batch 4 --samples 16 --steps 10 --eval-samples 0 --panels 0 --out "$LOGS/train_nccl" \
         >"$LOGS/train_nccl.log" 2>&1; then
      note "dfx train --comm nccl --device cuda (P = 1): $(grep -o 'loss [0-9.e+-]*' "$LOGS/train_nccl.log" | tail -1)"
    else
      note "dfx train --comm nccl: FAILED: $(tail -3 "$LOGS/train_nccl.log" | tr '\n' ' ')"
    fi
  fi

}
stage_hvp() {
  dfx_row 256 fp32 --hvp
  torch_row 256 fp32 --hvp
}
stage_memcheck() {
  if command -v compute-sanitizer >/dev/null && t=$(cap 90 40); then
    timeout "$t" compute-sanitizer --tool memcheck build-gpu/tests/dfx_gpu \
      -tc='*copy*,*unary*,*batch-norm*,*pooling*,*streams*,*leaky*' >"$LOGS/memcheck.log" 2>&1
    note "memcheck: $(grep -E 'ERROR SUMMARY' "$LOGS/memcheck.log" | tail -1)"
  fi
}
stage_fp32() {
  dfx_row 1024 fp32
  torch_row 1024 fp32
}
stage_lowmem() {
  # Memory: batch norm rebuilding its input and activation checkpointing (first-order only), at
  # N = 1024 and 2048
  # (PyTorch eager TF32: 16.2 and 63.4 GiB in ANCHORS.md); peak_gib is in each row's JSON.
  dfx_row 1024 tf32_cl_lowmem --tf32 --channels-last --bn-recompute --activation-checkpoint
  dfx_row 2048 tf32_cl_lowmem --tf32 --channels-last --bn-recompute --activation-checkpoint
}
stage_train() {     # training end to end on the GPU
  if t=$(cap 90 30); then
    if timeout "$t" build-gpu/apps/dfx train --device cuda --res 64 --batch 8 --steps 200 --lr 3e-3 \
         --eval-samples 16 --panels 0 --out "$LOGS/train_gpu" >"$LOGS/train_gpu.log" 2>&1; then
      note "dfx train --device cuda (200 steps): $(grep 'held-out' "$LOGS/train_gpu.log" | tail -1)"
    else
      note "dfx train --device cuda: FAILED: $(tail -3 "$LOGS/train_gpu.log" | tr '\n' ' ')"
    fi
  else note "dfx train --device cuda: skipped (budget)"; fi
}
stage_accuracy() {  # issue 15: W1 at N = 512 and 1024 with the CPU's best recipe
  # Multigrid with depth growth (configs/w1_n{512,1024}_grow.json: depth 4 at N = 64, one U-Net
  # level more per finer level, output-preconditioned cosine Adam), TF32, 16 held-out fields.
  local n
  for n in 512 1024; do
    if t=$(cap $(( n == 512 ? 200 : 300 )) 90); then
      if timeout "$t" build-gpu/apps/dfx train --config "configs/w1_n${n}_grow.json" --device cuda \
           --tf32 --threads 16 --eval-samples 16 --panels 0 --out "$LOGS/acc_$n" \
           >"$LOGS/acc_$n.log" 2>&1; then
        note "W1 N=$n growth recipe: $(grep 'held-out' "$LOGS/acc_$n.log" | tail -1)"
      else
        note "W1 N=$n accuracy: FAILED or out of time: $(grep 'held-out' "$LOGS/acc_$n.log" | tail -1) $(tail -1 "$LOGS/acc_$n.log")"
      fi
    else note "W1 N=$n accuracy: skipped (budget)"; fi
  done
}
stage_small() {
  dfx_row 256 tf32 --tf32
  torch_row 256 tf32 --tf32
}
stage_compile() {
  torch_row 1024 tf32_compile --tf32 --compile
}
for st in ${STAGES:-bar cl dist hvp memcheck fp32 lowmem train accuracy small compile}; do
  "stage_$st"
  pack
done
