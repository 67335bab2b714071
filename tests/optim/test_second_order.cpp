// tests/optim/test_second_order.cpp — L-BFGS on Rosenbrock (strong-Wolfe steps), Newton-CG and
// AdaHessian on quadratics with a known Hessian, the Hutchinson diagonal, LAMB/LARS against hand
// computed steps, and state round trips.
// Gradients come from the tape (ad::grad) and HVPs from ad::hvp, so the real path is exercised.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "dfx.h"
#include "tests/dense_solve.h"
#include "tests/tensor_diff.h"
#include "optim/first_order_extra.h"
#include "optim/second_order.h"

using namespace dfx;

namespace {
using testing::deep_copy;
constexpr int64_t kN = 10;

// A = diag(1..5.5) + U U^T with U (n x 2) fixed: SPD, dense, condition number ~ 10.
struct Quadratic {
  std::vector<double> a, b;  // row-major A, b
  Tensor at, bt;
  explicit Quadratic(bool diagonal = false) {
    Tensor u = uniform({kN, 2}, -1, 1, 11, 0, 0, DType::Float64);
    a.assign(kN * kN, 0.0);
    for (int64_t i = 0; i < kN; ++i)
      for (int64_t j = 0; j < kN; ++j) {
        double v = i == j ? 1.0 + 0.5 * i : 0.0;
        if (!diagonal) v += u.get({i, 0}) * u.get({j, 0}) + u.get({i, 1}) * u.get({j, 1});
        a[i * kN + j] = v;
      }
    for (int64_t i = 0; i < kN; ++i) b.push_back(std::sin(1.0 + i));
    at = from_vector<double>(a, {kN, kN});
    bt = from_vector<double>(b, {kN});
  }
  Var loss(const Var& x) const {
    Var ax = ad::matmul(Var(at), ad::reshape(x, {kN, 1}));
    return ad::sub(ad::mul(ad::dot(ad::reshape(x, {kN, 1}), ax), 0.5), ad::dot(x, Var(bt)));
  }
  std::vector<double> minimiser() const { return testing::dense_solve(a, b); }  // A^-1 b
};

// The closure and HVP a training loop would build: loss and tape gradient, ad::hvp.
optim::LossClosure closure_for(Var& x, std::function<Var(const Var&)> f) {
  return [&x, f](bool need_grad) {
    Var l = f(x);
    if (need_grad) x.set_grad(ad::grad({l}, {x})[0]);
    return l.item();
  };
}
optim::HvpFn hvp_for(Var& x, std::function<Var(const Var&)> f) {
  return [&x, f](const std::vector<Tensor>& v) { return ad::hvp([&] { return f(x); }, {x}, v); };
}

// One step on the objective those two make (optim/objective.h).
double step(optim::Optimizer& opt, const optim::LossClosure& loss, const optim::HvpFn& hvp = {}) {
  optim::FunctionObjective objective(loss, hvp);
  return opt.step(objective);
}

Var rosenbrock(const Var& x) {
  Var x0 = ad::narrow(x, 0, 0, 1), x1 = ad::narrow(x, 0, 1, 1);
  Var a = ad::sub(1.0, x0), b = ad::sub(x1, ad::square(x0));
  return ad::sum(ad::add(ad::square(a), ad::mul(ad::square(b), 100.0)));
}

double dist_to(const Var& x, const std::vector<double>& target) {
  double s = 0;
  for (size_t i = 0; i < target.size(); ++i) {
    const double d = x.data().get({static_cast<int64_t>(i)}) - target[i];
    s += d * d;
  }
  return std::sqrt(s);
}

}  // namespace

TEST_SUITE("optim") {
TEST_CASE("L-BFGS reaches the Rosenbrock minimum from (-1.2, 1) with strong-Wolfe steps") {
  Var x(from_vector<double>({-1.2, 1.0}, {2}), true);
  optim::LBFGSOptions o;
  optim::LBFGS opt({x}, o);
  auto closure = closure_for(x, rosenbrock);
  int iters = 0, wolfe = 0;
  double f = 0;
  for (; iters < 100 && dist_to(x, {1.0, 1.0}) > 1e-7; ++iters) {
    f = step(opt, closure);
    const auto& ls = opt.last_line_search();
    if (ls.wolfe) {
      ++wolfe;
      CHECK(ls.phi <= ls.phi0 + 1e-4 * ls.t * ls.dphi0);
      CHECK(std::abs(ls.dphi) <= 0.9 * std::abs(ls.dphi0));
    }
    CHECK(opt.history() <= 10);
  }
  MESSAGE("L-BFGS Rosenbrock: ", iters, " iterations, ", wolfe, " strong-Wolfe line searches");
  CHECK(iters < 100);
  CHECK(wolfe >= iters - 2);
  CHECK(dist_to(x, {1.0, 1.0}) < 1e-6);
  CHECK(f < 1e-12);
}

TEST_CASE("L-BFGS state round-trips: a restored run continues bit for bit") {
  auto closure_a_x = Var(from_vector<double>({-1.2, 1.0}, {2}), true);
  Var a = closure_a_x;
  optim::LBFGS A({a}, {.history_size = 4});
  auto ca = closure_for(a, rosenbrock);
  for (int s = 0; s < 6; ++s) step(A, ca);
  auto saved = deep_copy(A.state());
  Tensor saved_x = a.data().clone();
  for (int s = 0; s < 6; ++s) step(A, ca);
  Var b(saved_x, true);
  optim::LBFGS B({b}, {.history_size = 4});
  B.load_state(saved);
  CHECK(B.steps() == 6);
  CHECK(B.history() == 4);
  auto cb = closure_for(b, rosenbrock);
  for (int s = 0; s < 6; ++s) step(B, cb);
  for (int64_t i = 0; i < 2; ++i) CHECK(a.data().get({i}) == b.data().get({i}));
  optim::LBFGS C({b}, {.history_size = 2});
  CHECK_THROWS_AS(C.load_state(saved), Error);  // more pairs than the history holds
}

TEST_CASE("Newton-CG solves a quadratic within n CG steps and converges from a small radius") {
  Quadratic q;
  const auto xstar = q.minimiser();
  auto f = [&q](const Var& x) { return q.loss(x); };
  {
    Var x(zeros({kN}, DType::Float64), true);
    optim::NewtonCG opt({x}, {.initial_radius = 100.0, .cg_forcing = 1e-12});
    step(opt, closure_for(x, f), hvp_for(x, f));
    CHECK(opt.last_cg_iterations() <= kN);
    CHECK_FALSE(opt.last_hit_boundary());
    CHECK(opt.last_accepted());
    CHECK(opt.last_rho() == doctest::Approx(1.0).epsilon(1e-8));  // the model is exact
    CHECK(dist_to(x, xstar) < 1e-9);
  }
  for (bool precond : {false, true}) {
    CAPTURE(precond);
    Var x(zeros({kN}, DType::Float64), true);
    optim::NewtonCGOptions o;
    o.initial_radius = 0.05;
    o.precondition = precond;
    o.precond_samples = 4;
    auto closure = closure_for(x, f);
    auto hvp = hvp_for(x, f);
    optim::NewtonCG opt({x}, o);
    int outer = 0;
    for (; outer < 30 && dist_to(x, xstar) > 1e-8; ++outer) {
      step(opt, closure, hvp);
      CHECK(opt.last_cg_iterations() <= kN);
    }
    MESSAGE("Newton-CG (precondition ", precond, "): ", outer, " outer steps from radius 0.05");
    CHECK(outer <= 15);
    CHECK(dist_to(x, xstar) < 1e-8);
  }
}

TEST_CASE("Newton-CG shrinks the radius and rejects a step the model overpredicts") {
  // f = x^4 - 3x^2 from x = 0.1 with a large radius: the quadratic model is poor far away.
  auto f = [](const Var& x) {
    return ad::sum(ad::sub(ad::square(ad::square(x)), ad::mul(ad::square(x), 3.0)));
  };
  Var x(from_vector<double>({0.1}, {1}), true);
  optim::NewtonCG opt({x}, {.initial_radius = 10.0, .max_radius = 100.0});
  step(opt, closure_for(x, f), hvp_for(x, f));
  // Negative curvature at x = 0.1: CG walks to the boundary (x = 10.1), where f is huge.
  CHECK(opt.last_hit_boundary());
  CHECK_FALSE(opt.last_accepted());
  CHECK(x.data().get({0}) == 0.1);
  CHECK(opt.radius() == 2.5);
  for (int i = 0; i < 40; ++i) step(opt, closure_for(x, f), hvp_for(x, f));
  CHECK(std::abs(x.data().get({0})) == doctest::Approx(std::sqrt(1.5)).epsilon(1e-8));
  CHECK_THROWS_AS(optim::NewtonCG({x}, {.initial_radius = -1.0}), Error);
  CHECK_THROWS_AS(optim::NewtonCG({x}, {.eta = 0.5}), Error);
  CHECK(opt.needs_hvp());
}

TEST_CASE("Hutchinson diagonal: Rademacher probes from Philox, exact for a diagonal Hessian, "
          "error shrinking like 1/sqrt(k)") {
  Tensor like = zeros({3, 5}, DType::Float64);
  Tensor z = optim::rademacher_like(like, 7, 2, 4);
  for (int64_t i = 0; i < 15; ++i)
    CHECK(z.get({i / 5, i % 5}) == (philox_uniform(7, 2, 4 * 15 + i) > 0.5 ? 1.0 : -1.0));

  Quadratic diag_q(/*diagonal=*/true);
  Var x(zeros({kN}, DType::Float64), true);
  auto fd = [&diag_q](const Var& v) { return diag_q.loss(v); };
  auto d1 = optim::hutchinson_diagonal(hvp_for(x, fd), {x}, 1, 3, 0);
  for (int64_t i = 0; i < kN; ++i) CHECK(d1[0].get({i}) == doctest::Approx(1.0 + 0.5 * i));

  Quadratic q;
  auto f = [&q](const Var& v) { return q.loss(v); };
  auto hvp = hvp_for(x, f);
  auto rms_error = [&](int k, uint64_t seed) {
    auto d = optim::hutchinson_diagonal(hvp, {x}, k, seed, 0);
    double s = 0;
    for (int64_t i = 0; i < kN; ++i) {
      const double e = d[0].get({i}) - q.a[i * kN + i];
      s += e * e;
    }
    return std::sqrt(s / kN);
  };
  // Average over a few seeds so the check is about the rate, not one draw.
  std::vector<double> err;
  for (int k : {16, 256, 4096}) {
    double e = 0;
    for (uint64_t seed = 0; seed < 4; ++seed) e += rms_error(k, seed) / 4;
    err.push_back(e);
  }
  MESSAGE("Hutchinson RMS error at k = 16, 256, 4096: ", err[0], " ", err[1], " ", err[2]);
  CHECK(err[1] < err[0] / 2.5);  // 1/sqrt(k) predicts a factor 4 each time
  CHECK(err[2] < err[1] / 2.5);
  CHECK(err[2] < 0.05);
  CHECK_THROWS_AS(optim::hutchinson_diagonal(hvp, {x}, 0, 0, 0), Error);
}

TEST_CASE("AdaHessian spatial averaging over 2-d and 3-d convolution kernels") {
  Tensor w2 = uniform({2, 3, 2, 2}, -1, 1, 5, 0, 0, DType::Float64);
  Tensor a2 = optim::spatial_average(w2);
  for (int64_t o = 0; o < 2; ++o)
    for (int64_t c = 0; c < 3; ++c) {
      double m = 0;
      for (int64_t i = 0; i < 4; ++i) m += std::abs(w2.get({o, c, i / 2, i % 2})) / 4;
      for (int64_t i = 0; i < 4; ++i) CHECK(a2.get({o, c, i / 2, i % 2}) == doctest::Approx(m));
    }
  Tensor w3 = uniform({1, 2, 2, 2, 2}, -1, 1, 6, 0, 0, DType::Float64);
  Tensor a3 = optim::spatial_average(w3);
  double m = 0;
  for (int64_t i = 0; i < 8; ++i) m += std::abs(w3.get({0, 1, i / 4, (i / 2) % 2, i % 2})) / 8;
  CHECK(a3.get({0, 1, 1, 0, 1}) == doctest::Approx(m));
  Tensor bias = uniform({4}, -1, 1, 7, 0, 0, DType::Float64);
  CHECK(optim::spatial_average(bias).get({2}) == bias.get({2}));  // left signed, as in the paper
}

TEST_CASE("AdaHessian converges on a diagonal quadratic; state round-trips bit for bit") {
  Quadratic q(/*diagonal=*/true);
  auto f = [&q](const Var& v) { return q.loss(v); };
  const auto xstar = q.minimiser();
  Var x(zeros({kN}, DType::Float64), true);
  optim::AdaHessianOptions o;
  o.lr = 0.1;
  o.update_every = 2;
  optim::AdaHessian opt({x}, o);
  auto closure = closure_for(x, f);
  auto hvp = hvp_for(x, f);
  for (int s = 0; s < 400; ++s) {
    closure(true);
    opt.apply(hvp);
  }
  MESSAGE("AdaHessian distance to the minimiser after 400 steps: ", dist_to(x, xstar));
  CHECK(dist_to(x, xstar) < 1e-4);

  // Round trip mid-run, at a step where the Hessian estimate is being reused (odd step).
  Var a(zeros({kN}, DType::Float64), true);
  optim::AdaHessian A({a}, o);
  auto ca = closure_for(a, f);
  auto ha = hvp_for(a, f);
  for (int s = 0; s < 5; ++s) ca(true), A.apply(ha);
  auto saved = deep_copy(A.state());
  Tensor saved_x = a.data().clone();
  for (int s = 0; s < 5; ++s) ca(true), A.apply(ha);
  Var b(saved_x, true);
  optim::AdaHessian B({b}, o);
  B.load_state(saved);
  auto cb = closure_for(b, f);
  auto hb = hvp_for(b, f);
  for (int s = 0; s < 5; ++s) cb(true), B.apply(hb);
  for (int64_t i = 0; i < kN; ++i) CHECK(a.data().get({i}) == b.data().get({i}));
  CHECK_THROWS_AS(optim::AdaHessian({x}, {.hessian_power = 1.5}), Error);
  CHECK(opt.needs_hvp());
}

TEST_CASE("Newton-CG state round-trips the radius and preconditioner") {
  Quadratic q;
  auto f = [&q](const Var& v) { return q.loss(v); };
  optim::NewtonCGOptions o{.initial_radius = 0.05, .precondition = true, .precond_update_every = 3};
  Var a(zeros({kN}, DType::Float64), true);
  optim::NewtonCG A({a}, o);
  for (int s = 0; s < 4; ++s) step(A, closure_for(a, f), hvp_for(a, f));
  auto saved = deep_copy(A.state());
  Tensor saved_x = a.data().clone();
  for (int s = 0; s < 3; ++s) step(A, closure_for(a, f), hvp_for(a, f));
  Var b(saved_x, true);
  optim::NewtonCG B({b}, o);
  B.load_state(saved);
  CHECK(B.steps() == 4);
  for (int s = 0; s < 3; ++s) step(B, closure_for(b, f), hvp_for(b, f));
  CHECK(A.radius() == B.radius());
  for (int64_t i = 0; i < kN; ++i) CHECK(a.data().get({i}) == b.data().get({i}));
}

TEST_CASE("LAMB and LARS follow the PyTorch community formulas; state round-trips") {
  const double x0[3] = {0.7, -1.3, 2.0};
  const double grads[3][3] = {{0.5, -0.1, 2.0}, {0.4, 0.3, -1.0}, {-0.2, 0.05, 0.5}};
  auto set = [](Var& p, const double* g) {
    p.set_grad(Var(from_vector<double>({g[0], g[1], g[2]}, {3})));
  };
  auto nrm = [](const double* v) { return std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]); };
  for (bool debias : {false, true}) {
    CAPTURE(debias);
    Var p(from_vector<double>({x0[0], x0[1], x0[2]}, {3}), true);
    optim::LAMB opt({p}, {.lr = 0.01, .weight_decay = 0.1, .clamp_value = 2.0, .debias = debias});
    double x[3] = {x0[0], x0[1], x0[2]}, m[3] = {}, v[3] = {};
    for (int s = 1; s <= 3; ++s) {
      set(p, grads[s - 1]);
      opt.apply();
      double u[3];
      for (int i = 0; i < 3; ++i) {
        const double g = grads[s - 1][i];
        m[i] = 0.9 * m[i] + 0.1 * g;
        v[i] = 0.999 * v[i] + 0.001 * g * g;
        u[i] = m[i] / (std::sqrt(v[i]) + 1e-6) + 0.1 * x[i];
      }
      const double trust = std::min(nrm(x), 2.0) / nrm(u);
      const double lr = debias ? 0.01 * std::sqrt(1 - std::pow(0.999, s)) / (1 - std::pow(0.9, s))
                               : 0.01;
      for (int i = 0; i < 3; ++i) {
        x[i] -= lr * trust * u[i];
        CHECK(p.data().get({i}) == doctest::Approx(x[i]).epsilon(1e-13));
      }
    }
  }
  {
    Var p(from_vector<double>({x0[0], x0[1], x0[2]}, {3}), true);
    optim::LARS opt({p}, {.lr = 0.5, .momentum = 0.9, .weight_decay = 0.01});
    double x[3] = {x0[0], x0[1], x0[2]}, buf[3] = {};
    for (int s = 0; s < 3; ++s) {
      set(p, grads[s]);
      opt.apply();
      const double local = 1e-3 * nrm(x) / (nrm(grads[s]) + 0.01 * nrm(x) + 1e-8);
      for (int i = 0; i < 3; ++i) {
        const double d = (grads[s][i] + 0.01 * x[i]) * local * 0.5;
        buf[i] = s == 0 ? d : 0.9 * buf[i] + d;
        x[i] -= buf[i];
        CHECK(p.data().get({i}) == doctest::Approx(x[i]).epsilon(1e-13));
      }
    }
  }
  // Round trip: LAMB's moments and LARS's momentum live in the base slots.
  Var a(from_vector<double>({x0[0], x0[1], x0[2]}, {3}), true);
  Var c(from_vector<double>({x0[0], x0[1], x0[2]}, {3}), true);
  optim::LAMB A({a}, {.debias = true});
  optim::LARS C({c}, {});
  for (int s = 0; s < 2; ++s) set(a, grads[s]), A.apply(), set(c, grads[s]), C.apply();
  auto sa = deep_copy(A.state()), sc = deep_copy(C.state());
  Tensor xa = a.data().clone(), xc = c.data().clone();
  set(a, grads[2]), A.apply(), set(c, grads[2]), C.apply();
  Var b(xa, true), d(xc, true);
  optim::LAMB B({b}, {.debias = true});
  optim::LARS D({d}, {});
  B.load_state(sa);
  D.load_state(sc);
  set(b, grads[2]), B.apply(), set(d, grads[2]), D.apply();
  for (int64_t i = 0; i < 3; ++i) {
    CHECK(a.data().get({i}) == b.data().get({i}));
    CHECK(c.data().get({i}) == d.data().get({i}));
  }
  CHECK_THROWS_AS(optim::LAMB({a}, {.eps = 0.0}), Error);
  CHECK_THROWS_AS(optim::LARS({a}, {.trust_coefficient = 0.0}), Error);
}
}
