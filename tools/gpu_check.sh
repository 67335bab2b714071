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
