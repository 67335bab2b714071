// tests/pde/test_independent_fem.cpp — the reference solver against an independent solve of the
// same discretisation: the global Q1 stiffness matrix assembled here from WORKLOADS.md's element
// matrix (counter-clockwise node order, its own K), Dirichlet rows eliminated, and the dense
// system solved by Gaussian elimination with partial pivoting (tests/dense_solve.h). Shares no
// code with pde/ or kernels/fem beyond the sampled coefficient field.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "dfx.h"
#include "tests/dense_solve.h"

using namespace dfx;

namespace {

std::vector<double> dense_fem_solve(const Tensor& nu, int64_t n) {
  const double K[4][4] = {{4, -1, -2, -1}, {-1, 4, -1, -2}, {-2, -1, 4, -1}, {-1, -2, -1, 4}};
  const int64_t N = n * n;
  std::vector<double> A(N * N, 0.0), b(N, 0.0);
  auto id = [n](int64_t i, int64_t j) { return i * n + j; };  // row i = y, column j = x
  for (int64_t i = 0; i + 1 < n; ++i)
    for (int64_t j = 0; j + 1 < n; ++j) {
      const int64_t nodes[4] = {id(i, j), id(i, j + 1), id(i + 1, j + 1), id(i + 1, j)};
      double nc = 0;
      for (int64_t q : nodes) nc += nu.get({q / n, q % n}) / 4;
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) A[nodes[r] * N + nodes[c]] += nc * K[r][c] / 6.0;
    }
  // Dirichlet: u = 1 at x = 0, u = 0 at x = 1; identity rows, lifted right-hand side.
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j : {int64_t{0}, n - 1}) {
      const int64_t p = id(i, j);
      const double value = j == 0 ? 1.0 : 0.0;
      for (int64_t r = 0; r < N; ++r) {
        if (r == p) continue;
        b[r] -= A[r * N + p] * value;
        A[r * N + p] = 0;
      }
      for (int64_t c = 0; c < N; ++c) A[p * N + c] = 0;
      A[p * N + p] = 1;
      b[p] = value;
    }
  return testing::dense_solve(A, b);
}

}  // namespace

TEST_SUITE("pde") {
TEST_CASE("the multigrid-CG reference equals an independent dense FEM solve of W1") {
  const int64_t n = 16;
  for (uint64_t sample : {2ull, 7ull}) {
    CAPTURE(sample);
    Tensor nu = pde::nu_batch(2, n, 3, {sample}, DType::Float64).reshape({n, n});
    std::vector<double> ref = dense_fem_solve(nu, n);
    std::vector<double> got = pde::solve_poisson(nu).u.to_vector();
    double num = 0, den = 0;
    for (size_t k = 0; k < ref.size(); ++k) {
      num += (got[k] - ref[k]) * (got[k] - ref[k]);
      den += ref[k] * ref[k];
    }
    CHECK(std::sqrt(num / den) < 1e-9);
    // The field is far from the constant-coefficient solution 1 - x (a non-trivial check).
    double dev = 0;
    for (int64_t k = 0; k < n * n; ++k) dev = std::max(dev, std::abs(ref[k] - (1.0 - (k % n) / double(n - 1))));
    CHECK(dev > 0.02);
  }
}
}
