// tests/mpi/main_mpi.cpp — doctest runner for suites run under `mpiexec -n P`. Only rank 0
// prints; the exit status is non-zero on every rank if any rank failed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "core/cuda_runtime.h"
#include "mpi_world.h"

namespace dfx::testing {
namespace {
std::shared_ptr<dist::Communicator>& holder() {
  static std::shared_ptr<dist::Communicator> comm;
  return comm;
}
}  // namespace

dist::Communicator& world() { return *holder(); }
std::shared_ptr<dist::Communicator> world_ptr() { return holder(); }

bool all_ranks(bool ok) {
  Tensor t = from_vector<int64_t>({ok ? 0 : 1}, {1});
  world().all_reduce(t, dist::ReduceOp::Max);
  return t.get({0}) == 0;
}

}  // namespace dfx::testing

int main(int argc, char** argv) {
  using namespace dfx;
  testing::holder() = dist::make_mpi();
  doctest::Context ctx;
  ctx.applyCommandLine(argc, argv);
  if (testing::world().rank() != 0) ctx.setOption("out", "/dev/null");
  // The device suite needs a GPU: without one its cases are filtered out, which doctest's summary
  // counts as skipped (not passed). Every rank decides alike: they share the machine.
  if (cuda::device_count() == 0) {
    ctx.addFilter("test-suite-exclude", "mpi-gpu");
    if (testing::world().rank() == 0)
      std::printf("dfx_mpi: no CUDA device; the mpi-gpu suite is skipped\n");
  }
  int rc = ctx.run();
  bool ok = testing::all_ranks(rc == 0);
  testing::holder().reset();
  return ok ? 0 : 1;
}
