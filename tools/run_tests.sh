#!/usr/bin/env bash
# tools/run_tests.sh [BUILD_DIR] — runs every suite (unit, GPU, install/pkg-config example, and
# MPI suites when built) and ends with one line "N passed, N failed, N skipped" counting test
# cases across all of them. Exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
passed=0 failed=0 skipped=0

# Adds the counts from a doctest run's summary line; a crash without a summary counts as a failure.
count_doctest() {
  local name=$1 out=$2 rc=$3
  local line
  line=$(grep -E '^\[doctest\] test cases:' "$out" | tail -1)
  if [[ -z "$line" ]]; then
    echo "tests: $name produced no doctest summary (exit $rc)"
    failed=$((failed + 1))
    return
  fi
  local p f s
  p=$(sed -E 's/.*\| *([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/.*\| *([0-9]+) failed.*/\1/' <<<"$line")
  s=$(sed -E 's/.*\| *([0-9]+) skipped.*/\1/' <<<"$line")
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  if [[ $rc -ne 0 && $f -eq 0 ]]; then failed=$((failed + 1)); fi
  echo "tests: $name: $p passed, $f failed, $s skipped"
}

run_doctest() {
  local name=$1; shift
  local out; out=$(mktemp)
  "$@" >"$out" 2>&1
  local rc=$?
  if grep -q '^DFX_GPU_SKIPPED' "$out"; then
    local n; n=$(grep '^DFX_GPU_SKIPPED' "$out" | awk '{print $2}')
    grep -v '^DFX_GPU_SKIPPED' "$out"
    skipped=$((skipped + n))
    echo "tests: $name: $n skipped (no GPU)"
  else
    if grep -qE 'ERROR|FAILED' "$out"; then grep -vE '^\[doctest\] (doctest|run with)' "$out" | tail -80; fi
    count_doctest "$name" "$out" "$rc"
  fi
  rm -f "$out"
}

run_script() {
  local name=$1; shift
  local out; out=$(mktemp)
  if "$@" >"$out" 2>&1; then
    passed=$((passed + 1))
    echo "tests: $name: passed"
  else
    tail -40 "$out"
    failed=$((failed + 1))
    echo "tests: $name: FAILED"
  fi
  rm -f "$out"
}

run_doctest unit "$BUILD/tests/dfx_unit"
run_doctest gpu "$BUILD/tests/dfx_gpu"
for np in 1 2 3 4; do
  if [[ -x "$BUILD/tests/mpi/dfx_mpi" ]]; then
    run_doctest "mpi np=$np" mpiexec -n "$np" "$BUILD/tests/mpi/dfx_mpi"
  fi
done
for t in tests/scripts/*.sh; do
  [[ -e "$t" ]] || continue
  run_script "$(basename "$t" .sh)" bash "$t" "$BUILD"
done

echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
