#!/usr/bin/env bash
# tests/scripts/cli_bad_input.sh BUILD_DIR — every kind of bad input gets a clear message naming
# the problem, a non-zero exit, and leaves no damaged files behind.
set -uo pipefail
cd "$(dirname "$0")/../.."
DFX="$1/apps/dfx"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# expect_fail "what" "pattern in stderr" command...
expect_fail() {
  local what=$1 pattern=$2; shift 2
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  if [[ $rc -eq 0 ]]; then echo "FAIL ($what): exit 0"; fails=$((fails + 1)); return; fi
  if ! grep -qiE "$pattern" <<<"$err"; then
    echo "FAIL ($what): message lacks /$pattern/: $err"; fails=$((fails + 1)); return
  fi
  echo "ok ($what): exit $rc: $(head -1 <<<"$err")"
}

tiny=(--res 16 --depth 2 --width 4 --batch 2 --samples 2 --threads 1 --eval-samples 0)
expect_fail "unknown flag" "unknown option 'bogus'" "$DFX" train --bogus 1
expect_fail "unknown command" "unknown command" "$DFX" frobnicate
expect_fail "unknown problem" "must be one of poisson2d" "$DFX" train --problem heat
expect_fail "unknown optimizer" "must be one of adam" "$DFX" train --optimizer rmsprop
expect_fail "bad number" "expects an integer" "$DFX" train --res abc
expect_fail "unknown conv backend" "conv-backend.*must be one of auto\|native\|cudnn" "$DFX" train --conv-backend fastest
expect_fail "unknown eval conv backend" "conv-backend.*must be one of auto\|native\|cudnn" "$DFX" eval --checkpoint x --conv-backend cuda
expect_fail "res not divisible" "not divisible by 2\^\(depth-1\) = 8" "$DFX" train --res 20 --depth 4 --out "$tmp/x"
expect_fail "absent CUDA device" "cuda:9: (no CUDA device|only [0-9]+ CUDA device|dfx was built without CUDA)" "$DFX" train "${tiny[@]}" --steps 1 --device cuda:9 --out "$tmp/x"
expect_fail "nccl without a GPU" "comm nccl needs --device cuda" "$DFX" train "${tiny[@]}" --steps 1 --comm nccl --out "$tmp/x"
expect_fail "unknown communicator" "must be one of auto" "$DFX" train "${tiny[@]}" --steps 1 --comm gloo --out "$tmp/x"
expect_fail "absurd thread count" "threads 100000 is out of range" "$DFX" train "${tiny[@]}" --steps 1 --threads 100000 --out "$tmp/x"
expect_fail "res too small" "res must be >= 4" "$DFX" train --res 2 --depth 1 --out "$tmp/x"
expect_fail "unwritable out" "cannot create output directory|not writable" "$DFX" train "${tiny[@]}" --steps 1 --out /proc/dfx-cannot-write
expect_fail "bad config json" "not valid JSON" bash -c "echo '{oops' > $tmp/bad.json; $DFX train --config $tmp/bad.json"
expect_fail "unknown config key" "unknown option 'colour'" bash -c "echo '{\"colour\": 1}' > $tmp/k.json; $DFX train --config $tmp/k.json"
expect_fail "missing npy" "cannot open|No such file|missing" "$DFX" solve --input "$tmp/nope.npy"
printf 'not a numpy file at all' >"$tmp/corrupt.npy"
expect_fail "corrupt npy" "magic|not a .npy|npy" "$DFX" solve --input "$tmp/corrupt.npy"
expect_fail "missing checkpoint" "cannot open|No such file|does not exist" "$DFX" eval --checkpoint "$tmp/none.safetensors"
head -c 100 /dev/urandom >"$tmp/corrupt.safetensors"
expect_fail "corrupt checkpoint" "safetensors|header|truncated|corrupt" "$DFX" eval --checkpoint "$tmp/corrupt.safetensors"

# A checkpoint of another architecture: train width 4, then resume with width 8.
"$DFX" train --problem poisson2d "${tiny[@]}" --steps 1 --out "$tmp/run" >/dev/null 2>&1
expect_fail "other architecture" "shape|mismatch|unexpected|missing" "$DFX" train --problem poisson2d "${tiny[@]}" --width 8 --steps 2 --resume "$tmp/run/checkpoints/last.safetensors" --out "$tmp/run2"

# NaN loss: stop, name the step, keep the last good checkpoint intact.
expect_fail "nan loss" "became (NaN|Inf) at step" "$DFX" train --problem poisson2d "${tiny[@]}" --lr 1e30 --steps 6 --checkpoint-every 1 --out "$tmp/run"
"$DFX" eval --checkpoint "$tmp/run/checkpoints/last.safetensors" --samples 1 >/dev/null 2>&1 || { echo "FAIL: last checkpoint damaged"; fails=$((fails + 1)); }
ls "$tmp/run" "$tmp/run/checkpoints" | grep -q '\.tmp' && { echo "FAIL: temporary files left"; fails=$((fails + 1)); }

echo "bad-input cases failed: $fails"
[[ $fails -eq 0 ]]
