// tests/mpi/test_sync_bn.cpp — a whole W1-shaped U-Net with SyncBatchNorm under mpiexec: one
// training step on P ranks (uneven and empty shards included) gives the single-process loss,
// gradients, running statistics and HVP of the whole batch.
#include <doctest/doctest.h>

#include <cmath>
#include <utility>

#include "dfx.h"
#include "dist/data_parallel.h"
#include "models/unet.h"
#include "mpi_world.h"
#include "pde/poisson_loss.h"
#include "pde/sampler.h"

using namespace dfx;
using dfx::testing::all_ranks;
using dfx::testing::world;

namespace {

// low_memory: activation checkpointing and batch norm rebuilding its input (first-order only).
std::shared_ptr<nn::UNet> small_unet(bool low_memory = false) {
  nn::UNetOptions o;
  o.depth = 2;
  o.width = 4;
  o.dtype = DType::Float64;
  o.seed = 17;
  o.checkpoint = low_memory;
  o.batch_norm.recompute_input = low_memory;
  return std::make_shared<nn::UNet>(o);
}

Tensor omega(const std::vector<int64_t>& idx) {
  std::vector<uint64_t> s(idx.begin(), idx.end());
  return pde::omega_batch(2, 16, 5, s, DType::Float64);
}

double rel(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector(), y = b.to_vector();
  double num = 0, den = 1e-300;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return std::sqrt(num / den);
}

ad::Var loss_of(nn::UNet& net, const std::vector<int64_t>& idx, int64_t B) {
  Tensor x = idx.empty() ? Tensor::empty({0, 1, 16, 16}, DType::Float64) : omega(idx);
  Tensor nu = kernels::unary(kernels::UnaryOp::Exp, x);
  return pde::poisson_loss(net(ad::Var(x)), nu, B);
}

}  // namespace

TEST_SUITE("mpi") {
TEST_CASE("SyncBatchNorm U-Net step: P ranks equal one process (B = 7 and B = 2)") {
  auto& c = world();
  // The distributed net also runs with activation checkpointing and batch norm rebuilding its
  // input: the re-run all-reduces its moments again and the reducer still sees every gradient.
  using Case = std::pair<int64_t, bool>;  // global batch, low-memory modes
  for (auto [B, low_memory] : {Case{7, false}, Case{2, false}, Case{7, true}}) {
    CAPTURE(B);
    CAPTURE(low_memory);
    std::vector<int64_t> batch;
    for (int64_t i = 0; i < B; ++i) batch.push_back(20 + i);
    auto ref = small_unet();
    ad::Var lref = loss_of(*ref, batch, B);
    auto pref = ref->parameters();
    auto gref = ad::grad({lref}, pref);

    auto net = small_unet(low_memory);
    for (nn::BatchNorm* bn : nn::batch_norm_layers(*net)) bn->set_all_reduce(dist::channel_all_reduce(testing::world_ptr()));
    auto params = net->parameters();
    dist::GradReducer reducer(testing::world_ptr(), params, 4096);
    std::vector<int64_t> mine = dist::shard_indices(batch, c.rank(), c.size());
    ad::Var l = loss_of(*net, mine, B);  // empty shards still run: BN's collectives need them
    l.backward();
    reducer.finish();
    Tensor total = l.data().clone();
    c.all_reduce(total);
    CHECK(all_ranks(std::abs(total.item() - lref.item()) <= 1e-12 * std::abs(lref.item())));
    double worst = 0;
    for (size_t i = 0; i < params.size(); ++i) worst = std::max(worst, rel(params[i].grad().data(), gref[i].data()));
    CAPTURE(worst);
    CHECK(all_ranks(worst < 1e-10));
    // Running statistics (updated from global moments) equal the single-process ones.
    double stats = 0;
    auto rs = ref->named_buffers(), ns = net->named_buffers();
    for (size_t i = 0; i < rs.size(); ++i)
      if (rs[i].second.dtype() == DType::Float64) stats = std::max(stats, rel(ns[i].second, rs[i].second));
    CHECK(all_ranks(stats < 1e-12));
  }
}

TEST_CASE("distributed HVP through SyncBatchNorm equals the single-process HVP") {
  auto& c = world();
  const int64_t B = 5;
  std::vector<int64_t> batch = {3, 4, 5, 6, 7};
  auto ref = small_unet();
  auto pref = ref->parameters();
  std::vector<Tensor> v;
  for (size_t i = 0; i < pref.size(); ++i) v.push_back(uniform(pref[i].shape(), -1, 1, 8, i, 0, DType::Float64));
  auto href = ad::hvp(loss_of(*ref, batch, B), pref, v);
  auto net = small_unet();
  for (nn::BatchNorm* bn : nn::batch_norm_layers(*net)) bn->set_all_reduce(dist::channel_all_reduce(testing::world_ptr()));
  auto params = net->parameters();
  std::vector<int64_t> mine = dist::shard_indices(batch, c.rank(), c.size());
  auto h = dist::hvp(c, loss_of(*net, mine, B), params, v);
  double worst = 0;
  for (size_t i = 0; i < h.size(); ++i) worst = std::max(worst, rel(h[i], href[i]));
  CAPTURE(worst);
  CHECK(all_ranks(worst < 1e-9));
}

TEST_CASE("the Trainer's Gauss-Newton product through SyncBatchNorm on P ranks equals one process's") {
  train::TrainConfig cfg;
  cfg.model = {.depth = 2, .width = 4, .dtype = DType::Float64, .seed = 17};
  cfg.batch = 5;
  cfg.samples = 10;
  cfg.steps = 2;
  cfg.eval_samples = 0;
  cfg.optimizer.name = "gauss-newton";
  auto problem = [] { return pde::make_problem({.name = "poisson2d", .res = 16, .seed = 5}); };
  auto one_model = train::build_unet(cfg.model, 2, Device::cpu(), "gauss-newton");
  train::Trainer one(cfg, one_model, problem(), dist::make_local());
  auto model = train::build_unet(cfg.model, 2, Device::cpu(), "gauss-newton");
  train::Trainer many(cfg, model, problem(), testing::world_ptr());
  auto params = one.model().parameters();
  std::vector<Tensor> v;
  for (size_t i = 0; i < params.size(); ++i)
    v.push_back(uniform(params[i].shape(), -1, 1, 9, i, 0, DType::Float64));
  // At the initial weights and after one step of each (the steps themselves must agree too).
  for (int round = 0; round < 2; ++round) {
    CAPTURE(round);
    std::vector<Tensor> g1 = one.gauss_newton(v), gp = many.gauss_newton(v);
    double worst = 0, size = 0;
    for (size_t i = 0; i < g1.size(); ++i) {
      worst = std::max(worst, rel(gp[i], g1[i]));
      for (double x : g1[i].to_vector()) size = std::max(size, std::abs(x));
    }
    CAPTURE(worst);
    CHECK(size > 1e-3);
    CHECK(all_ranks(worst < 1e-10));
    one.train(1);
    many.train(1);
    double pw = 0;
    auto p1 = one.model().parameters(), pp = many.model().parameters();
    for (size_t i = 0; i < p1.size(); ++i) pw = std::max(pw, rel(pp[i].data(), p1[i].data()));
    CAPTURE(pw);
    CHECK(all_ranks(pw < 1e-9));
  }
}
}
