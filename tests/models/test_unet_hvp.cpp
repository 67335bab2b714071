// tests/models/test_unet_hvp.cpp — the second-order check the higher-order optimisers stand on:
// the Hessian-vector product through a whole U-Net (training-mode batch norm, max pooling,
// transposed convolutions, concatenation) and the W1 energy loss equals central differences of
// gradients, in float64; and the Hessian it defines is symmetric (also with LeakyReLU).
#include <doctest/doctest.h>

#include <cmath>

#include "dfx.h"

using namespace dfx;

namespace {

struct Setup {
  std::shared_ptr<nn::UNet> net;
  std::vector<Var> params;
  Tensor x, nu;
};

Setup make(int dims, int64_t n) {
  Setup s;
  nn::UNetOptions o;
  o.dims = dims;
  o.depth = 3;
  o.width = 2;
  o.dtype = DType::Float64;
  o.seed = 4;
  // A smooth activation: LeakyReLU's second derivative is zero almost everywhere, which the HVP
  // reproduces exactly, but finite differences of its gradient jump wherever a perturbed
  // pre-activation crosses zero, so they cannot serve as the reference.
  o.activation = nn::Activation::tanh();
  s.net = std::make_shared<nn::UNet>(o);
  s.params = s.net->parameters();
  std::vector<uint64_t> samples = {0, 1, 2};
  s.x = pde::omega_batch(dims, n, 1, samples, DType::Float64);
  s.nu = kernels::unary(kernels::UnaryOp::Exp, s.x);
  return s;
}

Var loss(Setup& s) { return pde::poisson_loss((*s.net)(Var(s.x)), s.nu); }

std::vector<Tensor> grads_at(Setup& s, const std::vector<Tensor>& v, double t) {
  std::vector<Tensor> saved;
  for (size_t i = 0; i < s.params.size(); ++i) {
    saved.push_back(s.params[i].data().clone());
    kernels::axpy_(s.params[i].mutable_data(), t, v[i]);
  }
  auto g = ad::grad({loss(s)}, s.params);
  for (size_t i = 0; i < s.params.size(); ++i) copy_(s.params[i].mutable_data(), saved[i]);
  std::vector<Tensor> out;
  for (auto& gi : g) out.push_back(gi.data().clone());
  return out;
}

}  // namespace

TEST_SUITE("models") {
TEST_CASE("HVP through a U-Net with training-mode batch norm matches differences of gradients") {
  for (int dims : {2, 3}) {
    CAPTURE(dims);
    Setup s = make(dims, dims == 2 ? 16 : 8);
    std::vector<Tensor> v;
    for (size_t i = 0; i < s.params.size(); ++i)
      v.push_back(uniform(s.params[i].shape(), -1, 1, 99, i, 0, DType::Float64));
    // Running statistics change with every forward; they do not enter training-mode outputs.
    std::vector<Tensor> hv = ad::hvp([&] { return loss(s); }, s.params, v);
    const double eps = 1e-6;
    auto gp = grads_at(s, v, eps), gm = grads_at(s, v, -eps);
    double num = 0, den = 0, worst = 0;
    for (size_t i = 0; i < hv.size(); ++i) {
      auto h = hv[i].to_vector(), a = gp[i].to_vector(), b = gm[i].to_vector();
      for (size_t k = 0; k < h.size(); ++k) {
        const double fd = (a[k] - b[k]) / (2 * eps);
        num += (h[k] - fd) * (h[k] - fd);
        den += fd * fd;
        worst = std::max(worst, std::abs(h[k] - fd) / (1e-6 + std::abs(fd)));
      }
    }
    const double rel = std::sqrt(num / den);
    CAPTURE(rel);
    CAPTURE(worst);
    CHECK(den > 1e-6);  // a non-trivial Hessian
    CHECK(rel < 1e-6);
  }
}

TEST_CASE("the U-Net loss Hessian is symmetric: u^T H v == v^T H u") {
  Setup s = make(2, 8);
  std::vector<Tensor> u, v;
  for (size_t i = 0; i < s.params.size(); ++i) {
    u.push_back(uniform(s.params[i].shape(), -1, 1, 5, i, 0, DType::Float64));
    v.push_back(uniform(s.params[i].shape(), -1, 1, 6, i, 0, DType::Float64));
  }
  auto hv = ad::hvp([&] { return loss(s); }, s.params, v);
  auto hu = ad::hvp([&] { return loss(s); }, s.params, u);
  double uhv = 0, vhu = 0;
  for (size_t i = 0; i < s.params.size(); ++i) {
    auto a = u[i].to_vector(), b = hv[i].to_vector(), c = v[i].to_vector(), d = hu[i].to_vector();
    for (size_t k = 0; k < a.size(); ++k) {
      uhv += a[k] * b[k];
      vhu += c[k] * d[k];
    }
  }
  CHECK(std::abs(uhv) > 1e-8);
  CHECK(uhv == doctest::Approx(vhu).epsilon(1e-10));
}
}

TEST_CASE("ad::Hessian: one differentiable backward serves several HVPs and the gradient") {
  // Newton-CG and Hutchinson probes reuse one gradient graph; each apply() must equal a fresh HVP
  // and the order of the calls must not matter (the graph is kept, never consumed).
  Setup s = make(2, 8);
  std::vector<Tensor> u, v;
  for (size_t i = 0; i < s.params.size(); ++i) {
    u.push_back(uniform(s.params[i].shape(), -1, 1, 15, i, 0, DType::Float64));
    v.push_back(uniform(s.params[i].shape(), -1, 1, 16, i, 0, DType::Float64));
  }
  auto g_ref = ad::grad({loss(s)}, s.params);
  auto hu_ref = ad::hvp([&] { return loss(s); }, s.params, u);
  auto hv_ref = ad::hvp([&] { return loss(s); }, s.params, v);
  ad::Hessian h(loss(s), s.params);
  auto hv = h.apply(v);
  auto hu = h.apply(u);
  auto hv2 = h.apply(v);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < s.params.size(); ++i) {
    auto pairs = {std::pair{h.gradient()[i], g_ref[i].data()}, std::pair{hu[i], hu_ref[i]},
                  std::pair{hv[i], hv_ref[i]}, std::pair{hv2[i], hv[i]}};
    for (const auto& [got, want] : pairs) {
      auto a = got.to_vector(), b = want.to_vector();
      REQUIRE(a.size() == b.size());
      for (size_t k = 0; k < a.size(); ++k) {
        worst = std::max(worst, std::abs(a[k] - b[k]));
        scale = std::max(scale, std::abs(b[k]));
      }
    }
  }
  CHECK(scale > 1e-6);
  CHECK(worst <= 1e-12 * scale);
}

TEST_CASE("a channels-last U-Net gives the NCHW U-Net's loss, gradients, HVP and Adam step") {
  for (int dims : {2, 3}) {
    CAPTURE(dims);
    Setup a = make(dims, dims == 2 ? 16 : 8), b = make(dims, dims == 2 ? 16 : 8);
    b.net->to(MemoryFormat::ChannelsLast);
    b.params = b.net->parameters();
    int converted = 0;
    for (const Var& p : b.params)
      if (p.data().dim() >= 3)
        converted += p.data().suggest_memory_format() == MemoryFormat::ChannelsLast;
    CHECK(converted >= 4);
    Tensor h = (*b.net)(Var(b.x)).data();
    CHECK(h.shape() == (*a.net)(Var(a.x)).data().shape());
    Var la = loss(a), lb = loss(b);
    CHECK(lb.item() == doctest::Approx(la.item()).epsilon(1e-12));
    auto ga = ad::grad({la}, a.params), gb = ad::grad({lb}, b.params);
    std::vector<Tensor> v;
    for (size_t i = 0; i < a.params.size(); ++i)
      v.push_back(uniform(a.params[i].shape(), -1, 1, 77, i, 0, DType::Float64));
    auto ha = ad::hvp([&] { return loss(a); }, a.params, v);
    auto hb = ad::hvp([&] { return loss(b); }, b.params, v);
    double worst_g = 0, worst_h = 0, scale_g = 0, scale_h = 0;
    for (size_t i = 0; i < ga.size(); ++i) {
      auto x = ga[i].data().to_vector(), y = gb[i].data().to_vector();
      auto p = ha[i].to_vector(), q = hb[i].to_vector();
      for (size_t k = 0; k < x.size(); ++k) {
        worst_g = std::max(worst_g, std::abs(x[k] - y[k]));
        scale_g = std::max(scale_g, std::abs(x[k]));
        worst_h = std::max(worst_h, std::abs(p[k] - q[k]));
        scale_h = std::max(scale_h, std::abs(p[k]));
      }
    }
    CHECK(scale_g > 1e-6);
    CHECK(worst_g <= 1e-10 * scale_g);
    CHECK(worst_h <= 1e-10 * scale_h);
    // One Adam step keeps the parameters' layouts and moves both models alike.
    optim::AdamOptions ao;
    ao.lr = 1e-2;
    optim::Adam oa(a.params, ao), ob(b.params, ao);
    for (auto* pr : {&a, &b}) {
      auto& opt = pr == &a ? oa : ob;
      opt.zero_grad();
      loss(*pr).backward();
      opt.apply();
    }
    double worst_p = 0;
    for (size_t i = 0; i < a.params.size(); ++i) {
      auto x = a.params[i].data().to_vector(), y = b.params[i].data().to_vector();
      for (size_t k = 0; k < x.size(); ++k) worst_p = std::max(worst_p, std::abs(x[k] - y[k]));
      const Tensor& pb = b.params[i].data();
      if (pb.dim() >= 3) CHECK(pb.strides() == channels_last_strides(pb.shape()));
    }
    CHECK(worst_p <= 1e-12);
  }
}

TEST_SUITE("models") {
TEST_CASE("recompute_input: a leaky-ReLU U-Net's gradients to rounding, and no second order") {
  // W1's activation (leaky ReLU 0.2, fused with batch norm). With recompute_input the batch
  // norms keep only their outputs and rebuild their inputs in the backward.
  auto build = [](bool recompute) {
    Setup s;
    nn::UNetOptions o;
    o.dims = 2;
    o.depth = 3;
    o.width = 4;
    o.dtype = DType::Float64;
    o.seed = 9;
    o.activation = nn::Activation::leaky_relu(0.2);
    o.batch_norm.recompute_input = recompute;
    s.net = std::make_shared<nn::UNet>(o);
    s.params = s.net->parameters();
    std::vector<uint64_t> samples = {0, 1, 2};
    s.x = pde::omega_batch(2, 16, 1, samples, DType::Float64);
    s.nu = kernels::unary(kernels::UnaryOp::Exp, s.x);
    return s;
  };
  Setup a = build(false), b = build(true);
  Var la = loss(a), lb = loss(b);
  CHECK(lb.item() == la.item());  // the forward is the same computation
  auto ga = ad::grad({la}, a.params), gb = ad::grad({lb}, b.params);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < ga.size(); ++i) {
    auto x = ga[i].data().to_vector(), y = gb[i].data().to_vector();
    for (size_t k = 0; k < x.size(); ++k) {
      worst = std::max(worst, std::abs(x[k] - y[k]));
      scale = std::max(scale, std::abs(x[k]));
    }
  }
  CHECK(scale > 1e-6);
  CHECK(worst <= 1e-10 * scale);
  CHECK(worst > 0);  // rebuilt, not kept: the rounding differs somewhere
  // Second order needs the inputs it did not keep: a clear error, not a wrong number.
  std::vector<Tensor> v;
  for (const Var& p : b.params) v.push_back(uniform(p.shape(), -1, 1, 78, 0, 0, DType::Float64));
  CHECK_THROWS_WITH_AS(ad::hvp([&] { return loss(b); }, b.params, v),
                       doctest::Contains("cannot be differentiated twice"), Error);
}

TEST_CASE("recompute_input frees each batch norm's input after the forward") {
  const Tensor xin = uniform({4, 3, 8, 8}, -1, 2, 81, 0, 0, DType::Float64);
  const Tensor ga = uniform({3}, 0.5, 1.5, 82, 0, 0, DType::Float64);
  auto held = [&](bool recompute) {
    Var gamma(ga.clone(), true), beta(zeros({3}, DType::Float64), true), x(xin, true);
    const size_t before = memory_stats(Device::cpu()).current_bytes;
    Var y;
    {
      Var h = ad::mul(x, 2.0);  // an intermediate only the graph can keep alive
      y = ad::batch_norm_leaky_relu(h, gamma, beta, Tensor(), Tensor(), true, 0.1, 1e-5, {}, 0.2,
                                    recompute);
    }
    return memory_stats(Device::cpu()).current_bytes - before;
  };
  const size_t kept = held(false), rebuilt = held(true);
  CHECK(kept - rebuilt >= xin.nbytes());
}
}
