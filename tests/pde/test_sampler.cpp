// tests/pde/test_sampler.cpp — the W1/W2/W3 input fields: values recomputed here from
// philox_uniform and the WORKLOADS.md formulas, independence from batch composition and thread
// count, disjoint training / held-out indices, and the relative L2 metric.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <set>
#include <vector>

#include "core/rng.h"
#include "pde/metrics.h"
#include "pde/sampler.h"

using namespace dfx;
using namespace dfx::pde;

namespace {

constexpr double kPi = std::numbers::pi;

struct ThreadCount {
  int saved = omp_get_max_threads();
  ~ThreadCount() { omp_set_num_threads(saved); }
};

double xi(uint64_t seed, uint64_t s, uint64_t mode) {
  return std::sqrt(3.0) * (2.0 * philox_uniform(seed, s, mode) - 1.0);
}

// WORKLOADS.md W1, written out term by term.
double omega2(uint64_t seed, uint64_t s, double x, double y) {
  double w = 0;
  for (int i = 1; i <= 4; ++i)
    for (int j = 1; j <= 4; ++j)
      w += 4.0 * xi(seed, s, (i - 1) * 4 + (j - 1)) / (i * i + j * j) * std::cos(i * kPi * x) *
           std::cos(j * kPi * y);
  return w;
}

double omega3(uint64_t seed, uint64_t s, double x, double y, double z) {
  double w = 0;
  for (int i = 1; i <= 3; ++i)
    for (int j = 1; j <= 3; ++j)
      for (int k = 1; k <= 3; ++k)
        w += 4.0 * xi(seed, s, ((i - 1) * 3 + (j - 1)) * 3 + (k - 1)) / (i * i + j * j + k * k) *
             std::cos(i * kPi * x) * std::cos(j * kPi * y) * std::cos(k * kPi * z);
  return w;
}

// Sample b of a [B, 1, ...] tensor as a vector.
std::vector<double> sample(const Tensor& t, int64_t b) { return t.select(0, b).to_vector(); }

}  // namespace

TEST_SUITE("pde") {

TEST_CASE("pde sampler: W1 omega matches the formula at grid nodes (x last, y before it)") {
  const uint64_t seed = 1234;
  const std::vector<uint64_t> s = {0, 7, kHeldOutStart + 3};
  const int64_t n = 37;
  const Tensor om = omega_batch(2, n, seed, s, DType::Float64);
  CHECK(om.shape() == Shape{3, 1, n, n});
  for (int64_t b = 0; b < 3; ++b)
    for (auto [iy, ix] : {std::pair<int64_t, int64_t>{0, 0}, {0, 36}, {5, 11}, {36, 2}, {20, 29}}) {
      const double x = static_cast<double>(ix) / (n - 1), y = static_cast<double>(iy) / (n - 1);
      CHECK(om.get({b, 0, iy, ix}) == doctest::Approx(omega2(seed, s[b], x, y)).epsilon(1e-12));
      CHECK(omega_at(2, seed, s[b], x, y) ==
            doctest::Approx(omega2(seed, s[b], x, y)).epsilon(1e-12));
    }
  const Tensor nu = nu_batch(2, n, seed, s, DType::Float64);
  CHECK(nu.get({1, 0, 5, 11}) == doctest::Approx(std::exp(om.get({1, 0, 5, 11}))).epsilon(1e-14));
  // float32 is the float64 field rounded.
  const Tensor om32 = omega_batch(2, n, seed, s, DType::Float32);
  CHECK(om32.dtype() == DType::Float32);
  CHECK(om32.get({2, 0, 20, 29}) == static_cast<float>(om.get({2, 0, 20, 29})));
}

TEST_CASE("pde sampler: W2 omega matches the formula (z, y, x axes, x last)") {
  const uint64_t seed = 99;
  const int64_t n = 9;
  const Tensor om = omega_batch(3, n, seed, {4, 11}, DType::Float64);
  CHECK(om.shape() == Shape{2, 1, n, n, n});
  CHECK(omega_coefficients(3, seed, 4).size() == 27);
  for (int64_t b = 0; b < 2; ++b)
    for (auto [iz, iy, ix] : {std::array<int64_t, 3>{0, 0, 0}, {1, 2, 3}, {8, 0, 5}, {4, 7, 8}}) {
      const double h = 1.0 / (n - 1);
      CHECK(om.get({b, 0, iz, iy, ix}) ==
            doctest::Approx(omega3(seed, b ? 11 : 4, ix * h, iy * h, iz * h)).epsilon(1e-12));
    }
}

TEST_CASE("pde sampler: a sample is the same field whatever its batch and thread count") {
  ThreadCount restore;
  const uint64_t seed = 5;
  for (int dim : {2, 3}) {
    const int64_t n = dim == 2 ? 40 : 12;
    for (DType dt : {DType::Float32, DType::Float64}) {
      omp_set_num_threads(1);
      const Tensor alone = omega_batch(dim, n, seed, {17}, dt);
      omp_set_num_threads(2);
      const Tensor mixed = omega_batch(dim, n, seed, {3, 17, 900, 17}, dt);
      CHECK(sample(mixed, 1) == sample(alone, 0));
      CHECK(sample(mixed, 3) == sample(alone, 0));
      CHECK(sample(mixed, 0) != sample(alone, 0));
      omp_set_num_threads(1);
      CHECK(sample(omega_batch(dim, n, seed, {900, 3}, dt), 1) == sample(mixed, 0));
      // Another seed gives another field for the same index.
      CHECK(sample(omega_batch(dim, n, seed + 1, {17}, dt), 0) != sample(alone, 0));
    }
  }
}

TEST_CASE("pde sampler: xi is uniform on [-sqrt 3, sqrt 3) (mean 0, variance 1)") {
  double sum = 0, sum2 = 0, lo = 1e9, hi = -1e9;
  const int S = 2000;
  for (int s = 0; s < S; ++s)
    for (double v : omega_coefficients(2, 77, s)) {
      sum += v;
      sum2 += v * v;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  const double m = sum / (16.0 * S), var = sum2 / (16.0 * S) - m * m;
  CHECK(std::abs(m) < 0.03);
  CHECK(var == doctest::Approx(1.0).epsilon(0.03));
  CHECK(lo >= -std::sqrt(3.0));
  CHECK(hi < std::sqrt(3.0));
  CHECK(hi > 1.7);
}

TEST_CASE("pde sampler: training and held-out indices never overlap") {
  const auto train = train_indices(10000);
  const auto held = held_out_indices(64);
  CHECK(train.front() == 0);
  CHECK(train.back() == 9999);
  CHECK(held.front() == kHeldOutStart);
  std::set<uint64_t> all(train.begin(), train.end());
  for (uint64_t h : held) {
    CHECK(all.count(h) == 0);
    CHECK(is_held_out(h));
  }
  CHECK_FALSE(is_held_out(train.back()));
  CHECK_THROWS_AS(train_indices(kHeldOutStart + 1), Error);
  // Held-out fields are not training fields (different counters give different xi).
  CHECK(omega_coefficients(2, 1, held[0]) != omega_coefficients(2, 1, 0));
}

TEST_CASE("pde sampler: W3 initial condition and network input") {
  const uint64_t seed = 3;
  const std::vector<uint64_t> s = {0, 1, 2, kHeldOutStart};
  const int64_t n = 17;
  const Tensor b0 = burgers_initial(n, seed, s, {}, DType::Float64);
  const Tensor in = burgers_input(n, seed, s, {}, DType::Float32);
  CHECK(b0.shape() == Shape{4, n});
  CHECK(in.shape() == Shape{4, 1, n, n});
  for (int64_t b = 0; b < 4; ++b) {
    const double c = 1.0 + 3.0 * philox_uniform(seed, s[b], 0);
    CHECK(burgers_c(seed, s[b]) == c);
    CHECK(c >= 1.0);
    CHECK(c < 4.0);
    for (int64_t k : {0, 3, 16}) {
      const double x = static_cast<double>(k) / (n - 1);
      const double want = 0.5 * (1.0 - std::cos(2.0 * kPi * c * x));
      CHECK(b0.get({b, k}) == doctest::Approx(want).epsilon(1e-14));
      for (int64_t t : {0, 9, 16}) CHECK(in.get({b, 0, t, k}) == static_cast<float>(want));
    }
  }
  CHECK(burgers_c(seed, 5, {2.0, 2.0}) == 2.0);
  CHECK_THROWS_AS(burgers_c(seed, 5, {3.0, 2.0}), Error);
  CHECK_THROWS_AS(omega_batch(4, 8, 1, {0}), Error);
  CHECK_THROWS_AS(omega_batch(2, 1, 1, {0}), Error);
  CHECK_THROWS_AS(omega_batch(2, 8, 1, {}), Error);
}

TEST_CASE("pde metrics: relative L2 error per sample, mean and max") {
  const Tensor ref = from_vector<double>({3, 4, 0, 1, 0, 0}, {2, 3});
  const Tensor pred = from_vector<float>({3, 4, 1, 1, 0, 2}, {2, 3});
  const auto e = relative_l2_per_sample(pred, ref);
  REQUIRE(e.size() == 2);
  CHECK(e[0] == doctest::Approx(1.0 / 5.0));
  CHECK(e[1] == doctest::Approx(2.0));
  const ErrorSummary s = relative_l2_summary(pred, ref);
  CHECK(s.mean == doctest::Approx(1.1));
  CHECK(s.max == doctest::Approx(2.0));
  CHECK(relative_l2(pred, ref) == doctest::Approx(std::sqrt(5.0 / 26.0)));
  CHECK_THROWS_AS(relative_l2_per_sample(pred, ref.view({3, 2})), Error);
  CHECK_THROWS_AS(relative_l2_per_sample(pred, zeros({2, 3}, DType::Float64)), Error);
}

}  // TEST_SUITE
