// tests/mpi/test_data_parallel.cpp — loss integrity under mpiexec -n 1..4: one global batch gives
// the single-process loss, gradients, HVP and trajectory on any number of ranks, including
// uneven and empty shards; parameters stay bitwise identical across ranks.
#include <doctest/doctest.h>

#include <cmath>

#include "dfx.h"
#include "dist/data_parallel.h"
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

std::vector<int64_t> iota(int64_t n, int64_t start = 0) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = start + i;
  return v;
}

}  // namespace

TEST_SUITE("mpi") {
TEST_CASE("communicator collectives") {
  auto& c = world();
  const int r = c.rank(), P = c.size();
  Tensor t = from_vector<double>({1.0 + r, 2.0 * r}, {2});
  c.all_reduce(t);
  CHECK(all_ranks(t.get({0}) == P + P * (P - 1) / 2.0 && t.get({1}) == P * (P - 1)));
  Tensor m = from_vector<int64_t>({r}, {1});
  c.all_reduce(m, dist::ReduceOp::Max);
  CHECK(all_ranks(m.get({0}) == P - 1));
  Tensor a = full({3}, static_cast<double>(r + 1), DType::Float32);
  auto w = c.all_reduce_async(a);
  w->wait();
  CHECK(all_ranks(a.get({2}) == P * (P + 1) / 2.0));
  Tensor b = full({2}, r == 0 ? 42.0 : -1.0, DType::Float64);
  c.broadcast(b, 0);
  CHECK(all_ranks(b.get({1}) == 42.0));
  Tensor g = c.all_gather(full({2}, static_cast<double>(r), DType::Float64));
  bool ok = g.shape() == Shape{P, 2};
  for (int k = 0; k < P && ok; ++k) ok = g.get({k, 1}) == k;
  CHECK(all_ranks(ok));
}

TEST_CASE("sharding: contiguous, sizes differ by at most one, nothing padded or dropped") {
  for (int64_t B : {0, 1, 2, 7, 8, 13})
    for (int P = 1; P <= 5; ++P) {
      int64_t next = 0, lo = B, hi = 0;
      for (int r = 0; r < P; ++r) {
        dist::Shard s = dist::shard_of(B, r, P);
        CHECK(s.begin == next);
        next += s.count;
        lo = std::min(lo, s.count);
        hi = std::max(hi, s.count);
      }
      CHECK(next == B);
      CHECK(hi - lo <= 1);
    }
}

TEST_CASE("loss and gradients on P ranks equal the single-process ones (B = 7, 8, and B < P)") {
  auto& c = world();
  for (int64_t B : {7, 8, 2, 1}) {
    CAPTURE(B);
    std::vector<int64_t> batch = iota(B, 1000);
    // Reference: every rank computes the whole batch alone.
    Mlp ref;
    Var lref = ref.loss(mlp_inputs(batch), B);
    auto gref = A::grad({lref}, ref.params);
    // Distributed: shard, divide by the global count, reduce (small buckets: several of them).
    Mlp net;
    dist::GradReducer reducer(testing::world_ptr(), net.params, 200);
    std::vector<int64_t> mine = dist::shard_indices(batch, c.rank(), c.size());
    Tensor local = zeros({}, DType::Float64);
    if (!mine.empty()) {
      Var l = net.loss(mlp_inputs(mine), B);
      l.backward();
      local = l.data().clone();
    }
    reducer.finish();  // ranks with an empty shard contribute zeros
    c.all_reduce(local);
    CHECK(all_ranks(std::abs(local.item() - lref.item()) <= 1e-13 * std::abs(lref.item())));
    bool ok = reducer.bucket_count() > 1;
    for (size_t i = 0; i < gref.size(); ++i) ok = ok && max_rel(net.params[i].grad().data(), gref[i].data()) < 1e-13;
    CHECK(all_ranks(ok));
  }
}

TEST_CASE("gradient accumulation over micro-batches reduces once and matches one batch") {
  auto& c = world();
  const int64_t B = 9;
  std::vector<int64_t> batch = iota(B, 50);
  Mlp ref;
  auto gref = A::grad({ref.loss(mlp_inputs(batch), B)}, ref.params);
  Mlp net;
  dist::GradReducer reducer(testing::world_ptr(), net.params);
  std::vector<int64_t> mine = dist::shard_indices(batch, c.rank(), c.size());
  // Two micro-batches per rank; only the last backward synchronises.
  const size_t half = mine.size() / 2;
  std::vector<int64_t> m1(mine.begin(), mine.begin() + half), m2(mine.begin() + half, mine.end());
  reducer.set_sync(false);
  if (!m1.empty()) net.loss(mlp_inputs(m1), B).backward();
  reducer.set_sync(true);
  if (!m2.empty()) net.loss(mlp_inputs(m2), B).backward();
  reducer.finish();
  bool ok = true;
  for (size_t i = 0; i < gref.size(); ++i) ok = ok && max_rel(net.params[i].grad().data(), gref[i].data()) < 1e-13;
  CHECK(all_ranks(ok));
}

TEST_CASE("distributed HVP equals the single-process HVP") {
  auto& c = world();
  const int64_t B = 7;
  std::vector<int64_t> batch = iota(B, 300);
  Mlp net;
  std::vector<Tensor> v;
  for (size_t i = 0; i < net.params.size(); ++i)
    v.push_back(uniform(net.params[i].shape(), -1, 1, 77, i, 0, DType::Float64));
  auto href = A::hvp([&] { return net.loss(mlp_inputs(batch), B); }, net.params, v);
  std::vector<int64_t> mine = dist::shard_indices(batch, c.rank(), c.size());
  std::vector<Tensor> h;
  if (!mine.empty()) {
    h = dist::hvp(c, net.loss(mlp_inputs(mine), B), net.params, v);
  } else {  // nothing local: contribute zeros to the same collectives
    for (auto& p : net.params) {
      Tensor z = zeros_like(p.data());
      c.all_reduce(z);
      h.push_back(z);
    }
  }
  bool ok = true;
  for (size_t i = 0; i < h.size(); ++i) ok = ok && max_rel(h[i], href[i]) < 1e-12;
  CHECK(all_ranks(ok));
}

TEST_CASE("dist::Hessian: global gradient and repeated HVPs equal the single-process ones") {
  auto& c = world();
  const int64_t B = 3;  // P = 4 leaves one rank with an empty shard
  std::vector<int64_t> batch = iota(B, 400);
  Mlp net;
  std::vector<Tensor> u, v;
  for (size_t i = 0; i < net.params.size(); ++i) {
    u.push_back(uniform(net.params[i].shape(), -1, 1, 78, i, 0, DType::Float64));
    v.push_back(uniform(net.params[i].shape(), -1, 1, 79, i, 0, DType::Float64));
  }
  auto gref = A::grad({net.loss(mlp_inputs(batch), B)}, net.params);
  auto uref = A::hvp([&] { return net.loss(mlp_inputs(batch), B); }, net.params, u);
  auto vref = A::hvp([&] { return net.loss(mlp_inputs(batch), B); }, net.params, v);
  std::vector<int64_t> mine = dist::shard_indices(batch, c.rank(), c.size());
  dist::Hessian h(c, mine.empty() ? A::Var() : net.loss(mlp_inputs(mine), B), net.params);
  auto hv = h.apply(v);
  auto hu = h.apply(u);
  bool ok = true;
  for (size_t i = 0; i < net.params.size(); ++i)
    ok = ok && max_rel(h.gradient()[i], gref[i].data()) < 1e-12 && max_rel(hu[i], uref[i]) < 1e-12 &&
         max_rel(hv[i], vref[i]) < 1e-12;
  CHECK(all_ranks(ok));
}

TEST_CASE("a training trajectory is the same on any P, and parameters stay bitwise identical") {
  auto& c = world();
  const int64_t B = 7;
  Mlp ref, net;
  // Start rank 0's way: perturb non-root copies, then broadcast must repair them.
  if (c.rank() != 0) kernels::scale_(net.params[0].mutable_data(), 1.5);
  dist::broadcast_tensors(c, net.values());
  dist::GradReducer reducer(testing::world_ptr(), net.params, 256);
  const double lr = 0.2;
  std::vector<double> losses_ref, losses;
  for (int step = 0; step < 5; ++step) {
    std::vector<int64_t> batch = iota(B, 10 * step);
    Var lr_loss = ref.loss(mlp_inputs(batch), B);
    for (auto& p : ref.params) p.zero_grad();
    lr_loss.backward();
    for (auto& p : ref.params) kernels::axpy_(p.mutable_data(), -lr, p.grad().data());
    losses_ref.push_back(lr_loss.item());

    for (auto& p : net.params) p.zero_grad();
    std::vector<int64_t> mine = dist::shard_indices(batch, c.rank(), c.size());
    Tensor local = zeros({}, DType::Float64);
    if (!mine.empty()) {
      Var l = net.loss(mlp_inputs(mine), B);
      l.backward();
      local = l.data().clone();
    }
    reducer.finish();
    c.all_reduce(local);
    losses.push_back(local.item());
    for (auto& p : net.params) kernels::axpy_(p.mutable_data(), -lr, p.grad().data());
  }
  bool ok = true;
  for (size_t k = 0; k < losses.size(); ++k) ok = ok && std::abs(losses[k] - losses_ref[k]) <= 1e-12 * losses_ref[k];
  for (size_t i = 0; i < net.params.size(); ++i) ok = ok && max_rel(net.params[i].data(), ref.params[i].data()) < 1e-12;
  CHECK(all_ranks(ok));
  CHECK(dist::same_on_all_ranks(c, dist::tensors_hash(net.values())));
  CHECK(losses.back() < losses.front());
}
}
