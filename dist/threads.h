// dist/threads.h — how many CPU threads each rank uses, and how its idle threads wait (issue 19).
// The default is the cores this rank may run on: the CPUs in its affinity mask (what mpiexec or
// Slurm binding leaves it) divided among the ranks of its host that share them, at least 1, so
// `mpiexec -n P dfx train` never puts P x cores threads on the cores. `--threads N` and
// OMP_NUM_THREADS win over the default. OpenMP and OpenBLAS get the same count. Idle OpenMP
// threads spin only briefly, then sleep (GOMP_SPINCOUNT=10000 unless the environment chose a
// policy; dist/omp_env.cpp says how it is set before the runtime starts).
#pragma once
#include <cstdint>
#include <string>

#include "dist/communicator.h"

namespace dfx::dist {

// The most threads a process may ask for: 4x the cores of its affinity mask, and never more than
// kMaxThreads (OpenMP itself crashes creating teams of 100000).
constexpr int kMaxThreads = 4096;
constexpr int kMaxThreadsPerCore = 4;

struct ThreadChoice {
  int threads = 1;         // per process, for OpenMP and OpenBLAS
  int affinity_cores = 1;  // CPUs in this process's affinity mask
  int local_ranks = 1;     // ranks on this host whose masks overlap this one's (itself included)
  std::string source;      // "--threads", "OMP_NUM_THREADS" or "affinity/ranks"
};

// The rules, pure: `requested` > 0 wins (--threads N); 0 defers to `omp_env` (the value of
// OMP_NUM_THREADS, or null; a list "4,2" counts its first entry), then to affinity_cores /
// local_ranks, at least 1. Throws dfx::Error naming the value and the allowed range for a
// negative request, for counts above min(kMaxThreadsPerCore x affinity_cores, kMaxThreads), and
// for an OMP_NUM_THREADS that is not a whole number.
ThreadChoice choose_threads(int64_t requested, int affinity_cores, int local_ranks,
                            const char* omp_env);

// The CPUs this process may run on (sched_getaffinity), at least 1.
int affinity_cores();

// choose_threads for this rank, with local_ranks found over `comm` (host names and affinity
// masks are all-gathered: ranks bound to disjoint cores do not divide them), then applied:
// omp_set_num_threads and openblas_set_num_threads. Collective: every rank of `comm` calls it.
ThreadChoice configure_threads(Communicator& comm, int64_t requested);

// "2 threads (2 cores in the affinity mask / 1 rank on this host); idle threads spin briefly,
// then sleep (GOMP_SPINCOUNT=10000, dfx's default)"
std::string describe(const ThreadChoice& choice);

// How idle OpenMP threads wait, and who chose it: dfx's default or the environment.
std::string wait_policy();

}  // namespace dfx::dist
