// tests/core/test_rng.cpp — Philox4x32-10 against the Random123 known answers, the
// (seed, stream, index) contract of the tensor factories, thread-count independence and moments.
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/rng.h"

using namespace dfx;

namespace {

struct Moments {
  double mean = 0, var = 0;
};

Moments moments(const std::vector<double>& v) {
  Moments m;
  for (double x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  for (double x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= static_cast<double>(v.size() - 1);
  return m;
}

// Restores the OpenMP thread count even when a check throws.
struct ThreadCount {
  int saved = omp_get_max_threads();
  ~ThreadCount() { omp_set_num_threads(saved); }
};

}  // namespace

TEST_SUITE("core") {

TEST_CASE("core rng: Philox4x32-10 matches the Random123 known-answer vectors") {
  using W = std::array<uint32_t, 4>;
  // kat_vectors: counter (4 words), key (2 words) -> output. Our counter is (index lo, index hi,
  // stream lo, stream hi) and our key is (seed lo, seed hi).
  CHECK(philox4x32(0, 0, 0) == W{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  CHECK(philox4x32(~0ull, ~0ull, ~0ull) == W{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  CHECK(philox4x32(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull) ==
        W{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST_CASE("core rng: scalar draws are pure functions of (seed, stream, index)") {
  CHECK(philox_uniform(7, 3, 11) == philox_uniform(7, 3, 11));
  CHECK(philox_uniform(7, 3, 11) != philox_uniform(7, 3, 12));
  CHECK(philox_uniform(7, 3, 11) != philox_uniform(7, 4, 11));
  CHECK(philox_uniform(7, 3, 11) != philox_uniform(8, 3, 11));
  // The 53-bit uniform is built from words 0 (low) and 1 (high).
  auto w = philox4x32(7, 3, 11);
  uint64_t bits = ((static_cast<uint64_t>(w[1]) << 32) | w[0]) >> 11;
  CHECK(philox_uniform(7, 3, 11) == std::ldexp(static_cast<double>(bits), -53));
  for (uint64_t i = 0; i < 1000; ++i) {
    double u = philox_uniform(1, 0, i), z = philox_normal(1, 0, i);
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    REQUIRE(std::isfinite(z));
  }
}

TEST_CASE("core rng: element i of rand/randn uses counter offset + i") {
  const uint64_t seed = 1234, stream = 5, offset = 1000;
  Tensor d = rand({7, 9}, seed, stream, offset, DType::Float64);
  CHECK(d.dtype() == DType::Float64);
  CHECK(d.shape() == Shape{7, 9});
  std::vector<double> v = d.to_vector();
  for (size_t i = 0; i < v.size(); ++i) REQUIRE(v[i] == philox_uniform(seed, stream, offset + i));
  Tensor f = rand({63}, seed, stream, offset);
  CHECK(f.dtype() == DType::Float32);
  for (int64_t i = 0; i < 63; ++i)
    REQUIRE(f.data<float>()[i] == static_cast<float>(philox_uniform(seed, stream, offset + i)));
  std::vector<double> n = randn({50}, seed, stream, offset, DType::Float64).to_vector();
  for (size_t i = 0; i < n.size(); ++i) REQUIRE(n[i] == philox_normal(seed, stream, offset + i));
  // A later offset continues the same sequence.
  std::vector<double> tail = rand({60}, seed, stream, offset + 3, DType::Float64).to_vector();
  CHECK(tail[0] == v[3]);
  CHECK(tail[59] == v[62]);
  CHECK(rand({0, 4}, seed).numel() == 0);
}

TEST_CASE("core rng: results do not depend on the OpenMP thread count") {
  ThreadCount restore;
  const Shape shape = {301, 1001};  // large enough for the threaded path
  omp_set_num_threads(1);
  std::vector<double> u1 = rand(shape, 99, 2, 17, DType::Float64).to_vector();
  std::vector<double> n1 = randn(shape, 99, 2, 17).to_vector();
  omp_set_num_threads(2);
  std::vector<double> u2 = rand(shape, 99, 2, 17, DType::Float64).to_vector();
  std::vector<double> n2 = randn(shape, 99, 2, 17).to_vector();
  CHECK(u1 == u2);
  CHECK(n1 == n2);
  CHECK(u1.back() == philox_uniform(99, 2, 17 + u1.size() - 1));
}

TEST_CASE("core rng: different streams and seeds give different values") {
  std::vector<double> a = rand({1000}, 42, 0, 0, DType::Float64).to_vector();
  std::vector<double> b = rand({1000}, 42, 1, 0, DType::Float64).to_vector();
  std::vector<double> c = rand({1000}, 43, 0, 0, DType::Float64).to_vector();
  std::vector<double> a2 = rand({1000}, 42, 0, 0, DType::Float64).to_vector();
  CHECK(a == a2);
  int same_ab = 0, same_ac = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    same_ab += a[i] == b[i];
    same_ac += a[i] == c[i];
  }
  CHECK(same_ab == 0);
  CHECK(same_ac == 0);
}

TEST_CASE("core rng: moments of 10^6 uniform and normal draws") {
  const double n = 1e6;
  std::vector<double> u = rand({1000000}, 2024, 0, 0, DType::Float64).to_vector();
  Moments mu = moments(u);
  // Standard errors: mean sqrt(1/12/n); variance sqrt((1/80 - 1/144)/n).
  CHECK(std::abs(mu.mean - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
  CHECK(std::abs(mu.var - 1.0 / 12) < 5 * std::sqrt((1.0 / 80 - 1.0 / 144) / n));
  int64_t below = 0;
  for (double x : u) below += x < 0.1;
  CHECK(std::abs(below / n - 0.1) < 5 * std::sqrt(0.1 * 0.9 / n));

  std::vector<double> z = randn({1000000}, 2024, 1, 0, DType::Float64).to_vector();
  Moments mz = moments(z);
  CHECK(std::abs(mz.mean) < 5 * std::sqrt(1.0 / n));
  CHECK(std::abs(mz.var - 1.0) < 5 * std::sqrt(2.0 / n));
  // The shape, not just two moments: P(|Z| < 1) = 0.682689..., P(Z > 2) = 0.0227501...
  int64_t within = 0, tail = 0;
  for (double x : z) {
    within += std::abs(x) < 1;
    tail += x > 2;
  }
  CHECK(std::abs(within / n - 0.6826895) < 5 * std::sqrt(0.6827 * 0.3173 / n));
  CHECK(std::abs(tail / n - 0.0227501) < 5 * std::sqrt(0.02275 * 0.97725 / n));

  Moments mf = moments(randn({1000000}, 7, 0, 0, DType::Float32).to_vector());
  CHECK(std::abs(mf.mean) < 5 * std::sqrt(1.0 / n));
  CHECK(std::abs(mf.var - 1.0) < 5 * std::sqrt(2.0 / n));
}

TEST_CASE("core rng: uniform(low, high) stays in [low, high)") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    std::vector<double> v = uniform({200000}, -3, 5, 11, 0, 0, dt).to_vector();
    double lo = v[0], hi = v[0], sum = 0;
    for (double x : v) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
      sum += x;
    }
    CHECK(lo >= -3);
    CHECK(hi < 5);
    CHECK(lo < -2.99);
    CHECK(hi > 4.99);
    CHECK(std::abs(sum / v.size() - 1.0) < 5 * 8 / std::sqrt(12.0 * v.size()));
  }
  Tensor u = uniform({10}, 2, 4, 3, 1, 5, DType::Float64);
  CHECK(u.get({4}) == 2 + 2 * philox_uniform(3, 1, 9));
  CHECK(uniform({4}, 1.5, 1.5, 3).to_vector() == std::vector<double>{1.5, 1.5, 1.5, 1.5});
  CHECK_THROWS_AS(uniform({4}, 2, 1, 3), Error);
}

TEST_CASE("core rng: only float dtypes are accepted") {
  try {
    rand({3}, 1, 0, 0, DType::Int64);
    FAIL("expected dfx::Error");
  } catch (const Error& e) {
    std::string msg = e.what();
    CHECK(msg.find("int64") != std::string::npos);
    CHECK(msg.find("float32 or float64") != std::string::npos);
  }
  CHECK_THROWS_AS(randn({3}, 1, 0, 0, DType::Bool), Error);
  CHECK_THROWS_AS(uniform({3}, 0, 1, 1, 0, 0, DType::Int64), Error);
}

}  // TEST_SUITE
