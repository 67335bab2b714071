// tests/pde/test_problem.cpp — the problem registry (built-in names, a user's own problem) and
// the output-space curvature: Poisson's M K(nu) M against the tape's Hessian of the loss in u;
// Burgers' Gauss-Newton product against Jacobians by central differences (exact for its
// quadratic residual up to rounding).
#include <doctest/doctest.h>

#include "dfx.h"
#include "tests/tensor_diff.h"

using namespace dfx;

namespace {
using testing::max_abs_diff;
double dot(const Tensor& a, const Tensor& b) {
  const auto x = a.to_vector(), y = b.to_vector();
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}
double max_abs(const Tensor& a) {
  double m = 0;
  for (double x : a.to_vector()) m = std::max(m, std::abs(x));
  return m;
}
// a + s * b, a and b float64 of one shape.
Tensor axpy(const Tensor& a, double s, const Tensor& b) {
  auto x = a.to_vector();
  const auto y = b.to_vector();
  for (size_t i = 0; i < x.size(); ++i) x[i] += s * y[i];
  return from_vector<double>(x, a.shape());
}
}  // namespace

TEST_SUITE("pde") {
TEST_CASE("problems by name: the built-in three, a user's own, and a clear error otherwise") {
  auto names = pde::problem_names();
  REQUIRE(names.size() >= 3);
  CHECK(names[0] == "poisson2d");
  CHECK(names[1] == "poisson3d");
  CHECK(names[2] == "burgers");
  pde::register_problem("test-poisson-alias", "poisson2d under another name",
                        [](const pde::ProblemOptions& o) {
                          pde::ProblemOptions p = o;
                          p.name = "poisson2d";
                          return pde::make_problem(p);
                        });
  auto p = pde::make_problem({.name = "test-poisson-alias", .res = 8});
  CHECK(p->dims() == 2);
  CHECK(p->field_shape(3) == Shape{3, 1, 8, 8});
  try {
    pde::make_problem({.name = "heat", .res = 8});
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("unknown problem 'heat'; expected one of poisson2d") !=
          std::string::npos);
  }
}

TEST_CASE("Poisson curvature in output space is the tape's Hessian of the loss in u (2-d, 3-d)") {
  for (const char* name : {"poisson2d", "poisson3d"}) {
    CAPTURE(name);
    auto p = pde::make_problem({.name = name, .res = 6, .seed = 4});
    Tensor omega = p->input({2, 5, 7}, DType::Float64);
    Tensor u = uniform(omega.shape(), -1, 1, 11, 0, 0, DType::Float64);
    Tensor v = uniform(omega.shape(), -1, 1, 11, 1, 0, DType::Float64);
    Var uu(u, true);
    Tensor hv = ad::hvp([&] { return p->loss(uu, omega, 5); }, {uu}, {v})[0];
    Tensor cv = p->curvature(u, omega, 5)(v);
    CHECK(max_abs_diff(hv, cv) <= 1e-12 * (1 + max_abs(hv)));
    CHECK(dot(v, cv) > 0);  // positive on a field that is not zero inside
  }
}

TEST_CASE("Burgers curvature is the Gauss-Newton matrix 2 sum_k w_k J_k^T J_k of its residuals") {
  for (const char* scheme : {"central", "upwind"})
  for (double visc : {0.01, 0.0}) {
    CAPTURE(scheme);
    CAPTURE(visc);
    const pde::BurgersAdvection adv = pde::burgers_advection(scheme);
    auto p = pde::make_problem(
        {.name = "burgers", .res = 8, .seed = 2, .visc = visc, .advection = scheme});
    Tensor in = p->input({1, 4}, DType::Float64);
    Tensor u = uniform(in.shape(), -1, 1, 21, 0, 0, DType::Float64);
    Tensor v = uniform(in.shape(), -1, 1, 21, 1, 0, DType::Float64);
    Tensor w = uniform(in.shape(), -1, 1, 21, 2, 0, DType::Float64);
    const int64_t count = 3;
    auto G = p->curvature(u, in, count);
    Tensor gv = G(v), gw = G(w);
    // Symmetric and positive semi-definite.
    CHECK(std::abs(dot(w, gv) - dot(v, gw)) <= 1e-10 * std::abs(dot(w, gv)));
    CHECK(dot(v, gv) > 0);
    // <w, G v> = 2 sum_k weight_k <J_k w, J_k v>, J_k x by central differences.
    Tensor b = in.narrow(2, 0, 1);
    auto residuals = [&](const Tensor& x) {
      ad::NoGradGuard ng;
      pde::BurgersResiduals r = pde::burgers_residuals(Var(x), b, visc, adv);
      std::vector<Tensor> out = {r.interior.data()};
      for (const Var& k : r.boundary) out.push_back(k.data());
      return std::pair{out, r};
    };
    const double eps = 1e-3;
    auto jac = [&](const Tensor& x) {
      auto plus = residuals(axpy(u, eps, x)).first;
      auto minus = residuals(axpy(u, -eps, x)).first;
      std::vector<Tensor> j;
      for (size_t k = 0; k < plus.size(); ++k)
        j.push_back(kernels::mul(axpy(plus[k].contiguous(), -1.0, minus[k].contiguous()),
                                 full({}, 0.5 / eps, DType::Float64)));
      return j;
    };
    auto [r0, parts] = residuals(u);
    auto jv = jac(v), jw = jac(w);
    double expect = 2.0 / (parts.n_interior * count) * dot(jw[0], jv[0]);
    for (size_t k = 1; k < jv.size(); ++k)
      expect += 2.0 * 64.0 / (parts.n_boundary * count) * dot(jw[k], jv[k]);
    CHECK(dot(w, gv) == doctest::Approx(expect).epsilon(1e-8));
  }
}
// B = (count C(u))^-1 exactly: the backward and forward sweeps in t invert the Gauss-Newton
// matrix of the residuals (checked through the tape-built curvature above), and B is symmetric
// and positive definite. Moderate random u keeps R' well conditioned; N = 6 and 16.
TEST_CASE("Burgers preconditioner is the inverse of its Gauss-Newton matrix") {
  for (const char* scheme : {"central", "upwind"})
  for (double visc : {0.01, 0.0})
    for (int64_t res : {6, 16}) {
      CAPTURE(scheme);
      CAPTURE(visc);
      CAPTURE(res);
      auto p = pde::make_problem(
          {.name = "burgers", .res = res, .seed = 2, .visc = visc, .advection = scheme});
      Tensor in = p->input({1, 4}, DType::Float64);
      Tensor u = uniform(in.shape(), -0.5, 1, 23, 0, 0, DType::Float64);
      Tensor g = uniform(in.shape(), -1, 1, 23, 1, 0, DType::Float64);
      Tensor w = uniform(in.shape(), -1, 1, 23, 2, 0, DType::Float64);
      const int64_t count = 3;
      auto G = p->curvature(u, in, count);
      // The Problem refuses central without viscosity (below); the function itself is exact.
      const bool refused = visc == 0 && std::string(scheme) == "central";
      pde::OutputCurvature B = refused ? pde::OutputCurvature([&](const Tensor& v) {
        return pde::burgers_precondition(u, visc, 64.0, v, pde::burgers_advection(scheme));
      }) : p->preconditioner(u, in, 1);
      if (refused)
        CHECK_THROWS_WITH_AS(p->preconditioner(u, in, 1), doctest::Contains("--advection upwind"),
                             dfx::Error);
      Tensor bg = B(g), bw = B(w);
      Tensor back = kernels::mul(G(bg), full({}, static_cast<double>(count), DType::Float64));
      CHECK(max_abs(bg) > 0);
      CHECK(max_abs_diff(back, g) <= 1e-9 * max_abs(g));
      CHECK(std::abs(dot(w, bg) - dot(bw, g)) <= 1e-9 * std::abs(dot(w, bg)));
      CHECK(dot(g, bg) > 0);
      CHECK(dot(w, bw) > 0);
    }
  // A float32 batch comes back float32, and a wrong shape is refused by name.
  auto p = pde::make_problem({.name = "burgers", .res = 8});
  Tensor in = p->input({0}, DType::Float32);
  Tensor u = uniform(in.shape(), -0.5, 1, 24, 0, 0, DType::Float32);
  CHECK(p->preconditioner(u, in, 1)(u).dtype() == DType::Float32);
  CHECK_THROWS_WITH_AS(pde::burgers_precondition(u, 0.01, 64.0, u.narrow(3, 0, 4)),
                       doctest::Contains("burgers_precondition"), dfx::Error);
  CHECK_THROWS_WITH_AS(pde::make_problem({.name = "burgers", .advection = "upwnd"}),
                       doctest::Contains("expected central or upwind"), dfx::Error);
}
}

// K-FAC's draws: E[(v.r)(w.r)] = v^T C w over many draws for one field, the noise keyed by the
// sample key alone (a key draws the same wherever it sits in the batch).
TEST_CASE("curvature_sample draws r with covariance C(u): Poisson 2-d, 3-d and Burgers") {
  for (const char* name : {"poisson2d", "poisson3d", "burgers"}) {
    CAPTURE(name);
    const bool three = std::string(name) == "poisson3d";
    auto p = pde::make_problem({.name = name, .res = three ? 4 : 6, .seed = 4});
    const int64_t n = 20000, count = 5;
    Tensor one = p->input({3}, DType::Float64);
    Tensor u1 = uniform(one.shape(), -1, 1, 12, 0, 0, DType::Float64);
    Shape many_shape = one.shape();
    many_shape[0] = n;
    Tensor in = p->input(std::vector<uint64_t>(n, 3), DType::Float64);
    Tensor u = kernels::add(zeros(many_shape, DType::Float64), u1);  // u1 broadcast to n rows
    std::vector<uint64_t> keys(n);
    for (int64_t b = 0; b < n; ++b) keys[b] = 1000 + b;
    Tensor r = p->curvature_sample(u, in, count, keys);
    REQUIRE(r.shape() == many_shape);
    Tensor v = uniform(one.shape(), -1, 1, 13, 0, 0, DType::Float64);
    Tensor w = uniform(one.shape(), -1, 1, 13, 1, 0, DType::Float64);
    auto C = p->curvature(u1, one, count);
    const double vcv = dot(v, C(v)), wcw = dot(w, C(w)), vcw = dot(v, C(w));
    const auto rs = r.to_vector(), vs = v.to_vector(), ws = w.to_vector();
    const size_t m = vs.size();
    double evv = 0, eww = 0, evw = 0;
    for (int64_t b = 0; b < n; ++b) {
      double rv = 0, rw = 0;
      for (size_t i = 0; i < m; ++i) rv += rs[b * m + i] * vs[i], rw += rs[b * m + i] * ws[i];
      evv += rv * rv / n, eww += rw * rw / n, evw += rv * rw / n;
    }
    CAPTURE(vcv);
    CAPTURE(evv);
    CAPTURE(wcw);
    CAPTURE(eww);
    CAPTURE(vcw);
    CAPTURE(evw);
    // Standard errors at n = 20000: ~1 % of v^T C v.
    CHECK(std::abs(evv - vcv) < 0.04 * vcv);
    CHECK(std::abs(eww - wcw) < 0.04 * wcw);
    CHECK(std::abs(evw - vcw) < 0.04 * std::sqrt(vcv * wcw));
    // Key 1005 draws the same alone as at row 5 of the batch.
    Tensor alone = p->curvature_sample(u1, one, count, {1005});
    CHECK(max_abs_diff(alone, r.narrow(0, 5, 1)) <= 1e-12 * (1 + max_abs(alone)));
    CHECK(max_abs(alone) > 0);
    CHECK_THROWS_WITH_AS(p->curvature_sample(u1, one, count, {1, 2}),
                         doctest::Contains("expected one key per sample"), std::exception);
  }
}
