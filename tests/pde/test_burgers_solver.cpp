// tests/pde/test_burgers_solver.cpp — the W3 reference solver against the Cole-Hopf solution of
// viscous Burgers for u0 = sin(pi x) (observed order of convergence over three grids), and an
// inviscid W3 run: maximum principle, exact conservation up to boundary fluxes, bounded variation.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <vector>

#include "pde/burgers_solver.h"
#include "pde/metrics.h"
#include "pde/sampler.h"

using namespace dfx;
using namespace dfx::pde;

namespace {

constexpr double kPi = std::numbers::pi;

// Cole-Hopf: u = -2 visc phi_x / phi with phi_t = visc phi_xx, phi_x = 0 at x = 0, 1, and
// phi(x, 0) = exp(-(1 - cos pi x) / (2 pi visc)) ~ exp(z cos pi x), z = 1 / (2 pi visc)
// = I_0(z) + 2 sum_n I_n(z) cos(n pi x), so
// u = 2 pi visc sum_n n a_n e^{-n^2 pi^2 visc t} sin(n pi x) / (a_0 + sum_n a_n e^{..} cos(n pi x))
// with a_0 = I_0(z), a_n = 2 I_n(z).
class ColeHopf {
 public:
  explicit ColeHopf(double visc, int terms = 60) : visc_(visc), a_(terms + 1) {
    const double z = 1.0 / (2.0 * kPi * visc);
    for (int k = 0; k <= terms; ++k) a_[k] = (k ? 2.0 : 1.0) * std::cyl_bessel_i(k, z);
  }
  double operator()(double x, double t) const {
    double num = 0, den = a_[0];
    for (size_t k = 1; k < a_.size(); ++k) {
      const double e = a_[k] * std::exp(-static_cast<double>(k * k) * kPi * kPi * visc_ * t);
      num += k * e * std::sin(k * kPi * x);
      den += e * std::cos(k * kPi * x);
    }
    return 2.0 * kPi * visc_ * num / den;
  }
  Tensor grid(int64_t n) const {
    Tensor t = Tensor::empty({n, n}, DType::Float64);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t k = 0; k < n; ++k)
        t.set({r, k}, (*this)(static_cast<double>(k) / (n - 1), static_cast<double>(r) / (n - 1)));
    return t;
  }

 private:
  double visc_;
  std::vector<double> a_;
};

double sine(double x) { return std::sin(kPi * x); }

}  // namespace

TEST_SUITE("pde") {

TEST_CASE("pde burgers: converges to the Cole-Hopf solution at first order or better") {
  const double visc = 0.1;
  const ColeHopf exact(visc);
  for (double x : {0.0, 0.3, 0.5, 0.9})
    CHECK(exact(x, 0.0) == doctest::Approx(sine(x)).epsilon(1e-12));
  BurgersOptions opts;
  opts.visc = visc;
  std::vector<double> err;
  std::printf("\n  Burgers vs Cole-Hopf, u0 = sin(pi x), visc = %.2f, refine %d\n", visc,
              opts.refine);
  std::printf("  %5s %10s %12s %8s\n", "N", "substeps", "rel L2 err", "order");
  for (int64_t n : {33, 65, 129}) {
    const BurgersResult r = solve_burgers(sine, n, opts);
    CHECK(r.u.shape() == Shape{n, n});
    err.push_back(relative_l2(r.u, exact.grid(n)));
    const double order = err.size() > 1 ? std::log2(err[err.size() - 2] / err.back()) : 0.0;
    std::printf("  %5lld %10lld %12.3e %8.2f\n", static_cast<long long>(n),
                static_cast<long long>(r.substeps), err.back(), order);
  }
  CHECK(err[0] < 2e-2);
  CHECK(std::log2(err[0] / err[1]) >= 0.8);
  CHECK(std::log2(err[1] / err[2]) >= 0.8);
}

TEST_CASE("pde burgers: inviscid W3 run obeys the maximum principle and conserves mass") {
  const double c = 2.5;
  const int64_t n = 65;
  BurgersOptions opts;
  opts.visc = 0.0;
  const auto b = [c](double x) { return burgers_initial_at(c, x); };
  const BurgersResult r = solve_burgers(b, n, opts);
  const std::vector<double> u = r.u.to_vector();
  CHECK(*std::min_element(u.begin(), u.end()) >= -1e-14);
  CHECK(*std::max_element(u.begin(), u.end()) <= 1.0 + 1e-14);
  REQUIRE(r.mass.size() == static_cast<size_t>(n));
  double tv_max = 0;
  for (int64_t row = 0; row < n; ++row) {
    // The scheme is conservative: what is missing left through the boundaries.
    CHECK(r.mass[row] + r.outflow[row] == doctest::Approx(r.mass[0]).epsilon(1e-12));
    if (row > 0) {
      CHECK(r.outflow[row] >= r.outflow[row - 1]);  // u >= 0: flux leaves at x = 1 only
      CHECK(r.mass[row] <= r.mass[row - 1] + 1e-15);
    }
    double tv = 0;
    for (int64_t k = 0; k + 1 < n; ++k) tv += std::abs(u[row * n + k + 1] - u[row * n + k]);
    tv_max = std::max(tv_max, tv);
    CHECK(u[row * n] == 0.0);
    CHECK(u[row * n + n - 1] == 0.0);
  }
  // b rises and falls five times between 0 and 1 (c = 2.5) and drops from 1 to 0 at x = 1.
  CHECK(tv_max <= 6.0 + 1e-9);
  // Shocks dissipate: the peaks decay, and mass has left through x = 1.
  const double peak_end = *std::max_element(u.end() - n, u.end());
  MESSAGE("inviscid c = 2.5: mass ", r.mass[0], " -> ", r.mass[n - 1], ", peak at t = 1: ",
          peak_end, ", ", r.substeps, " substeps");
  CHECK(peak_end < 0.8);
  CHECK(r.outflow[n - 1] > 0.01);
}

TEST_CASE("pde burgers: batches by c and by sample index match single solves") {
  BurgersOptions opts;  // W3 default visc 0.01
  const int64_t n = 33;
  const std::vector<uint64_t> samples = {4, kHeldOutStart + 1};
  const Tensor ref = burgers_reference(n, 9, samples, {}, opts);
  CHECK(ref.shape() == Shape{2, 1, n, n});
  for (int b = 0; b < 2; ++b) {
    const double c = burgers_c(9, samples[b]);
    const auto b0 = [c](double x) { return burgers_initial_at(c, x); };
    const BurgersResult one = solve_burgers(b0, n, opts);
    CHECK(ref.select(0, b).to_vector() == one.u.to_vector());
    const std::vector<double> v = one.u.to_vector();
    CHECK(*std::min_element(v.begin(), v.end()) >= -1e-14);
    CHECK(*std::max_element(v.begin(), v.end()) <= 1.0 + 1e-14);
    for (int64_t k = 1; k + 1 < n; ++k)
      CHECK(v[k] == doctest::Approx(burgers_initial_at(c, static_cast<double>(k) / (n - 1))));
  }
  CHECK(solve_burgers_batch({2.0, 3.0}, n, opts).select(0, 1).to_vector() ==
        solve_burgers([](double x) { return burgers_initial_at(3.0, x); }, n, opts).u.to_vector());
  BurgersOptions bad;
  bad.cfl = 1.5;
  CHECK_THROWS_AS(solve_burgers(sine, n, bad), Error);
  CHECK_THROWS_AS(solve_burgers_batch({}, n, opts), Error);
}

}  // TEST_SUITE
