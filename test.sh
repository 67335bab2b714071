#!/usr/bin/env bash
# test.sh — installs what is missing, builds, and runs the whole test suite.
# Ends with the line "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")"
tools/setup.sh
tools/build.sh build
exec tools/run_tests.sh build
