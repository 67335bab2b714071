// tests/mpi/test_threads.cpp — configure_threads on P ranks of one host: unbound ranks (every
// mask the whole machine, as mpiexec starts them by default) divide the cores among them; ranks
// bound to disjoint cores keep their own. The rules themselves are in tests/dist/test_threads.cpp.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>

#include "dist/threads.h"
#include "mpi_world.h"

using namespace dfx;
using dfx::testing::all_ranks;
using dfx::testing::world;

TEST_SUITE("mpi") {
TEST_CASE("threads: the ranks of a host divide the cores their affinity masks share") {
  const int saved = omp_get_max_threads();
  const dist::NodeRank node = dist::node_rank(world());
  const dist::ThreadChoice c = dist::configure_threads(world(), 0);
  // Every rank of this job shares one host; a rank counts those whose masks overlap its own.
  CHECK(all_ranks(c.local_ranks >= 1 && c.local_ranks <= node.local_size));
  CHECK(all_ranks(c.affinity_cores == dist::affinity_cores()));
  if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    CHECK(all_ranks(c.threads == std::max(1, c.affinity_cores / c.local_ranks)));
    CHECK(all_ranks(c.source == "affinity/ranks"));
  }
  CHECK(all_ranks(omp_get_max_threads() == c.threads));
  CHECK(all_ranks(dist::configure_threads(world(), 1).threads == 1));
  omp_set_num_threads(saved);
}
}
