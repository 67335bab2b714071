// tests/dist/test_communicator.cpp — the single-process side of dist: the Local backend's
// collectives, node_rank, and what asking for NCCL says where it cannot work (no NCCL in the
// build, or no such device). The collectives on several ranks are in tests/mpi, the NCCL ones on
// a GPU in tests/gpu/test_nccl.cpp.
#include <doctest/doctest.h>

#include <string>

#include "core/cuda_runtime.h"
#include "dist/communicator.h"
#include "dist/nccl_communicator.h"

using namespace dfx;

TEST_CASE("dist: the Local communicator is the identity") {
  auto c = dist::make_local();
  CHECK(c->rank() == 0);
  CHECK(c->size() == 1);
  CHECK(c->backend() == "local");
  Tensor t = from_vector<double>({1.5, -2.0}, {2});
  c->all_reduce(t);
  c->all_reduce_async(t)->wait();
  c->broadcast(t, 0);
  CHECK(t.to_vector() == std::vector<double>{1.5, -2.0});
  Tensor g = c->all_gather(t);
  CHECK(g.shape() == Shape{1, 2});
  CHECK(g.to_vector() == std::vector<double>{1.5, -2.0});
  CHECK_THROWS_WITH_AS(c->broadcast(t, 1), doctest::Contains("root 1 out of range"), Error);
  const dist::NodeRank n = dist::node_rank(*c);
  CHECK(n.local_rank == 0);
  CHECK(n.local_size == 1);
}

TEST_CASE("dist: asking for NCCL where it cannot work is a clear error") {
  if (!dist::nccl_available()) {
    CHECK_THROWS_WITH_AS(dist::make_nccl(dist::make_local(), 0),
                         doctest::Contains("built without NCCL"), Error);
  } else {
    // Built with NCCL: a device index that exists nowhere names itself and the devices seen.
    const int n = cuda::device_count();
    const std::string want = "cuda:" + std::to_string(n) + " does not exist";
    CHECK_THROWS_WITH_AS(dist::make_nccl(dist::make_local(), n), doctest::Contains(want.c_str()),
                         Error);
  }
  CHECK_THROWS_WITH_AS(dist::nccl_stream(*dist::make_local()), doctest::Contains("'local'"), Error);
}
