// tests/kernels/test_fem.cpp — the Q1 stencils against WORKLOADS.md's definition written out
// independently, against calculus (linear fields are exact), and their adjoint identities.
#include <doctest/doctest.h>

#include <cmath>

#include "dfx.h"
#include "kernels/fem.h"

using namespace dfx;

namespace {
double inner(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector(), y = b.to_vector();
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}

// W1's energy exactly as WORKLOADS.md states it (counter-clockwise node order, its K).
double w1_energy_reference(const Tensor& u, const Tensor& nu, int64_t b) {
  const double K[4][4] = {{4, -1, -2, -1}, {-1, 4, -1, -2}, {-2, -1, 4, -1}, {-1, -2, -1, 4}};
  const int64_t H = u.shape()[2], W = u.shape()[3];
  double e = 0;
  for (int64_t i = 0; i + 1 < H; ++i)
    for (int64_t j = 0; j + 1 < W; ++j) {
      const int64_t yi[4] = {i, i, i + 1, i + 1}, xj[4] = {j, j + 1, j + 1, j};
      double uc[4], nc = 0;
      for (int k = 0; k < 4; ++k) {
        uc[k] = u.get({b, 0, yi[k], xj[k]});
        nc += nu.get({b, 0, yi[k], xj[k]}) / 4;
      }
      double q = 0;
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) q += uc[r] * K[r][c] / 6.0 * uc[c];
      e += 0.5 * nc * q;
    }
  return e;
}
}  // namespace

TEST_SUITE("kernels") {
TEST_CASE("Q1 stiffness: 2-d matches WORKLOADS.md, rows sum to zero, 3-d scales with h") {
  Tensor K2 = kernels::q1_stiffness(2, 0.1);
  // Lexicographic order (0,0),(1,0),(0,1),(1,1): diagonal 4/6, x-neighbour -1/6, diagonal -2/6.
  CHECK(K2.get({0, 0}) == doctest::Approx(4.0 / 6));
  CHECK(K2.get({0, 1}) == doctest::Approx(-1.0 / 6));
  CHECK(K2.get({0, 2}) == doctest::Approx(-1.0 / 6));
  CHECK(K2.get({0, 3}) == doctest::Approx(-2.0 / 6));
  Tensor K3 = kernels::q1_stiffness(3, 0.5), K3u = kernels::q1_stiffness(3, 1.0);
  CHECK(K3u.get({0, 0}) == doctest::Approx(1.0 / 3));
  CHECK(K3u.get({0, 7}) == doctest::Approx(-1.0 / 12));
  for (int i = 0; i < 8; ++i) {
    double s = 0;
    for (int j = 0; j < 8; ++j) s += K3.get({i, j});
    CHECK(std::abs(s) < 1e-14);
    CHECK(K3.get({i, i}) == doctest::Approx(0.5 * K3u.get({i, i})));
  }
}

TEST_CASE("2-d energy equals WORKLOADS.md's formula on random fields, float32 and float64") {
  Tensor u = uniform({2, 1, 7, 9}, -1, 1, 3, 0, 0, DType::Float64);
  Tensor nu = uniform({2, 1, 7, 9}, 0.2, 3.0, 3, 1, 0, DType::Float64);
  Tensor e = kernels::fem_energy(u, nu);
  Tensor e32 = kernels::fem_energy(u.to(DType::Float32), nu.to(DType::Float32));
  for (int64_t b = 0; b < 2; ++b) {
    double ref = w1_energy_reference(u, nu, b);
    CHECK(e.get({b}) == doctest::Approx(ref).epsilon(1e-12));
    CHECK(e32.get({b}) == doctest::Approx(ref).epsilon(1e-5));
  }
}

TEST_CASE("linear fields are integrated exactly: E = nu/2 |grad u|^2 on the unit square/cube") {
  for (int d : {2, 3}) {
    const int64_t n = d == 2 ? 9 : 5;
    Shape s = d == 2 ? Shape{1, 1, n, n} : Shape{1, 1, n, n, n};
    Tensor x = linspace(0, 1, n, DType::Float64);
    Tensor u = (1.0 - ad::Var(x)).data().expand(s).contiguous();  // u = 1 - x along the last axis
    Tensor nu = full(s, 2.5, DType::Float64);
    CAPTURE(d);
    CHECK(kernels::fem_energy(u, nu).item() == doctest::Approx(0.5 * 2.5).epsilon(1e-12));
    // A(nu) u vanishes at interior nodes for a linear u (the discrete Laplacian is exact).
    Tensor au = kernels::fem_apply(nu, u);
    double interior = std::abs(d == 2 ? au.get({0, 0, n / 2, n / 2}) : au.get({0, 0, n / 2, n / 2, n / 2}));
    CHECK(interior < 1e-12);
  }
}

TEST_CASE("apply is the energy's gradient; bilinear and apply are adjoint; A is symmetric") {
  for (int d : {2, 3}) {
    CAPTURE(d);
    Shape s = d == 2 ? Shape{2, 1, 6, 5} : Shape{2, 1, 4, 4, 4};
    Tensor u = uniform(s, -1, 1, 11, 0, 0, DType::Float64);
    Tensor v = uniform(s, -1, 1, 11, 1, 0, DType::Float64);
    Tensor nu = uniform(s, 0.3, 2.0, 11, 2, 0, DType::Float64);
    Tensor au = kernels::fem_apply(nu, u), av = kernels::fem_apply(nu, v);
    CHECK(inner(v, au) == doctest::Approx(inner(u, av)).epsilon(1e-12));
    CHECK(inner(nu, kernels::fem_bilinear(u, v)) == doctest::Approx(inner(u, av)).epsilon(1e-12));
    // Energy = 1/2 <u, A u> summed over samples.
    Tensor e = kernels::fem_energy(u, nu);
    CHECK(e.get({0}) + e.get({1}) == doctest::Approx(0.5 * inner(u, au)).epsilon(1e-12));
    // Constants are in the null space (pure Neumann operator).
    Tensor one = ones(s, DType::Float64);
    for (double x : kernels::fem_apply(nu, one).to_vector()) CHECK(std::abs(x) < 1e-13);
  }
}

TEST_CASE("fem errors name the problem") {
  Tensor a = zeros({2, 1, 4, 4}), b = zeros({2, 1, 4, 5});
  CHECK_THROWS_WITH_AS(kernels::fem_apply(a, b), doctest::Contains("fem_apply"), Error);
  CHECK_THROWS_AS(kernels::fem_energy(zeros({2, 3, 4, 5, 6, 7}), zeros({2, 3, 4, 5, 6, 7})), Error);
}
}
