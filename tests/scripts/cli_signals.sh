#!/usr/bin/env bash
# tests/scripts/cli_signals.sh BUILD_DIR — Ctrl-C keeps the run: SIGINT (or SIGTERM) during
# `dfx train` finishes the step, writes an atomic checkpoint, prints it and the resume command,
# and exits 130 (143); that checkpoint resumes to the end with the uninterrupted run's losses; a
# second signal exits at once; under mpiexec -n 2 every rank stops at the same step.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=$1
DFX="$BUILD/apps/dfx"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

run=(--problem poisson2d --res 64 --depth 3 --width 8 --batch 4 --samples 16 --seed 5 --steps 60
     --threads 1 --eval-samples 0 --log-every 1)

# Starts `dfx train ... --out DIR` in the background ($launcher may be "mpiexec -n 2"), waits
# until metrics.jsonl has `after` steps, sends `sig` (to mpiexec, which forwards it to the ranks),
# and sets rc to the exit status.
interrupt() {
  local dir=$1 sig=$2 after=$3; shift 3
  if [[ -z "$launcher" ]]; then
    "$DFX" train "${run[@]}" "$@" --out "$dir" >"$dir.out" 2>"$dir.err" &
  else
    # Each rank records its own exit status: mpiexec's (MPICH hydra) after a forwarded Ctrl-C is
    # sometimes 0 however the ranks exit.
    $launcher bash -c '"$@"; r=$?; echo $r >"'"$dir"'.rc.$PMI_RANK"; exit $r' - \
      "$DFX" train "${run[@]}" "$@" --out "$dir" >"$dir.out" 2>"$dir.err" &
  fi
  local pid=$!
  for _ in $(seq 600); do
    [[ -f "$dir/metrics.jsonl" && $(wc -l <"$dir/metrics.jsonl") -ge $after ]] && break
    sleep 0.05
  done
  kill -"$sig" "$pid"
  wait "$pid"; rc=$?
  if [[ -n "$launcher" ]]; then
    [[ $(cat "$dir".rc.* | sort -u) == "$(cat "$dir".rc.0)" && $(ls "$dir".rc.* | wc -l) -eq 2 ]] ||
      fail "ranks exited differently: $(cat "$dir".rc.*)"
    rc=$(cat "$dir.rc.0")
  fi
}

# The step of a checkpoint, from its safetensors metadata.
ckpt_step() {
  python3 - "$1" <<'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    print(json.loads(f.read(n))["__metadata__"]["step"])
PY
}

check_interrupted() {  # DIR SIGNAME RC
  local dir=$1 name=$2 want=$3
  [[ $rc -eq $want ]] || { cat "$dir.err"; fail "$name: exit $rc, expected $want"; }
  grep -q "$name: stopped after step [0-9]* of 60" "$dir.err" || { cat "$dir.err"; fail "$name: no stop message"; }
  grep -q "^checkpoint: $dir/checkpoints/last.safetensors" "$dir.err" || fail "$name: checkpoint not named"
  grep -q "^resume with: .*dfx train --resume $dir/checkpoints/last.safetensors --out $dir" "$dir.err" ||
    fail "$name: no resume command"
  local stopped last
  stopped=$(grep -o 'stopped after step [0-9]*' "$dir.err" | grep -o '[0-9]*$')
  last=$(tail -1 "$dir/metrics.jsonl" | grep -o '"step":[0-9]*' | grep -o '[0-9]*$')
  [[ $stopped -lt 60 && $stopped -eq $last ]] || fail "$name: stopped at $stopped, metrics end at $last"
  [[ $(ckpt_step "$dir/checkpoints/last.safetensors") -eq $stopped ]] || fail "$name: checkpoint step differs"
  ! ls "$dir" "$dir/checkpoints" | grep -q '\.tmp' || fail "$name: temporary files left"
  [[ ! -e "$dir/.lock" ]] || fail "$name: lock file left"
  echo "$name: exit $rc after step $stopped, checkpoint at step $stopped"
}

# The uninterrupted run, for the losses.
launcher=""
"$DFX" train "${run[@]}" --out "$tmp/full" >/dev/null || fail "uninterrupted run"
want=$(tail -1 "$tmp/full/metrics.jsonl" | grep -o '"loss":[^,]*')

# SIGINT, then the printed resume command (threads are free to change) runs to the end and
# ends on the uninterrupted run's loss, each step once in metrics.jsonl.
interrupt "$tmp/int" INT 3
check_interrupted "$tmp/int" SIGINT 130
cmd=$(grep '^resume with: ' "$tmp/int.err" | sed 's/^resume with: //; s#^dfx #'"$DFX"' #')
$cmd --threads 1 >"$tmp/resume.out" || fail "resume command failed: $cmd"
grep -q "step 60/60" "$tmp/resume.out" || fail "resume did not reach step 60"
[[ $(tail -1 "$tmp/int/metrics.jsonl" | grep -o '"loss":[^,]*') == "$want" ]] || fail "resumed loss differs from the uninterrupted run's"
[[ $(grep -o '"step":[0-9]*' "$tmp/int/metrics.jsonl" | sort -u | wc -l) -eq 60 &&
   $(grep -c '"step"' "$tmp/int/metrics.jsonl") -eq 60 ]] || fail "metrics.jsonl does not hold steps 1..60 once each"
echo "resumed to step 60 with the uninterrupted run's loss"

# SIGTERM: the same, exit 143.
interrupt "$tmp/term" TERM 2
check_interrupted "$tmp/term" SIGTERM 143

# Two signals: the second ends the process at once (a slow step, so it lands mid-step).
"$DFX" train "${run[@]/64/512}" --out "$tmp/twice" >/dev/null 2>"$tmp/twice.err" &
pid=$!
for _ in $(seq 600); do [[ -s "$tmp/twice/config.json" ]] && break; sleep 0.05; done
sleep 0.3
kill -INT $pid; sleep 0.02; kill -INT $pid
wait $pid; rc=$?
[[ $rc -eq 130 ]] || fail "second SIGINT: exit $rc"
grep -q "second signal, exiting at once" "$tmp/twice.err" || { cat "$tmp/twice.err"; fail "second SIGINT: no message"; }
echo "a second SIGINT exited at once (exit $rc)"

# Under MPI: mpiexec forwards the signal to both ranks, which agree on one step to stop at.
if command -v mpiexec >/dev/null && [[ -x "$BUILD/tests/mpi/dfx_mpi" ]]; then
  launcher="mpiexec -n 2"
  interrupt "$tmp/mpi" INT 3
  check_interrupted "$tmp/mpi" SIGINT 130
  grep -q "^resume with: mpiexec -n 2 dfx train" "$tmp/mpi.err" || fail "MPI resume command lacks mpiexec"
  [[ $(grep -c "stopped after step" "$tmp/mpi.err") -eq 1 ]] || fail "MPI: more than one rank reported"
  mpiexec -n 2 "$DFX" train --resume "$tmp/mpi/checkpoints/last.safetensors" --out "$tmp/mpi" --threads 1 >/dev/null ||
    fail "MPI resume failed"
  [[ $(tail -1 "$tmp/mpi/metrics.jsonl" | grep -o '"step":[0-9]*') == '"step":60' ]] || fail "MPI resume did not finish"
  echo "mpiexec -n 2: stopped together and resumed to the end"
fi
echo "signals: ok"
