// tests/mpi/test_gpu_collectives.cpp — distribution on device tensors under mpiexec: the MPI
// backend on GPU buffers (staged through host memory), with ranks that may share one GPU, and
// the NCCL backend bootstrapped over MPI. The suite "mpi-gpu" is excluded (counted as skipped)
// when no CUDA device is visible (tests/mpi/main_mpi.cpp). On a machine with one GPU, NCCL must
// refuse several ranks cleanly on every rank (never hang); with a distinct NCCL_HOSTID per rank
// (tools/gpu_check.sh) NCCL takes them for separate hosts and the full checks run.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "autodiff/ops.h"
#include "core/copy.h"
#include "core/cuda_runtime.h"
#include "core/rng.h"
#include "dist/data_parallel.h"
#include "dist/nccl_communicator.h"
#include "kernels/elementwise.h"
#include "mpi_world.h"
#include "tests/mlp_fixture.h"

using namespace dfx;
using dfx::testing::all_ranks;
using dfx::testing::max_rel;
using dfx::testing::Mlp;
using dfx::testing::mlp_inputs;
using dfx::testing::world;
namespace A = dfx::ad;

namespace {

// This rank's GPU: ranks of one host take their GPUs round robin.
Device my_gpu() {
  return Device::cuda(dist::node_rank(world()).local_rank % cuda::device_count());
}

// Every collective of `c` on tensors of device `d`, checked on every rank.
void check_collectives(dist::Communicator& c, Device d) {
  const int r = c.rank(), P = c.size();
  Tensor t = from_vector<double>({1.0 + r, 2.0 * r}, {2}).to(d);
  c.all_reduce(t);
  CHECK(t.device() == d);
  CHECK(all_ranks(t.cpu().to_vector() == std::vector<double>{P + P * (P - 1) / 2.0, double(P * (P - 1))}));
  Tensor m = from_vector<int64_t>({r, -r}, {2}).to(d);
  c.all_reduce(m, dist::ReduceOp::Max);
  CHECK(all_ranks(m.cpu().to_vector() == std::vector<double>{double(P - 1), 0.0}));
  Tensor a = full({1000}, static_cast<double>(r + 1), DType::Float32, d);
  auto w = c.all_reduce_async(a);
  w->wait();
  CHECK(all_ranks(a.cpu().get({999}) == P * (P + 1) / 2.0));
  Tensor b = full({3}, r == P - 1 ? 42.0 : -1.0, DType::Float64, d);
  c.broadcast(b, P - 1);
  CHECK(all_ranks(b.cpu().to_vector() == std::vector<double>(3, 42.0)));
  Tensor g = c.all_gather(full({2}, static_cast<double>(r), DType::Float64, d));
  CHECK(g.device() == d);
  bool ok = g.shape() == Shape{P, 2};
  Tensor gh = g.cpu();
  for (int k = 0; k < P && ok; ++k) ok = gh.get({k, 1}) == k;
  CHECK(all_ranks(ok));
  // SyncBatchNorm's per-channel moment all-reduce, float32 through float64, in place.
  Tensor sums = full({2, 4}, static_cast<double>(r + 1), DType::Float32, d);
  dist::channel_all_reduce(std::shared_ptr<dist::Communicator>(&c, [](dist::Communicator*) {}))(sums);
  CHECK(all_ranks(sums.device() == d && sums.cpu().get({1, 3}) == P * (P + 1) / 2.0));
  c.barrier();
}

// The bucketed reducer on device gradients gives the single-process gradients of the whole batch
// (B = 7: uneven shards, and B = 1: empty shards from P = 2 on).
void check_grad_reducer(std::shared_ptr<dist::Communicator> c, Device d) {
  for (int64_t B : {7, 1}) {
    CAPTURE(B);
    std::vector<int64_t> batch(B);
    for (int64_t i = 0; i < B; ++i) batch[i] = 300 + i;
    Mlp ref(d);
    auto gref = A::grad({ref.loss(mlp_inputs(batch, d), B)}, ref.params);
    Mlp net(d);
    dist::GradReducer reducer(c, net.params, 200);
    std::vector<int64_t> mine = dist::shard_indices(batch, c->rank(), c->size());
    if (!mine.empty()) net.loss(mlp_inputs(mine, d), B).backward();
    reducer.finish();
    bool ok = reducer.bucket_count() > 1;
    for (size_t i = 0; i < gref.size(); ++i) {
      ok = ok && net.params[i].grad().device() == d &&
           max_rel(net.params[i].grad().data(), gref[i].data()) < 1e-12;
    }
    CHECK(all_ranks(ok));
  }
}

}  // namespace

TEST_SUITE("mpi-gpu") {

TEST_CASE("MPI backend on device tensors: collectives and the gradient reducer") {
  const Device d = my_gpu();
  check_collectives(world(), d);
  check_grad_reducer(testing::world_ptr(), d);
}

TEST_CASE("NCCL bootstrapped over MPI: collectives and the gradient reducer, or NCCL's refusal "
          "of a shared GPU on every rank") {
  if (!dist::nccl_available()) {
    CHECK_THROWS_WITH_AS(dist::make_nccl(testing::world_ptr(), 0),
                         doctest::Contains("built without NCCL"), Error);
    return;
  }
  const dist::NodeRank node = dist::node_rank(world());
  const Device d = my_gpu();
  const bool shared_gpu = node.local_size > cuda::device_count();
  if (shared_gpu && !std::getenv("NCCL_HOSTID")) {
    std::string err;
    try {
      dist::make_nccl(testing::world_ptr(), d.index);
    } catch (const Error& e) {
      err = e.what();
    }
    INFO("rank " << world().rank() << ": " << err);
    CHECK(all_ranks(err.find("ncclCommInitRank") != std::string::npos));
    // The MPI communicator is untouched by the failed attempt.
    Tensor t = full({1}, 1.0, DType::Float64, d);
    world().all_reduce(t);
    CHECK(all_ranks(t.cpu().item() == world().size()));
    return;
  }
  auto c = dist::make_nccl(testing::world_ptr(), d.index);
  CHECK(c->backend() == "nccl");
  CHECK(all_ranks(c->rank() == world().rank() && c->size() == world().size()));
  check_collectives(*c, d);
  check_grad_reducer(c, d);
  // Host tensors are staged through the GPU.
  Tensor h = from_vector<int64_t>({world().rank()}, {1});
  c->all_reduce(h);
  CHECK(all_ranks(h.device().is_cpu() && h.get({0}) == world().size() * (world().size() - 1) / 2));
}

}  // TEST_SUITE
