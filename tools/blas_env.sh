# tools/blas_env.sh — sourced by run.sh and the benchmark scripts (not by tests or CI).
# Debian's OpenBLAS 0.3.21 does not recognise recent Intel CPUs (e.g. Sapphire Rapids) and falls
# back to its generic Prescott (SSE3) kernels, 3-4x slower than its AVX-512 ones. When the user
# has not chosen a core type, pick the one the CPU supports. The unit suite passes with each.
if [[ -z "${OPENBLAS_CORETYPE:-}" && -r /proc/cpuinfo ]]; then
  _flags=$(grep -m1 '^flags' /proc/cpuinfo)
  if [[ $_flags == *avx512f* && $_flags == *avx512bw* && $_flags == *avx512dq* && $_flags == *avx512vl* ]]; then
    export OPENBLAS_CORETYPE=SkylakeX
  elif [[ $_flags == *avx2* && $_flags == *fma* ]]; then
    export OPENBLAS_CORETYPE=Haswell
  fi
  unset _flags
fi
