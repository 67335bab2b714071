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
  if ! grep -qiE -- "$pattern" <<<"$err"; then
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
expect_fail "no V-cycles" "output-vcycles must be >= 1, got 0" "$DFX" train "${tiny[@]}" --steps 1 --output-precondition --output-vcycles 0 --out "$tmp/x"
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
expect_fail "other architecture" "--width 8, but the checkpoint's run has 4" "$DFX" train --problem poisson2d "${tiny[@]}" --width 8 --steps 2 --resume "$tmp/run/checkpoints/last.safetensors" --out "$tmp/run2"

# Resume refuses a flag that contradicts the checkpoint's run (naming both values), and a file
# without the optimiser's state; a run's own config.json is accepted by --config.
expect_fail "resume with another batch" "--batch 4, but the checkpoint's run has 2" "$DFX" train --batch 4 --resume "$tmp/run/checkpoints/last.safetensors" --steps 3 --threads 1 --out "$tmp/run3"
expect_fail "resume with another optimiser" "--optimizer sgd, but the checkpoint's run has adam" "$DFX" train --optimizer sgd --resume "$tmp/run/checkpoints/last.safetensors" --steps 3 --threads 1 --out "$tmp/run3"
expect_fail "resume with another lr" "--lr 0.5, but the checkpoint's run has 0.001" "$DFX" train --lr 0.5 --resume "$tmp/run/checkpoints/last.safetensors" --steps 3 --threads 1 --out "$tmp/run3"
python3 - "$tmp/run/checkpoints/last.safetensors" "$tmp/noopt.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n]); body = raw[8 + n:]
keep = {k: v for k, v in head.items() if not k.startswith("optim.")}
out, parts, off = {}, [], 0
for k, v in sorted(((k, v) for k, v in keep.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0]):
    a, b = v["data_offsets"]; parts.append(body[a:b]); out[k] = dict(v, data_offsets=[off, off + b - a]); off += b - a
out["__metadata__"] = head["__metadata__"]
h = json.dumps(out).encode(); h += b" " * (-len(h) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(parts))
PY
expect_fail "resume without optimiser state" "holds no optimiser state" "$DFX" train --resume "$tmp/noopt.safetensors" --steps 3 --threads 1 --out "$tmp/run3"
"$DFX" train --config "$tmp/run/config.json" --steps 2 --out "$tmp/fromconfig" >/dev/null 2>"$tmp/fromconfig.err" ||
  { echo "FAIL (a run's own config.json): $(cat "$tmp/fromconfig.err")"; fails=$((fails + 1)); }
[[ ! -e "$tmp/run3" ]] || { echo "FAIL: a refused resume left $tmp/run3"; fails=$((fails + 1)); }

# Values out of range name the flag and what is expected; internal messages do not leak.
expect_fail "negative steps" "--steps must be >= 1 \(or 0" "$DFX" train "${tiny[@]}" --steps -5 --out "$tmp/v"
expect_fail "infinite lr" "--lr .*expects a finite number, got 'inf'" "$DFX" train "${tiny[@]}" --lr inf --out "$tmp/v"
expect_fail "zero lr" "--lr must be a finite rate > 0" "$DFX" train "${tiny[@]}" --lr 0 --out "$tmp/v"
expect_fail "negative gamma" "--gamma must be a finite factor > 0" "$DFX" train "${tiny[@]}" --gamma -2 --out "$tmp/v"
expect_fail "negative checkpoint-every" "--checkpoint-every must be >= 0" "$DFX" train "${tiny[@]}" --checkpoint-every -1 --out "$tmp/v"
expect_fail "negative max-time" "--max-time must be >= 0 seconds" "$DFX" train "${tiny[@]}" --max-time -1 --out "$tmp/v"
expect_fail "negative panels" "--panels must be >= 0" "$DFX" train "${tiny[@]}" --panels -2 --out "$tmp/v"
expect_fail "flag without its value" "--steps needs a value .*next argument is the option --res" "$DFX" train --steps --res 32 --out "$tmp/v"
[[ ! -e "$tmp/v" ]] || { echo "FAIL: failed validation left an --out directory"; fails=$((fails + 1)); }
echo '[1, 2]' >"$tmp/array.json"
expect_fail "config holding an array" "must hold a JSON object .*got an array" "$DFX" train --config "$tmp/array.json"
expect_fail "eval of too many samples" "--samples 10000000000 at N=16 needs about .* available" "$DFX" eval --checkpoint "$tmp/run/checkpoints/last.safetensors" --samples 10000000000
expect_fail "negative solve sample" "--sample must be >= 0" "$DFX" solve --sample -5
expect_fail "central inviscid preconditioned" "--advection upwind for the inviscid case" "$DFX" train --problem burgers --res 16 --visc 0 --advection central --output-precondition --steps 1 --out "$tmp/cinv"
# Valid .npy files of the wrong shapes, written with the standard library only (no numpy needed).
python3 - "$tmp/rect.npy" "$tmp/empty.npy" <<'PY'
import struct, sys
def save_zeros(path, shape):
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': %r, }" % (shape,)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        f.write(bytes(8 * shape[0] * shape[1]))
save_zeros(sys.argv[1], (4, 6))
save_zeros(sys.argv[2], (0, 0))
PY
expect_fail "non-square solve input" "expected a square field" "$DFX" solve --input "$tmp/rect.npy"
expect_fail "empty solve input" "expected at least 4 nodes per side" "$DFX" solve --input "$tmp/empty.npy"
python3 - "$tmp/run/checkpoints/last.safetensors" "$tmp/badstep.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n]); head["__metadata__"]["step"] = "x7"
h = json.dumps(head).encode(); h += b" " * (-len(h) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + raw[8 + n:])
PY
expect_fail "corrupt step in a checkpoint" "corrupt metadata: step 'x7' is not a step number" "$DFX" eval --checkpoint "$tmp/badstep.safetensors" --samples 1

# A run that cannot fit in memory stops at once, naming the estimate, what is free and the flags
# that lower it, before creating its --out.
expect_fail "run too large for memory" "needs about .* GiB of memory per rank .* is free.*--batch.*--bn-recompute.*--activation-checkpoint" timeout 20 "$DFX" train --res 4096 --threads 1 --out "$tmp/huge"
[[ ! -e "$tmp/huge" ]] || { echo "FAIL: the refused run left $tmp/huge"; fails=$((fails + 1)); }

# A second run into an --out in use is refused naming the first; a dead run's lock is taken over.
"$DFX" train "${tiny[@]}" --res 64 --steps 100000 --out "$tmp/busy" >/dev/null 2>&1 &
busy=$!
for _ in $(seq 200); do [[ -s "$tmp/busy/.lock" ]] && break; sleep 0.05; done
expect_fail "second run into one --out" "is in use by another run \(pid $busy" "$DFX" train "${tiny[@]}" --steps 1 --out "$tmp/busy"
kill -9 $busy; wait $busy 2>/dev/null
"$DFX" train "${tiny[@]}" --steps 1 --out "$tmp/busy" >/dev/null 2>&1 || { echo "FAIL: a dead run's lock was not taken over"; fails=$((fails + 1)); }
[[ ! -e "$tmp/busy/.lock" ]] || { echo "FAIL: the lock file outlived its run"; fails=$((fails + 1)); }

# NaN loss: stop, name the step, keep the last good checkpoint intact.
expect_fail "nan loss" "became (NaN|Inf) at step" "$DFX" train --problem poisson2d "${tiny[@]}" --lr 1e30 --steps 6 --checkpoint-every 1 --out "$tmp/run"
# (its weights may be finite but useless; what matters is that the file is whole)
if ! "$DFX" eval --checkpoint "$tmp/run/checkpoints/last.safetensors" --samples 1 >/dev/null 2>"$tmp/last.err" &&
   ! grep -q "non-finite predictions" "$tmp/last.err"; then echo "FAIL: last checkpoint damaged: $(cat "$tmp/last.err")"; fails=$((fails + 1)); fi
ls "$tmp/run" "$tmp/run/checkpoints" | grep -q '\.tmp' && { echo "FAIL: temporary files left"; fails=$((fails + 1)); }
# The checkpoint named "last good" holds finite weights, and eval of a NaN checkpoint fails.
good=$("$DFX" train --problem poisson2d "${tiny[@]}" --lr 1e30 --steps 6 --checkpoint-every 1 --out "$tmp/nan" 2>&1 >/dev/null | grep -o 'Last good checkpoint: .*' | sed 's/^Last good checkpoint: //')
if [[ "$good" != none* ]]; then
  "$DFX" eval --checkpoint "$good" --samples 1 >/dev/null 2>&1 || { echo "FAIL: the 'last good' checkpoint $good does not evaluate"; fails=$((fails + 1)); }
fi
python3 - "$tmp/run/checkpoints/last.safetensors" "$tmp/nanw.safetensors" <<'PY'
import json, struct, sys
raw = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
for k, v in head.items():
    if k.endswith("weight") and not k.startswith("optim.") and v.get("dtype") == "F32":
        a, b = v["data_offsets"]; raw[8 + n + a:8 + n + b] = struct.pack("<f", float("nan")) * ((b - a) // 4)
open(sys.argv[2], "wb").write(raw)
PY
expect_fail "eval of a NaN checkpoint" "non-finite predictions" "$DFX" eval --checkpoint "$tmp/nanw.safetensors" --samples 1

echo "bad-input cases failed: $fails"
[[ $fails -eq 0 ]]
