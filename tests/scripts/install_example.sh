#!/usr/bin/env bash
# tests/scripts/install_example.sh BUILD_DIR — installs dfx into a staging root, builds
# examples/gradient.cpp with exactly `pkg-config --cflags --libs dfx`, runs it, and checks the
# printed values (pinned: the random matrix comes from the counter-based RNG, so they never move;
# their correctness is what the unit suite's finite-difference checks establish).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=$1
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
meson install -C "$BUILD" --destdir "$stage" --quiet >/dev/null
pc=$(find "$stage" -name dfx.pc | head -1)
[[ -n "$pc" ]] || { echo "no dfx.pc installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR=$stage
g++ -std=c++20 examples/gradient.cpp $(pkg-config --cflags --libs dfx) -o "$stage/gradient"
libdir=$(dirname "$(find "$stage" -name 'libdfx.so' | head -1)")
out=$(LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$stage/gradient")
echo "$out"
# The headers must be the installed ones, not the source tree's.
deps=$(g++ -std=c++20 -M examples/gradient.cpp $(pkg-config --cflags dfx))
grep -q "$stage/.*dfx/dfx.h" <<<"$deps"
# Only the public headers are installed, and together they compile without the source tree.
inc=$(dirname "$(find "$stage" -path '*include/dfx/dfx.h' | head -1)")
for internal in core/strided_loop.h core/dispatch.h kernels/backend.h kernels/reduce_rows.h kernels/cpu; do
  [[ ! -e "$inc/$internal" ]] || { echo "internal header installed: $internal"; exit 1; }
done
all="$stage/all_headers.cpp"
(cd "$inc" && find . -name '*.h' ! -name 'mpi_communicator.h' ! -name 'nccl_communicator.h' \
   ! -name 'dfx_c.h' | sed 's|^\./|#include <dfx/|; s|$|>|') >"$all"
g++ -std=c++20 -fsyntax-only "$all" $(pkg-config --cflags dfx)
grep -qF 'f(x)      = 1.905255' <<<"$out"
grep -qF 'grad f(x) = [-0.486549, -0.405294, 0.838446]' <<<"$out"
grep -qF 'H e0      = [-0.225997, -0.098123, 0.326831]' <<<"$out"
