// dist/threads.cpp — threads per rank from the affinity mask and the ranks sharing it; the wait
// policy's report (the policy itself is set by dist/omp_env.cpp, before OpenMP starts).
#include "dist/threads.h"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <thread>
#include <vector>

extern "C" void openblas_set_num_threads(int);
extern "C" int dfx_omp_env_state_get();  // dist/omp_env_link.cpp

namespace dfx::dist {
namespace {

// CPU ids beyond this are still counted in affinity_cores(), but not compared between ranks.
constexpr int kMaskWords = 64;  // 4096 CPUs

std::string plural(int n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// This process's affinity mask; grows the set past CPU_SETSIZE on machines with more CPUs.
std::vector<bool> affinity_mask() {
  for (int ncpu = CPU_SETSIZE; ncpu <= (1 << 20); ncpu *= 2) {
    cpu_set_t* set = CPU_ALLOC(ncpu);
    const size_t bytes = CPU_ALLOC_SIZE(ncpu);
    CPU_ZERO_S(bytes, set);
    if (sched_getaffinity(0, bytes, set) == 0) {
      std::vector<bool> mask(ncpu);
      for (int c = 0; c < ncpu; ++c) mask[c] = CPU_ISSET_S(c, bytes, set);
      CPU_FREE(set);
      return mask;
    }
    CPU_FREE(set);
    if (errno != EINVAL) break;
  }
  return {};
}

}  // namespace

ThreadChoice choose_threads(int64_t requested, int affinity_cores, int local_ranks,
                            const char* omp_env) {
  DFX_CHECK(affinity_cores >= 1 && local_ranks >= 1, "choose_threads: affinity_cores (",
            affinity_cores, ") and local_ranks (", local_ranks, ") must be >= 1");
  ThreadChoice c;
  c.affinity_cores = affinity_cores;
  c.local_ranks = local_ranks;
  const int64_t most = std::min<int64_t>(int64_t{kMaxThreadsPerCore} * affinity_cores, kMaxThreads);
  const auto range = [&] {
    return detail::cat("1..", most, " (at most ", kMaxThreadsPerCore, "x the ",
                       plural(affinity_cores, "core"),
                       " in this process's affinity mask, and at most ", kMaxThreads, ")");
  };
  DFX_CHECK(requested >= 0, "--threads ", requested,
            " is negative; expected 0 (one per core available to this rank) or ", range());
  if (requested > 0) {
    DFX_CHECK(requested <= most, "--threads ", requested, " is out of range: expected ", range());
    c.threads = static_cast<int>(requested);
    c.source = "--threads";
    return c;
  }
  if (omp_env != nullptr) {
    // OMP_NUM_THREADS is a list, one count per nesting level; dfx's regions are the first level.
    std::string first(omp_env);
    first = first.substr(0, first.find(','));
    const size_t b = first.find_first_not_of(" \t"), e = first.find_last_not_of(" \t");
    first = b == std::string::npos ? "" : first.substr(b, e - b + 1);
    if (!first.empty()) {
      char* end = nullptr;
      errno = 0;
      const long long v = std::strtoll(first.c_str(), &end, 10);
      DFX_CHECK(*end == '\0' && errno == 0 && v >= 1 && v <= most, "OMP_NUM_THREADS='", omp_env,
                "' is not a usable thread count: expected ", range());
      c.threads = static_cast<int>(v);
      c.source = "OMP_NUM_THREADS";
      return c;
    }
  }
  c.threads = std::max(1, affinity_cores / local_ranks);
  c.source = "affinity/ranks";
  return c;
}

int affinity_cores() {
  const std::vector<bool> mask = affinity_mask();
  const int n = static_cast<int>(std::count(mask.begin(), mask.end(), true));
  if (n > 0) return n;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

ThreadChoice configure_threads(Communicator& comm, int64_t requested) {
  int local_ranks = 1;
  if (comm.size() > 1) {
    // One row per rank: a hash of the host name (as node_rank), then the affinity mask's bits.
    // Two ranks share cores when they are on one host and their masks overlap: unbound ranks
    // (every mask the whole machine) divide the cores; ranks bound to their own cores do not.
    char name[HOST_NAME_MAX + 1] = {};
    DFX_CHECK(gethostname(name, sizeof name - 1) == 0, "configure_threads: gethostname failed");
    uint64_t h = 1469598103934665603ull;  // FNV-1a, 63 bits so it is a non-negative int64
    for (const char* p = name; *p; ++p) {
      h ^= static_cast<unsigned char>(*p);
      h *= 1099511628211ull;
    }
    std::vector<int64_t> row(1 + kMaskWords, 0);
    row[0] = static_cast<int64_t>(h >> 1);
    const std::vector<bool> mask = affinity_mask();
    for (int c = 0; c < std::min<int>(mask.size(), 64 * kMaskWords); ++c)
      if (mask[c]) row[1 + c / 64] |= int64_t{1} << (c % 64);
    Tensor all = comm.all_gather(from_vector<int64_t>(row, {1 + kMaskWords})).cpu().contiguous();
    const int64_t* a = all.data<int64_t>();
    local_ranks = 0;
    for (int k = 0; k < comm.size(); ++k) {
      const int64_t* other = a + k * (1 + kMaskWords);
      if (other[0] != row[0]) continue;
      bool overlap = false;
      for (int w = 0; w < kMaskWords && !overlap; ++w) overlap = (other[1 + w] & row[1 + w]) != 0;
      if (overlap || k == comm.rank()) ++local_ranks;
    }
  }
  const ThreadChoice c =
      choose_threads(requested, affinity_cores(), local_ranks, std::getenv("OMP_NUM_THREADS"));
  omp_set_num_threads(c.threads);
  openblas_set_num_threads(c.threads);
  return c;
}

std::string wait_policy() {
  if (dfx_omp_env_state_get() == 1)
    return "idle threads spin briefly, then sleep (GOMP_SPINCOUNT=10000, dfx's default)";
  const char* p = std::getenv("OMP_WAIT_POLICY");
  const char* s = std::getenv("GOMP_SPINCOUNT");
  std::string from;
  if (p) from += std::string("OMP_WAIT_POLICY=") + p;
  if (s) from += (from.empty() ? "" : ", ") + std::string("GOMP_SPINCOUNT=") + s;
  if (dfx_omp_env_state_get() == 0)
    return "idle threads wait as the environment says (" + from + ")";
  return "idle threads wait as the OpenMP runtime's default (dfx's policy was not applied)";
}

std::string describe(const ThreadChoice& c) {
  std::string s = plural(c.threads, "thread") + " (";
  const std::string cores = plural(c.affinity_cores, "core") + " in the affinity mask";
  const std::string ranks = plural(c.local_ranks, "rank") + " on this host";
  if (c.source == "affinity/ranks")
    s += cores + " / " + ranks;
  else
    s += c.source + "; " + cores + ", " + ranks;
  return s + "); " + wait_policy();
}

}  // namespace dfx::dist
