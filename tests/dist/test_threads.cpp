// tests/dist/test_threads.cpp — threads per rank (dist/threads.h): the rules of choose_threads,
// what configure_threads applies on one process, and that idle OpenMP threads really sleep under
// dfx's default wait policy (set before libgomp starts, dist/omp_env.cpp). Several ranks sharing
// a host: tests/mpi/test_threads.cpp.
#include <doctest/doctest.h>
#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "dist/threads.h"

using namespace dfx;
using dist::choose_threads;

TEST_CASE("threads: the default is the affinity mask's cores over the ranks sharing them") {
  auto c = choose_threads(0, 8, 1, nullptr);
  CHECK(c.threads == 8);
  CHECK(c.source == "affinity/ranks");
  CHECK(choose_threads(0, 8, 2, nullptr).threads == 4);
  CHECK(choose_threads(0, 8, 3, nullptr).threads == 2);  // rounded down: never more than the cores
  CHECK(choose_threads(0, 2, 4, nullptr).threads == 1);  // more ranks than cores: at least 1
  CHECK(choose_threads(0, 1, 1, nullptr).threads == 1);
  CHECK(choose_threads(0, 8, 2, "").threads == 4);  // set but empty: as if unset
  c = choose_threads(0, 8, 2, nullptr);
  CHECK(c.affinity_cores == 8);
  CHECK(c.local_ranks == 2);
  CHECK(dist::describe(c).rfind("4 threads (8 cores in the affinity mask / 2 ranks on this host)",
                                0) == 0);
}

TEST_CASE("threads: --threads wins over OMP_NUM_THREADS, which wins over the default") {
  auto c = choose_threads(3, 8, 2, "5");
  CHECK(c.threads == 3);
  CHECK(c.source == "--threads");
  CHECK(dist::describe(c).rfind("3 threads (--threads; 8 cores in the affinity mask, 2 ranks", 0) ==
        0);
  c = choose_threads(0, 8, 2, "5");
  CHECK(c.threads == 5);
  CHECK(c.source == "OMP_NUM_THREADS");
  CHECK(choose_threads(0, 8, 2, " 6 ").threads == 6);
  CHECK(choose_threads(0, 8, 2, "6,2").threads == 6);  // one count per nesting level: the first
  CHECK(choose_threads(12, 4, 1, nullptr).threads == 12);  // oversubscribing on purpose is allowed
  CHECK(choose_threads(1, 64, 1, nullptr).threads == 1);
}

TEST_CASE("threads: absurd or malformed counts are errors naming the value and the range") {
  CHECK_THROWS_WITH_AS(choose_threads(100000, 2, 1, nullptr),
                       doctest::Contains("--threads 100000 is out of range: expected 1..8"), Error);
  CHECK_THROWS_WITH_AS(choose_threads(9, 2, 1, nullptr), doctest::Contains("1..8"), Error);
  CHECK(choose_threads(8, 2, 1, nullptr).threads == 8);  // 4x the cores: the last allowed
  // The absolute cap applies on big machines too.
  CHECK(choose_threads(4096, 2000, 1, nullptr).threads == 4096);
  CHECK_THROWS_WITH_AS(choose_threads(4097, 2000, 1, nullptr),
                       doctest::Contains("expected 1..4096"), Error);
  CHECK_THROWS_WITH_AS(choose_threads(-1, 2, 1, nullptr),
                       doctest::Contains("--threads -1 is negative"), Error);
  CHECK_THROWS_WITH_AS(choose_threads(0, 2, 1, "abc"),
                       doctest::Contains("OMP_NUM_THREADS='abc' is not a usable thread count"),
                       Error);
  CHECK_THROWS_WITH_AS(choose_threads(0, 2, 1, "100000"), doctest::Contains("1..8"), Error);
  CHECK_THROWS_AS(choose_threads(0, 2, 1, "0"), Error);
  CHECK_THROWS_AS(choose_threads(0, 2, 1, "2x"), Error);
  CHECK_THROWS_AS(choose_threads(0, 0, 1, nullptr), Error);
  CHECK_THROWS_AS(choose_threads(0, 2, 0, nullptr), Error);
  // --threads wins, so a broken OMP_NUM_THREADS does not matter then.
  CHECK(choose_threads(2, 2, 1, "abc").threads == 2);
}

TEST_CASE("threads: configure_threads on one process applies the choice to OpenMP") {
  const int saved = omp_get_max_threads();
  auto comm = dist::make_local();
  CHECK(dist::affinity_cores() >= 1);
  auto c = dist::configure_threads(*comm, 1);
  CHECK(c.threads == 1);
  CHECK(c.local_ranks == 1);
  CHECK(c.affinity_cores == dist::affinity_cores());
  CHECK(omp_get_max_threads() == 1);
  c = dist::configure_threads(*comm, 0);
  if (std::getenv("OMP_NUM_THREADS") == nullptr) CHECK(c.threads == dist::affinity_cores());
  CHECK(omp_get_max_threads() == c.threads);
  CHECK_THROWS_AS(dist::configure_threads(*comm, 100000), Error);
  omp_set_num_threads(saved);
}

// A thread that waits for its team spins under libgomp's default for about 300000 pause loops
// (~10 ms here) before it sleeps, and that CPU time shows in getrusage. dfx's default makes it
// sleep after a 10^4-loop spin (microseconds): while thread 0 sleeps 10 x 20 ms, the process
// burns next to no CPU (measured with passive waiting:
// 0.7 ms; 145 ms with GOMP_SPINCOUNT=300000, libgomp's default, when the test is made to run).
TEST_CASE("threads: idle OpenMP threads sleep under dfx's default wait policy") {
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  if (policy || (spin && std::string(spin) != "10000")) {
    MESSAGE("the environment chose another wait policy: ", dist::wait_policy());
    return;
  }
  // dfx sets it when the environment has not (dist/omp_env.cpp).
  REQUIRE(spin != nullptr);
  if (dist::wait_policy().find("dfx's default") == std::string::npos) MESSAGE(dist::wait_policy());
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  // A first round, untimed: the team's creation and what starts with the process (OpenBLAS's
  // threads spin a while after they start) take a one-off ~0.1 s of CPU.
  const auto round = [] {
    for (int i = 0; i < 10; ++i) {
#pragma omp parallel
      {
        if (omp_get_thread_num() == 0) usleep(20000);
      }
    }
  };
  round();
  rusage a{}, b{};
  getrusage(RUSAGE_SELF, &a);
  round();
  getrusage(RUSAGE_SELF, &b);
  omp_set_num_threads(saved);
  const auto sec = [](const timeval& t) { return t.tv_sec + 1e-6 * t.tv_usec; };
  const double cpu = sec(b.ru_utime) - sec(a.ru_utime) + sec(b.ru_stime) - sec(a.ru_stime);
  // Spinning would take about the whole 200 ms (measured: 207 ms); sleeping well under 1 ms.
  CHECK(cpu < 0.05);
}
