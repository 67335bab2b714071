// tests/autodiff/test_activation_checkpoint.cpp — ad::checkpoint: the same values and gradients
// as the plain run, bit for bit (dfx's kernels are deterministic), less memory, batch norm's
// running statistics updated once, and a clear error for a second derivative.
#include <doctest/doctest.h>

#include "dfx.h"

using namespace dfx;
namespace A = dfx::ad;

namespace {

std::vector<double> values(const Tensor& t) { return t.to_vector(); }

std::shared_ptr<nn::UNet> unet(bool checkpoint) {
  nn::UNetOptions o;
  o.depth = 3;
  o.width = 4;
  o.dtype = DType::Float64;
  o.seed = 5;
  o.checkpoint = checkpoint;
  return std::make_shared<nn::UNet>(o);
}

}  // namespace

TEST_SUITE("autodiff") {
TEST_CASE("checkpoint: a small part's value and gradients equal the plain run bit for bit") {
  const Tensor xin = uniform({3, 5}, -1, 1, 11, 0, 0, DType::Float64);
  const Tensor win = uniform({5, 4}, -1, 1, 12, 0, 0, DType::Float64);
  auto part = [](const Var& x, const Var& w) { return A::tanh(A::matmul(A::tanh(x), w)); };
  std::vector<double> got[2];
  for (int ck : {0, 1}) {
    Var x(xin, true), w(win, true);
    Var y = ck ? A::checkpoint([&](const std::vector<Var>& v) { return part(v[0], w); }, {x}, {w})
               : part(x, w);
    got[ck] = values(y.data());
    A::sum(A::mul(y, y)).backward();
    for (const Var* v : {&x, &w})
      for (double g : values(v->grad().data())) got[ck].push_back(g);
  }
  CHECK(got[1] == got[0]);
  // Not vacuous: the gradients are nonzero.
  double s = 0;
  for (size_t i = 12; i < got[0].size(); ++i) s += std::abs(got[0][i]);
  CHECK(s > 0.1);
}

TEST_CASE("checkpoint: a U-Net step equals the plain one bit for bit, with less memory") {
  const Tensor x = pde::omega_batch(2, 32, 1, {0, 1, 2, 3}, DType::Float64);
  const Tensor nu = kernels::unary(kernels::UnaryOp::Exp, x);
  std::vector<double> got[2];
  size_t peak[2];
  for (int ck : {0, 1}) {
    auto net = unet(ck);
    reset_peak_memory(Device::cpu());
    const size_t base = memory_stats(Device::cpu()).current_bytes;
    Var loss = pde::poisson_loss((*net)(Var(x)), nu);
    loss.backward();
    peak[ck] = memory_stats(Device::cpu()).peak_bytes - base;
    got[ck].push_back(loss.item());
    for (const Var& p : net->parameters())
      for (double g : values(p.grad().data())) got[ck].push_back(g);
    // Batch norm's running statistics and batch counts: updated once per forward.
    for (const auto& [name, t] : net->named_buffers())
      for (double v : values(t)) got[ck].push_back(v);
  }
  REQUIRE(got[1].size() == got[0].size());
  CHECK(got[1] == got[0]);
  CHECK(peak[1] < peak[0] * 0.8);
}

TEST_CASE("checkpoint: a second derivative through it is a clear error") {
  auto net = unet(true);
  const Tensor x = pde::omega_batch(2, 16, 1, {0, 1}, DType::Float64);
  const Tensor nu = kernels::unary(kernels::UnaryOp::Exp, x);
  std::vector<Var> params = net->parameters();
  std::vector<Tensor> v;
  for (const Var& p : params) v.push_back(uniform(p.shape(), -1, 1, 13, 0, 0, DType::Float64));
  CHECK_THROWS_WITH_AS(A::hvp([&] { return pde::poisson_loss((*net)(Var(x)), nu); }, params, v),
                       doctest::Contains("cannot be differentiated twice"), Error);
}
}
