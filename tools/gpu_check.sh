#!/usr/bin/env bash
# tools/gpu_check.sh — the one script to run on a lent H100 (see the device tool's README):
# configure with that machine's cuDNN/NCCL (inside PyTorch's venv), build for sm_90, run the GPU
# suite (and compute-sanitizer memcheck on a short subset), then W1 at N = 256 and 1024, batch 8,
# for dfx (once its CUDA training path exists) and the PyTorch peer side by side, and print a
# short table last. Budget: under 8 minutes, so a second run fits in a 15-minute lease.
#   run: bash tools/gpu_check.sh   (timeout_s ~ 480)
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
VENV_NV=/opt/torch/.venv/lib/python3.12/site-packages/nvidia
PY=${PY:-/opt/torch/.venv/bin/python}
export PATH="/usr/local/cuda/bin:/opt/torch/.venv/bin:$PATH"
export LD_LIBRARY_PATH="$VENV_NV/cudnn/lib:$VENV_NV/nccl/lib:${LD_LIBRARY_PATH:-}"
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
summary=()

if [[ ! -f build-gpu/build.ninja ]]; then
  meson setup build-gpu --buildtype=release -Dsm_arch=90 -Dcuda=enabled \
    -Dcudnn_root="$VENV_NV/cudnn" -Dnccl_root="$VENV_NV/nccl" -Dtests=true >"$OUT/configure.log" 2>&1 \
    || { tail -30 "$OUT/configure.log"; exit 1; }
fi
ninja -C build-gpu >"$OUT/build.log" 2>&1 || { grep -E "error|FAILED" -A5 "$OUT/build.log" | head -60; exit 1; }
summary+=("build: ok ($(( $(date +%s) - T0 )) s)")

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 240 build-gpu/tests/dfx_gpu >"$OUT/gpu_tests.log" 2>&1
summary+=("dfx_gpu: $(grep -E 'test cases:' "$OUT/gpu_tests.log" | tail -1)")
if command -v compute-sanitizer >/dev/null; then
  timeout 120 compute-sanitizer --tool memcheck build-gpu/tests/dfx_gpu \
    -tc='*copy*,*unary*,*batch-norm*,*pooling*' \
    >"$OUT/memcheck.log" 2>&1
  summary+=("memcheck: $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1)")
fi

# Distribution on the GPU (docs/distributed.md). NCCL at P = 1 is in dfx_gpu above. Here: the
# MPI backend on device buffers with two ranks sharing the one GPU (NCCL must refuse that
# cleanly on both), then NCCL itself with two ranks made to see two hosts (a distinct
# NCCL_HOSTID each, sockets over lo), then dfx train on the GPU with --comm nccl (P = 1) and under
# mpirun (auto picks MPI for ranks sharing a GPU). Hangs are cut by the timeouts.
if [[ -x build-gpu/tests/mpi/dfx_mpi ]] && command -v mpirun >/dev/null; then
  mpi=(mpirun --allow-run-as-root --oversubscribe -np 2)
  timeout 60 "${mpi[@]}" build-gpu/tests/mpi/dfx_mpi -ts=mpi-gpu >"$OUT/mpi_gpu.log" 2>&1
  rc=$?
  summary+=("dfx_mpi mpi-gpu, 2 ranks on one GPU (exit $rc): $(grep -E 'test cases:' "$OUT/mpi_gpu.log" | tail -1)")
  timeout 45 "${mpi[@]}" -x NCCL_SOCKET_IFNAME=lo -x NCCL_NET=Socket -x NCCL_IB_DISABLE=1 \
    -x NCCL_P2P_DISABLE=1 -x NCCL_SHM_DISABLE=1 \
    bash -c 'NCCL_HOSTID=dfx-rank$OMPI_COMM_WORLD_RANK exec "$0" "$@"' \
    build-gpu/tests/mpi/dfx_mpi -ts=mpi-gpu -tc='NCCL*' >"$OUT/nccl_np2.log" 2>&1
  rc=$?
  summary+=("NCCL over MPI, 2 ranks as two hosts (exit $rc): $(grep -E 'test cases:' "$OUT/nccl_np2.log" | tail -1)")
  if timeout 45 "${mpi[@]}" build-gpu/apps/dfx train --device cuda --res 32 --depth 3 --width 8 \
       --batch 4 --samples 16 --steps 10 --eval-samples 0 --panels 0 --out "$OUT/train_mpi_gpu" \
       >"$OUT/train_mpi_gpu.log" 2>&1; then
    summary+=("dfx train --device cuda, 2 MPI ranks: $(grep -o 'on 2 ranks ([^)]*)' "$OUT/train_mpi_gpu.log"), $(grep -o 'loss [0-9.e+-]*' "$OUT/train_mpi_gpu.log" | tail -1)")
  else
    summary+=("dfx train --device cuda, 2 MPI ranks: FAILED: $(tail -3 "$OUT/train_mpi_gpu.log" | tr '\n' ' ')")
  fi
else
  summary+=("dfx_mpi: not built (no MPI at configure time)")
fi
if timeout 45 build-gpu/apps/dfx train --comm nccl --device cuda --res 32 --depth 3 --width 8 \
     --batch 4 --samples 16 --steps 10 --eval-samples 0 --panels 0 --out "$OUT/train_nccl" \
     >"$OUT/train_nccl.log" 2>&1; then
  summary+=("dfx train --comm nccl --device cuda (P = 1): $(grep -o 'loss [0-9.e+-]*' "$OUT/train_nccl.log" | tail -1)")
else
  summary+=("dfx train --comm nccl: FAILED: $(tail -3 "$OUT/train_nccl.log" | tr '\n' ' ')")
fi

# A short CPU-vs-GPU training run end to end (dfx train on the GPU, eval against the reference).
if timeout 120 build-gpu/apps/dfx train --device cuda --res 64 --batch 8 --steps 200 --lr 3e-3 \
     --eval-samples 16 --panels 0 --out "$OUT/train_gpu" >"$OUT/train_gpu.log" 2>&1; then
  summary+=("dfx train --device cuda (200 steps): $(grep 'held-out' "$OUT/train_gpu.log" | tail -1)")
else
  summary+=("dfx train --device cuda: FAILED: $(tail -3 "$OUT/train_gpu.log" | tr '\n' ' ')")
fi

# dfx rows in fp32 and with --tf32, convolutions autotuned (dfx's kernels against cuDNN; each
# decision logged to dfx_<N>_<mode>.err by DFX_CONV_LOG), next to torch's fp32 and --tf32 rows.
# dfx runs 5 steps after 2 warm-up steps (the first one autotunes) to stay inside the budget;
# the HVP is timed once per N = 256, in fp32.
for N in 256 1024; do
  hvp=""; [[ $N == 256 ]] && hvp="--hvp"
  modes=("" "--tf32")
  # NHWC activations and weights (cuDNN reads them in place), if the budget still allows.
  [[ $N == 1024 && $(( $(date +%s) - T0 )) -lt 330 ]] && modes+=("--tf32 --channels-last")
  for mode in "${modes[@]}"; do
    tag=${mode:-fp32}; tag=${tag//--/}; tag=${tag// /_}
    # Per-kernel CUDA-event timings (5 more steps, stderr) for the N = 1024 TF32 row.
    prof=""; [[ $N == 1024 && $mode == "--tf32" ]] && prof="--profile"
    if DFX_CONV_LOG=1 timeout 150 build-gpu/apps/dfx bench --res $N --batch 8 --device cuda \
         --conv-backend auto --steps 5 --warmup 2 --json $hvp $mode $prof \
         >"$OUT/dfx_${N}_$tag.json" 2>"$OUT/dfx_${N}_$tag.err"; then
      tuned=$(grep -c 'dfx conv autotune' "$OUT/dfx_${N}_$tag.err")
      native=$(grep -c -- '-> native \[' "$OUT/dfx_${N}_$tag.err")
      summary+=("dfx   W1 N=$N $tag (conv auto: $tuned decisions, $native of them dfx's kernel): $(tail -1 "$OUT/dfx_${N}_$tag.json" | head -c 700)")
      if [[ -n $prof ]]; then
        summary+=("dfx   W1 N=$N $tag per-kernel (top 10):")
        while IFS= read -r line; do summary+=("    $line"); done \
          < <(grep -A10 '^kernel ' "$OUT/dfx_${N}_$tag.err")
      fi
    else
      summary+=("dfx   W1 N=$N $tag: failed: $(grep -v 'dfx conv autotune' "$OUT/dfx_${N}_$tag.err" | tail -c 300)")
    fi
    hvp=""
  done
  hvp=""; [[ $N == 256 ]] && hvp="--hvp"
  tmodes=("" "--tf32" "--tf32 --compile")
  [[ $N == 1024 && $(( $(date +%s) - T0 )) -lt 400 ]] && tmodes+=("--tf32 --channels-last")
  for mode in "${tmodes[@]}"; do
    if timeout 150 $PY bench/torch_ref.py --res $N --batch 8 --device cuda --steps 10 --warmup 3 \
         --json $hvp $mode >"$OUT/torch_$N.json" 2>"$OUT/torch_$N.err"; then
      summary+=("torch W1 N=$N ${mode:-fp32}: $(tail -1 "$OUT/torch_$N.json")")
    else
      summary+=("torch W1 N=$N ${mode:-fp32}: failed: $(tail -c 200 "$OUT/torch_$N.err")")
    fi
  done
done

echo
echo "==== gpu_check summary ($(( $(date +%s) - T0 )) s) ===="
printf '%s\n' "${summary[@]}"
