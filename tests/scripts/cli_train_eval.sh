#!/usr/bin/env bash
# tests/scripts/cli_train_eval.sh BUILD_DIR — the command line end to end on a tiny W1: train
# writes its run directory (config, metrics, checkpoint, pictures); eval reproduces the held-out
# error from the checkpoint; a resumed run continues the metrics; solve writes the reference.
set -euo pipefail
cd "$(dirname "$0")/../.."
DFX="$1/apps/dfx"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

common=(--problem poisson2d --res 16 --depth 2 --width 4 --batch 4 --samples 8 --seed 3 --threads 1)
"$DFX" train "${common[@]}" --steps 4 --eval-samples 3 --panels 2 --checkpoint-every 2 --out "$tmp/run" >"$tmp/train.log"
cat "$tmp/train.log"
for f in config.json metrics.jsonl checkpoints/last.safetensors checkpoints/step_000002.safetensors \
         eval.json panels_0.png panels_1.png loss.png; do
  [[ -s "$tmp/run/$f" ]] || { echo "missing $f"; exit 1; }
done
[[ $(wc -l <"$tmp/run/metrics.jsonl") -eq 4 ]]
grep -q '"samples_per_s"' "$tmp/run/metrics.jsonl"
grep -q '"problem": "poisson2d"' "$tmp/run/config.json"
! ls "$tmp/run" "$tmp/run/checkpoints" | grep -q '\.tmp'

# eval reproduces the error train printed (same held-out fields, same weights).
train_err=$(grep -o 'mean [0-9.e+-]*' "$tmp/train.log" | head -1)
"$DFX" eval --checkpoint "$tmp/run/checkpoints/last.safetensors" --samples 3 --out "$tmp/eval" >"$tmp/eval.log"
cat "$tmp/eval.log"
eval_err=$(grep -o 'mean [0-9.e+-]*' "$tmp/eval.log" | head -1)
[[ "$train_err" == "$eval_err" ]] || { echo "eval $eval_err != train $train_err"; exit 1; }
for f in summary.json inputs.npy predictions.npy reference.npy; do [[ -s "$tmp/eval/$f" ]]; done

# eval at another resolution than the run's (the U-Net is fully convolutional).
"$DFX" eval --checkpoint "$tmp/run/checkpoints/last.safetensors" --samples 2 --res 32 >"$tmp/eval32.log"
grep -q "poisson2d N=32" "$tmp/eval32.log"

# A --grow-depth run: eval rebuilds the grown network (depth 3) from its checkpoint.
"$DFX" train "${common[@]}" --levels 8,16 --level-steps 1,1 --grow-depth --eval-samples 2 --panels 0 \
  --out "$tmp/grow" >"$tmp/grow.log"
grep -q "16 x 1 (depth 3)" "$tmp/grow.log"
grow_err=$(grep -o 'mean [0-9.e+-]*' "$tmp/grow.log" | head -1)
"$DFX" eval --checkpoint "$tmp/grow/checkpoints/last.safetensors" --samples 2 >"$tmp/grow_eval.log"
[[ "$grow_err" == "$(grep -o 'mean [0-9.e+-]*' "$tmp/grow_eval.log" | head -1)" ]] || {
  echo "grown eval differs from train: $grow_err"; cat "$tmp/grow_eval.log"; exit 1; }

# Resume from step 2 to 4: the last two losses equal the uninterrupted run's.
"$DFX" train "${common[@]}" --steps 4 --eval-samples 0 --resume "$tmp/run/checkpoints/step_000002.safetensors" --out "$tmp/resumed" >/dev/null
a=$(tail -2 "$tmp/run/metrics.jsonl" | grep -o '"loss":[^,]*')
b=$(tail -2 "$tmp/resumed/metrics.jsonl" | grep -o '"loss":[^,]*')
[[ "$a" == "$b" ]] || { echo "resumed losses differ: $a vs $b"; exit 1; }

# Resume with no other flag: batch, samples, seed, optimiser... all come from the checkpoint
# (the run used --batch 4, the default is 8), so the losses are the uninterrupted run's.
"$DFX" train --resume "$tmp/run/checkpoints/step_000002.safetensors" --threads 1 --eval-samples 0 --out "$tmp/bare" >"$tmp/bare.log"
grep -q "batch 4 on 1 rank" "$tmp/bare.log" || { cat "$tmp/bare.log"; echo "bare resume did not take --batch 4"; exit 1; }
c=$(tail -2 "$tmp/bare/metrics.jsonl" | grep -o '"loss":[^,]*')
[[ "$a" == "$c" ]] || { echo "bare resume losses differ: $a vs $c"; exit 1; }

# Resumed into its own directory: metrics.jsonl is cut back to the checkpoint's step first, so
# every step appears once and the continuation equals the original.
cp -r "$tmp/run" "$tmp/again"
"$DFX" train "${common[@]}" --steps 4 --eval-samples 0 --resume "$tmp/again/checkpoints/step_000002.safetensors" --out "$tmp/again" >/dev/null
steps=$(grep -o '"step":[0-9]*' "$tmp/again/metrics.jsonl" | tr '\n' ' ')
[[ "$steps" == '"step":1 "step":2 "step":3 "step":4 ' ]] || { echo "resumed metrics: $steps"; exit 1; }
[[ $(tail -2 "$tmp/again/metrics.jsonl" | grep -o '"loss":[^,]*') == "$a" ]]

# Old step checkpoints are pruned (--keep-checkpoints), and a dead writer's temporary file is removed.
mkdir -p "$tmp/keep/checkpoints"
echo partial >"$tmp/keep/checkpoints/last.safetensors.tmp.999999999"
"$DFX" train "${common[@]}" --steps 7 --eval-samples 0 --checkpoint-every 1 --keep-checkpoints 2 --out "$tmp/keep" >/dev/null
kept=$(cd "$tmp/keep/checkpoints" && ls | tr '\n' ' ')
[[ "$kept" == "last.safetensors model.safetensors step_000005.safetensors step_000006.safetensors " ]] || { echo "checkpoints kept: $kept"; exit 1; }

# solve: a sample's reference and the same field given as .npy agree.
"$DFX" solve --problem poisson2d --res 16 --sample 2 --seed 3 --out "$tmp/u.npy" >/dev/null
[[ -s "$tmp/u.npy" ]]
for opt in newton-cg adahessian lbfgs lamb gauss-newton kfac; do
  "$DFX" train "${common[@]}" --steps 2 --eval-samples 1 --optimizer "$opt" --out "$tmp/$opt" >/dev/null
  [[ $(grep -c '"loss"' "$tmp/$opt/metrics.jsonl") -eq 2 ]]
done
# Every shipped recipe in configs/ parses and trains a step, shrunk to N = 64 and one sample (its
# problem, network and direction kept; a multigrid schedule shrunk to two levels).
for cfg in configs/*.json; do
  shrink=(--res 64 --batch 1 --samples 1 --eval-samples 1 --panels 0 --checkpoint-every 0 --threads 1)
  if grep -q '"levels"' "$cfg"; then shrink+=(--levels 32,64 --level-steps 1,1 --level-lr 1); else shrink+=(--steps 1); fi
  "$DFX" train --config "$cfg" "${shrink[@]}" --out "$tmp/cfg_$(basename "$cfg" .json)" >"$tmp/cfg.log" 2>&1 \
    || { cat "$tmp/cfg.log"; echo "configs: $cfg does not run"; exit 1; }
done
# --amx-bf16: on a CPU with AMX (dfx info says which) the convolutions round their operands to
# bf16, so the second step's loss leaves float32's but stays within a few per cent; elsewhere
# the flag changes nothing. dfx bench reports whether the tiles ran.
"$DFX" train "${common[@]}" --steps 2 --eval-samples 0 --checkpoint-every 0 --out "$tmp/f32" >/dev/null
"$DFX" train "${common[@]}" --steps 2 --eval-samples 0 --checkpoint-every 0 --amx-bf16 --out "$tmp/amx" >/dev/null
"$DFX" info >"$tmp/info.txt"
if grep -q "has usable AMX" "$tmp/info.txt"; then has_amx=1; else has_amx=0; fi
python3 - "$tmp/f32/metrics.jsonl" "$tmp/amx/metrics.jsonl" "$has_amx" <<'PY'
import json, sys
f32, amx = ([json.loads(l)["loss"] for l in open(p)][-1] for p in sys.argv[1:3])
rel = abs(amx - f32) / abs(f32)
ok = 0 < rel < 0.05 if sys.argv[3] == "1" else rel == 0
print(f"--amx-bf16 (AMX {'present' if sys.argv[3] == '1' else 'absent'}): loss {amx} vs float32 {f32}, rel {rel:.2e}")
sys.exit(0 if ok else 1)
PY
"$DFX" bench --res 16 --depth 2 --width 4 --batch 2 --steps 1 --warmup 0 --threads 1 --amx-bf16 --json >"$tmp/bench.json"
grep -q "\"amx_bf16\":$([[ $has_amx == 1 ]] && echo true || echo false)" "$tmp/bench.json" \
  || { cat "$tmp/bench.json"; echo "dfx bench --amx-bf16 misreports the tiles"; exit 1; }
# (grep -q on a pipe would close it early: dfx then dies of SIGPIPE and pipefail fails the test)
"$DFX" train --help >"$tmp/help.txt"
grep -q -- '--checkpoint-every' "$tmp/help.txt"
grep -q -- '--activation-checkpoint' "$tmp/help.txt"
echo "cli train/eval/resume/solve: ok"
