// tests/optim/test_first_order.cpp — SGD and Adam/AdamW steps against the formulas computed by
// hand in double precision, and state save/restore continuing bit for bit.
#include <doctest/doctest.h>

#include <cmath>

#include "dfx.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"

using namespace dfx;

namespace {
void set_grad(Var& p, std::vector<double> g) { p.set_grad(Var(from_vector<double>(g, {static_cast<int64_t>(g.size())}))); }
}  // namespace

TEST_SUITE("optim") {
TEST_CASE("SGD with momentum, dampening, Nesterov and weight decay follows PyTorch's formulas") {
  for (bool nesterov : {false, true}) {
    CAPTURE(nesterov);
    Var p(from_vector<double>({1.0, -2.0}, {2}), true);
    optim::SGDOptions o;
    o.lr = 0.1;
    o.momentum = 0.9;
    o.weight_decay = 0.01;
    o.nesterov = nesterov;
    optim::SGD opt({p}, o);
    double x[2] = {1.0, -2.0}, buf[2] = {0, 0};
    const double grads[3][2] = {{0.5, -0.25}, {0.3, 0.7}, {-1.0, 0.2}};
    for (int s = 0; s < 3; ++s) {
      set_grad(p, {grads[s][0], grads[s][1]});
      opt.apply();
      for (int i = 0; i < 2; ++i) {
        double g = grads[s][i] + 0.01 * x[i];
        buf[i] = s == 0 ? g : 0.9 * buf[i] + g;
        double d = nesterov ? g + 0.9 * buf[i] : buf[i];
        x[i] -= 0.1 * d;
        CHECK(p.data().get({i}) == doctest::Approx(x[i]).epsilon(1e-14));
      }
    }
  }
}

TEST_CASE("Adam, AdamW and amsgrad follow PyTorch's formulas") {
  for (int variant = 0; variant < 3; ++variant) {
    CAPTURE(variant);
    Var p(from_vector<double>({0.7, -1.3, 2.0}, {3}), true);
    optim::AdamOptions o;
    o.lr = 0.01;
    o.weight_decay = variant == 0 ? 0.0 : 0.1;
    o.decoupled_weight_decay = variant == 1;
    o.amsgrad = variant == 2;
    optim::Adam opt({p}, o);
    double x[3] = {0.7, -1.3, 2.0}, m[3] = {}, v[3] = {}, vmax[3] = {};
    const double grads[4][3] = {{0.5, -0.1, 2.0}, {0.4, 0.3, -1.0}, {-0.2, 0.05, 0.5}, {0.1, -0.6, 0.0}};
    for (int s = 1; s <= 4; ++s) {
      set_grad(p, {grads[s - 1][0], grads[s - 1][1], grads[s - 1][2]});
      opt.apply();
      for (int i = 0; i < 3; ++i) {
        double g = grads[s - 1][i];
        if (variant == 1) x[i] *= 1 - 0.01 * 0.1;
        else g += o.weight_decay * x[i];
        m[i] = 0.9 * m[i] + 0.1 * g;
        v[i] = 0.999 * v[i] + 0.001 * g * g;
        vmax[i] = std::max(vmax[i], v[i]);
        double vv = variant == 2 ? vmax[i] : v[i];
        double bc1 = 1 - std::pow(0.9, s), bc2 = 1 - std::pow(0.999, s);
        x[i] -= 0.01 / bc1 * m[i] / (std::sqrt(vv) / std::sqrt(bc2) + 1e-8);
        CHECK(p.data().get({i}) == doctest::Approx(x[i]).epsilon(1e-13));
      }
    }
  }
}

TEST_CASE("the fused Adam update equals the unfused ops, in float32 and float64, in both layouts") {
  namespace k = dfx::kernels;
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (bool cl : {false, true}) {
      for (double wd : {0.0, 0.05}) {
        CAPTURE(dtype_name(dt));
        CAPTURE(cl);
        CAPTURE(wd);
        const MemoryFormat fmt = cl ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
        const Shape shape{3, 5, 4, 6};
        Tensor p = randn(shape, 71, 0, 0, dt).contiguous(fmt);
        Tensor m = k::mul(randn(shape, 72, 0, 0, dt), full({}, 0.1, dt)).contiguous(fmt);
        Tensor v = k::mul(uniform(shape, 0.0, 1.0, 73, 0, 0, dt), full({}, 0.01, dt)).contiguous(fmt);
        const Tensor g = randn(shape, 74, 0, 0, dt);  // NCHW even when p is channels-last
        k::AdamUpdate u;
        u.beta1 = 0.9;
        u.beta2 = 0.999;
        u.step = 0.01 / (1 - std::pow(0.9, 3));
        u.inv_sqrt_bc2 = 1 / std::sqrt(1 - std::pow(0.999, 3));
        u.eps = 1e-8;
        u.weight_decay = wd;
        // The unfused ops, as Adam::step ran them before the fused kernel.
        auto s = [&](double x) { return full({}, x, dt); };
        const Tensor gw = wd != 0 ? k::add(g, k::mul(p, s(wd))) : g;
        const Tensor m2 = k::add(k::mul(m, s(0.9)), k::mul(gw, s(1 - 0.9)));
        const Tensor v2 = k::add(k::mul(v, s(0.999)), k::mul(k::mul(gw, gw), s(1 - 0.999)));
        const Tensor denom = k::add(k::mul(k::unary(k::UnaryOp::Sqrt, v2), s(u.inv_sqrt_bc2)),
                                    s(u.eps));
        const Tensor p2 = k::add(p, k::mul(s(-u.step), k::div(m2, denom)));
        k::adam_update_(p, g, m, v, u);
        CHECK(p.suggest_memory_format() == fmt);  // in place: the layout stays
        // Relative to each tensor's largest magnitude: a fused multiply-add may round a
        // cancelling lerp differently from the separate ops.
        const double tol = dt == DType::Float32 ? 1e-6 : 1e-14;
        auto close = [&](const Tensor& a, const Tensor& b) {
          const auto x = a.to_vector(), y = b.to_vector();
          double worst = 0, scale = 0;
          for (double e : y) scale = std::max(scale, std::fabs(e));
          for (size_t i = 0; i < x.size(); ++i)
            worst = std::max(worst, std::fabs(x[i] - y[i]) / scale);
          return worst;
        };
        CHECK(close(m, m2) <= tol);
        CHECK(close(v, v2) <= tol);
        CHECK(close(p, p2) <= tol);
      }
    }
  }
  // Moments that do not lie like the parameter are refused (Adam::step then runs the ops).
  Tensor p = randn({2, 3, 4, 5}, 75, 0, 0, DType::Float32).contiguous(MemoryFormat::ChannelsLast);
  Tensor m = zeros({2, 3, 4, 5}), v = zeros({2, 3, 4, 5});
  CHECK_THROWS_WITH(kernels::adam_update_(p, m, m, v, kernels::AdamUpdate{}),
                    doctest::Contains("same strides"));
}

TEST_CASE("optimiser state round-trips: a restored run continues bit for bit") {
  auto make = [] { return Var(uniform({4}, -1, 1, 3, 0, 0, DType::Float64), true); };
  auto grad_at = [](int s) { return uniform({4}, -1, 1, 4, static_cast<uint64_t>(s), 0, DType::Float64); };
  Var a = make();
  optim::Adam A({a}, {});
  for (int s = 0; s < 3; ++s) {
    a.set_grad(Var(grad_at(s)));
    A.apply();
  }
  auto saved = A.state();
  Tensor saved_values = a.data().clone();
  std::map<std::string, Tensor> copy;
  for (auto& [k, t] : saved) copy[k] = t.clone();
  for (int s = 3; s < 6; ++s) {
    a.set_grad(Var(grad_at(s)));
    A.apply();
  }
  Var b(saved_values, true);
  optim::Adam B({b}, {});
  B.load_state(copy);
  CHECK(B.steps() == 3);
  for (int s = 3; s < 6; ++s) {
    b.set_grad(Var(grad_at(s)));
    B.apply();
  }
  for (int i = 0; i < 4; ++i) CHECK(a.data().get({i}) == b.data().get({i}));
  std::map<std::string, Tensor> bad = copy;
  bad["exp_avg.0"] = zeros({5}, DType::Float64);
  CHECK_THROWS_AS(B.load_state(bad), Error);
}
}

TEST_SUITE("optim") {
TEST_CASE("learning-rate schedules follow PyTorch's formulas, with linear warm-up") {
  optim::Schedule s;
  s.base_lr = 0.1;
  s.kind = optim::Schedule::Kind::Cosine;
  s.total_steps = 110;
  s.warmup_steps = 10;
  s.min_lr = 0.001;
  CHECK(s.lr(0) == doctest::Approx(0.01));
  CHECK(s.lr(9) == doctest::Approx(0.1));
  CHECK(s.lr(10) == doctest::Approx(0.1));
  CHECK(s.lr(60) == doctest::Approx(0.001 + 0.5 * 0.099));
  CHECK(s.lr(110) == doctest::Approx(0.001));
  s.warmup_steps = 0;
  s.kind = optim::Schedule::Kind::Step;
  s.step_size = 30;
  s.gamma = 0.5;
  CHECK(s.lr(29) == doctest::Approx(0.1));
  CHECK(s.lr(30) == doctest::Approx(0.05));
  CHECK(s.lr(95) == doctest::Approx(0.0125));
  s.kind = optim::Schedule::Kind::MultiStep;
  s.milestones = {5, 12};
  CHECK(s.lr(4) == doctest::Approx(0.1));
  CHECK(s.lr(12) == doctest::Approx(0.025));
  s.kind = optim::Schedule::Kind::Exponential;
  s.gamma = 0.9;
  CHECK(s.lr(3) == doctest::Approx(0.1 * 0.729));
  CHECK_THROWS_AS(optim::Schedule::parse_kind("wiggly"), Error);
}
}
