// dist/omp_env.cpp — libdfx_omp_env.so: dfx's default OpenMP wait policy, set in the environment
// before the OpenMP runtime reads it. libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, in its
// own constructor, and has no call to change them afterwards; its default spins each waiting
// thread for 300000 pause loops (about 10 ms here) before sleeping, which burns cores the process
// does not own and collapses a step when threads outnumber free cores (issue 19).
//
// Why a library of its own: a constructor in libdfx.so itself runs after libgomp's (a library's
// dependencies are initialised first), so its setenv would come too late. This object depends on
// nothing but libc, and libdfx.so needs it, so the dynamic loader maps it after libgomp (which
// every OpenMP program's executable and libdfx.so need directly) and, having no dependency in
// common, initialises it before libgomp: glibc initialises what it loaded later first. Not
// -z initfirst: that would run before libc's own start-up, which resets the environment pointer
// and drops the variable. dist/threads.cpp reads dfx_omp_env_state; tests/dist/test_threads.cpp
// checks that waiting threads really do not spin. A program that loads dfx after OpenMP has
// started (dlopen) keeps its runtime's policy; setting OMP_WAIT_POLICY in its environment works.
#include <cstdlib>

extern "C" {
// -1: the constructor has not run; 0: the environment chose already (OMP_WAIT_POLICY or
// GOMP_SPINCOUNT was set) and dfx left it alone; 1: dfx set GOMP_SPINCOUNT=10000.
__attribute__((visibility("default"))) int dfx_omp_env_state = -1;
}

namespace {

__attribute__((constructor)) void dfx_set_omp_wait_policy() {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) {
    dfx_omp_env_state = 0;
    return;
  }
  // A bounded spin: a waiting thread spins 10^4 pause loops (microseconds), then sleeps on a
  // futex. Alone it costs nothing against libgomp's 300000 (passive, sleeping at once, cost ~35 %
  // of a W1 step: every short parallel region then pays a wake-up); beside busy processes it
  // does not collapse. Measured in BENCHMARKS.md ("Threads per rank and OpenMP waiting").
  setenv("GOMP_SPINCOUNT", "10000", 0);
  dfx_omp_env_state = 1;
}

}  // namespace
