// tests/pde/test_poisson_solver.cpp — the W1/W2 reference solver against closed forms (nu
// constant: u = 1 - x; nu varying with x only: constant flux between x-nodes), the vanishing FEM
// gradient on random omega fields, the multigrid preconditioner's symmetry, and iteration counts.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/rng.h"
#include "kernels/fem.h"
#include "pde/multigrid.h"
#include "pde/poisson_solver.h"
#include "pde/sampler.h"

using namespace dfx;
using namespace dfx::pde;

namespace {

// nu(x) at the nodes, constant along y (and z): [1, 1, n, n] or [1, 1, n, n, n].
Tensor x_only_nu(int dim, int64_t n, double (*f)(double)) {
  Shape shape = {1, 1};
  for (int a = 0; a < dim; ++a) shape.push_back(n);
  Tensor t = Tensor::empty(shape, DType::Float64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = f(static_cast<double>(i % n) / (n - 1));
  return t;
}

double wiggly(double x) { return std::exp(1.5 * std::sin(7.0 * x) + 2.0 * x); }

// The exact Q1 solution for nu = nu(x): every cell between x-nodes m and m+1 has
// nu_c = (nu_m + nu_{m+1}) / 2 (the mean of its nodes), u is constant along y, and the discrete
// flux nu_c (u_m - u_{m+1}) is the same through every column of cells, so
// u_k = 1 - (sum_{m<k} 1/nu_c(m)) / (sum_m 1/nu_c(m)).
std::vector<double> x_only_exact(int64_t n, double (*f)(double)) {
  std::vector<double> resist(n - 1), u(n);
  double total = 0;
  for (int64_t m = 0; m + 1 < n; ++m) {
    const double nu_c = 0.5 * (f(static_cast<double>(m) / (n - 1)) +
                               f(static_cast<double>(m + 1) / (n - 1)));
    resist[m] = 1.0 / nu_c;
    total += resist[m];
  }
  double acc = 0;
  for (int64_t k = 0; k < n; ++k) {
    u[k] = 1.0 - acc / total;
    if (k + 1 < n) acc += resist[k];
  }
  return u;
}

// max over all nodes of |u - exact(x)|
double max_error_vs_x(const Tensor& u, const std::vector<double>& exact) {
  const int64_t n = static_cast<int64_t>(exact.size());
  const std::vector<double> v = u.to_vector();
  double e = 0;
  for (size_t i = 0; i < v.size(); ++i) e = std::max(e, std::abs(v[i] - exact[i % n]));
  return e;
}

std::vector<double> linear_exact(int64_t n) {
  std::vector<double> u(n);
  for (int64_t k = 0; k < n; ++k) u[k] = 1.0 - static_cast<double>(k) / (n - 1);
  return u;
}

// ||(A(nu) u)_F|| / ||(A(nu) g)_F|| per sample, with fem_apply (g: 1 on x = 0, else 0).
std::vector<double> gradient_ratio(const Tensor& nu, const Tensor& u) {
  const Tensor g_lift = zeros(u.shape(), DType::Float64);
  const int64_t nx = u.size(-1), B = u.size(0), S = u.numel() / B;
  double* gp = g_lift.data<double>();
  for (int64_t i = 0; i < g_lift.numel(); i += nx) gp[i] = 1.0;
  const std::vector<double> au = kernels::fem_apply(nu, u).to_vector();
  const std::vector<double> ag = kernels::fem_apply(nu, g_lift).to_vector();
  std::vector<double> ratio;
  for (int64_t b = 0; b < B; ++b) {
    double num = 0, den = 0;
    for (int64_t i = b * S; i < (b + 1) * S; ++i) {
      const int64_t x = i % nx;
      if (x == 0 || x == nx - 1) continue;
      num += au[i] * au[i];
      den += ag[i] * ag[i];
    }
    ratio.push_back(std::sqrt(num / den));
  }
  return ratio;
}

// nu = exp(omega), omega uniform in [-2 ln 10, 2 ln 10]: coefficients spanning four decades.
Tensor contrast_nu(const Shape& shape, uint64_t seed, uint64_t stream) {
  const Tensor omega = uniform(shape, -2 * std::log(10.0), 2 * std::log(10.0), seed, stream, 0,
                               DType::Float64);
  Tensor nu = empty_like(omega);
  for (int64_t i = 0; i < nu.numel(); ++i) nu.data<double>()[i] = std::exp(omega.data<double>()[i]);
  return nu;
}

}  // namespace

TEST_SUITE("pde") {

TEST_CASE("pde poisson: constant nu gives u = 1 - x in 2-d (any N, from a zero guess)") {
  PoissonOptions opts;
  opts.linear_initial_guess = false;
  for (int64_t n : {5, 33, 40, 64}) {
    CAPTURE(n);
    const Tensor nu = full({n, n}, 2.5, DType::Float64);
    const PoissonSolution sol = solve_poisson(nu, opts);
    CHECK(sol.u.shape() == nu.shape());
    REQUIRE(sol.stats.size() == 1);
    CHECK(sol.stats[0].converged);
    CHECK(sol.stats[0].relative_residual <= 1e-10);
    CHECK(max_error_vs_x(sol.u, linear_exact(n)) < 1e-9);
  }
  // With the default guess (u = 1 - x) the answer is there before the first iteration.
  const PoissonSolution sol = solve_poisson(full({1, 1, 17, 17}, 3.0, DType::Float32));
  CHECK(sol.stats[0].iterations == 0);
  CHECK(max_error_vs_x(sol.u, linear_exact(17)) < 1e-12);
}

TEST_CASE("pde poisson: nu varying with x only matches the exact discrete solution (2-d)") {
  for (int64_t n : {33, 64, 100}) {
    CAPTURE(n);
    const Tensor nu = x_only_nu(2, n, wiggly);
    const std::vector<double> exact = x_only_exact(n, wiggly);
    const PoissonSolution mg = solve_poisson(nu);
    CHECK(mg.stats[0].converged);
    CHECK(max_error_vs_x(mg.u, exact) < 1e-9);
    if (n == 33) {
      PoissonOptions plain;
      plain.preconditioner = Preconditioner::None;
      const PoissonSolution cg = solve_poisson(nu, plain);
      CHECK(max_error_vs_x(cg.u, exact) < 1e-9);
      CHECK(cg.stats[0].iterations > mg.stats[0].iterations);
    }
  }
}

TEST_CASE("pde poisson: A(nu) u vanishes at the free nodes for random W1 fields") {
  const Tensor nu = nu_batch(2, 48, 2024, {0, 1, kHeldOutStart}, DType::Float64);
  const PoissonSolution sol = solve_poisson(nu);
  CHECK(sol.u.shape() == nu.shape());
  for (double r : gradient_ratio(nu, sol.u)) CHECK(r < 1e-9);
  const std::vector<double> u = sol.u.to_vector();
  for (size_t i = 0; i < u.size(); ++i) {
    const int64_t x = static_cast<int64_t>(i % 48);
    if (x == 0) CHECK(u[i] == 1.0);
    if (x == 47) CHECK(u[i] == 0.0);
  }
  // Discrete maximum principle (the Q1 matrix is an M-matrix for these fields): 0 <= u <= 1.
  CHECK(*std::min_element(u.begin(), u.end()) >= -1e-12);
  CHECK(*std::max_element(u.begin(), u.end()) <= 1.0 + 1e-12);
  // A batch solves each sample on its own: sample 1 alone gives the same numbers.
  const PoissonSolution one = solve_poisson(nu.narrow(0, 1, 1));
  CHECK(one.u.select(0, 0).to_vector() == sol.u.select(0, 1).to_vector());
}

TEST_CASE("pde poisson: the multigrid V-cycle is a symmetric positive definite operator") {
  for (int dim : {2, 3}) {
    CAPTURE(dim);
    const int64_t n = dim == 2 ? 22 : 10;
    const Tensor nu = nu_batch(dim, n, 8, {3}, DType::Float64);
    const std::array<int64_t, 3> sizes = {n, n, dim == 3 ? n : 1};
    const int64_t S = nu.numel();
    Tensor in = zeros_like(nu);
    auto op = [&](const double* v, double* out) {
      std::copy(v, v + S, in.data<double>());
      const std::vector<double> r = kernels::fem_apply(nu, in).to_vector();
      std::copy(r.begin(), r.end(), out);
    };
    MultigridOptions mo;
    mo.coarse_max_nodes = 30;  // several levels even on these small grids
    Multigrid mg(dim, sizes, nu.data<double>(), mo);
    CHECK(mg.num_levels() >= 3);
    MESSAGE("hierarchy: ", mg.describe());
    std::vector<double> r1(S), r2(S), z1(S), z2(S), a(S), b(S);
    for (int64_t i = 0; i < S; ++i) {
      const bool free = i % n != 0 && i % n != n - 1;
      r1[i] = free ? philox_uniform(1, 0, i) - 0.5 : 0.0;
      r2[i] = free ? philox_uniform(1, 1, i) - 0.5 : 0.0;
    }
    mg.apply(r1.data(), z1.data());
    mg.apply(r2.data(), z2.data());
    double z1r2 = 0, r1z2 = 0, z1r1 = 0;
    for (int64_t i = 0; i < S; ++i) {
      z1r2 += z1[i] * r2[i];
      r1z2 += r1[i] * z2[i];
      z1r1 += z1[i] * r1[i];
    }
    CHECK(z1r2 == doctest::Approx(r1z2).epsilon(1e-12));
    CHECK(z1r1 > 0);
    // The assembled fine stencil is fem_apply's operator on the free nodes.
    op(r1.data(), a.data());
    mg.apply_fine_stencil(r1.data(), b.data());
    double diff = 0;
    for (int64_t i = 0; i < S; ++i)
      if (i % n != 0 && i % n != n - 1) diff = std::max(diff, std::abs(a[i] - b[i]));
    CHECK(diff < 1e-13);
  }
}

// The fine level is assembled from nu (pde/multigrid.cpp), not probed through fem_apply: every
// column A e_j of the assembled stencil must equal fem_apply's on the free nodes (rows and columns
// at Dirichlet nodes are zero), on coefficient fields spanning four decades, non-square in 2-d.
TEST_CASE("pde poisson: the assembled multigrid fine stencil equals fem_apply's matrix column by column") {
  struct Case {
    int dim;
    int64_t nx, ny, nz;
  };
  for (const Case c : {Case{2, 7, 5, 1}, Case{2, 6, 9, 1}, Case{3, 5, 5, 5}, Case{3, 6, 6, 6}}) {
    CAPTURE(c.dim);
    CAPTURE(c.nx);
    CAPTURE(c.ny);
    Shape shape = c.dim == 2 ? Shape{1, 1, c.ny, c.nx} : Shape{1, 1, c.nz, c.ny, c.nx};
    const Tensor nu = contrast_nu(shape, 31, c.nx);
    const int64_t S = nu.numel();
    Multigrid mg(c.dim, {c.nx, c.ny, c.nz}, nu.data<double>());
    auto free_node = [&](int64_t i) { return i % c.nx != 0 && i % c.nx != c.nx - 1; };
    std::vector<double> e(S), col(S);
    double worst = 0, scale = 0;
    for (int64_t j = 0; j < S; ++j) {
      std::fill(e.begin(), e.end(), 0.0);
      Tensor ej = zeros_like(nu);
      if (free_node(j)) {
        e[j] = 1.0;
        ej.data<double>()[j] = 1.0;
      }
      mg.apply_fine_stencil(e.data(), col.data());
      const std::vector<double> ref = kernels::fem_apply(nu, ej).to_vector();
      for (int64_t i = 0; i < S; ++i) {
        const double want = free_node(i) ? ref[i] : 0.0;
        scale = std::max(scale, std::abs(want));
        worst = std::max(worst, std::abs(col[i] - want));
      }
    }
    CHECK(scale > 0);
    CHECK(worst <= 1e-12 * scale);
  }
  CHECK_THROWS_AS(Multigrid(3, {5, 5, 6}, std::vector<double>(150, 1.0).data()), Error);
}

// Each coarse operator is computed directly (pde/multigrid.cpp), not probed: it must equal the
// dense P^T A P of the level above on the free nodes, with P built here from the documented design
// (per axis, coarse node I at fine node min(2 I, n - 1), linear in between), on high-contrast
// fields and odd and even sizes (an even n leaves a last coarse cell one fine cell wide).
TEST_CASE("pde poisson: every multigrid coarse operator equals the dense Galerkin product P^T A P") {
  struct Case {
    int dim;
    int64_t nx, ny, nz;
  };
  auto interp = [](int64_t nf) {  // dense [nf][nc]
    const int64_t nc = nf >= 3 ? nf / 2 + 1 : nf;
    std::vector<std::vector<double>> P(nf, std::vector<double>(nc, 0.0));
    for (int64_t I = 0; I < nc; ++I) {
      const int64_t a = std::min(2 * I, nf - 1);
      P[a][I] = 1.0;
      if (I + 1 == nc) continue;
      const int64_t b = std::min(2 * I + 2, nf - 1);
      for (int64_t k = a + 1; k < b; ++k) {
        P[k][I] = static_cast<double>(b - k) / static_cast<double>(b - a);
        P[k][I + 1] = static_cast<double>(k - a) / static_cast<double>(b - a);
      }
    }
    return P;
  };
  for (const Case c : {Case{2, 13, 10, 1}, Case{2, 12, 17, 1}, Case{3, 9, 9, 9}, Case{3, 8, 8, 8}}) {
    CAPTURE(c.dim);
    CAPTURE(c.nx);
    CAPTURE(c.ny);
    Shape shape = c.dim == 2 ? Shape{1, 1, c.ny, c.nx} : Shape{1, 1, c.nz, c.ny, c.nx};
    const Tensor nu = contrast_nu(shape, 37, c.nx);
    MultigridOptions mo;
    mo.coarse_max_nodes = c.dim == 2 ? 10 : 30;
    Multigrid mg(c.dim, {c.nx, c.ny, c.nz}, nu.data<double>(), mo);
    CHECK(mg.num_levels() >= 3);
    for (int l = 1; l < mg.num_levels(); ++l) {
      CAPTURE(l);
      const auto f = mg.level_shape(l - 1), g = mg.level_shape(l);
      const auto px = interp(f[0]), py = interp(f[1]);
      const auto pz = c.dim == 3 ? interp(f[2]) : std::vector<std::vector<double>>{{1.0}};
      REQUIRE(g == std::array<int64_t, 3>{static_cast<int64_t>(px[0].size()),
                                          static_cast<int64_t>(py[0].size()),
                                          static_cast<int64_t>(pz[0].size())});
      const int64_t FS = f[0] * f[1] * f[2], CS = g[0] * g[1] * g[2];
      // Dense fine operator by columns, and the dense prolongation [FS][CS].
      std::vector<double> A(FS * FS), e(FS), col(FS);
      for (int64_t j = 0; j < FS; ++j) {
        std::fill(e.begin(), e.end(), 0.0);
        if (j % f[0] != 0 && j % f[0] != f[0] - 1) e[j] = 1.0;
        mg.apply_level_stencil(l - 1, e.data(), col.data());
        for (int64_t i = 0; i < FS; ++i) A[i * FS + j] = col[i];
      }
      std::vector<double> P(FS * CS);
      for (int64_t i = 0; i < FS; ++i)
        for (int64_t J = 0; J < CS; ++J)
          P[i * CS + J] = pz[i / (f[0] * f[1])][J / (g[0] * g[1])] *
                          py[(i / f[0]) % f[1]][(J / g[0]) % g[1]] * px[i % f[0]][J % g[0]];
      std::vector<double> AP(FS * CS, 0.0), ec(CS), colc(CS);
      for (int64_t i = 0; i < FS; ++i)
        for (int64_t k = 0; k < FS; ++k)
          if (A[i * FS + k] != 0.0)
            for (int64_t J = 0; J < CS; ++J) AP[i * CS + J] += A[i * FS + k] * P[k * CS + J];
      double worst = 0, scale = 0;
      auto free_c = [&](int64_t I) { return I % g[0] != 0 && I % g[0] != g[0] - 1; };
      for (int64_t J = 0; J < CS; ++J) {
        std::fill(ec.begin(), ec.end(), 0.0);
        if (free_c(J)) ec[J] = 1.0;
        mg.apply_level_stencil(l, ec.data(), colc.data());
        for (int64_t I = 0; I < CS; ++I) {
          double want = 0.0;
          if (free_c(I) && free_c(J))
            for (int64_t i = 0; i < FS; ++i) want += P[i * CS + I] * AP[i * CS + J];
          scale = std::max(scale, std::abs(want));
          worst = std::max(worst, std::abs(colc[I] - want));
        }
      }
      CHECK(scale > 0);
      CHECK(worst <= 1e-12 * scale);
    }
  }
  CHECK_THROWS_WITH_AS(Multigrid(2, {9, 9, 1}, std::vector<double>(81, 1.0).data())
                           .apply_level_stencil(7, nullptr, nullptr),
                       doctest::Contains("level 7 out of range"), dfx::Error);
}

TEST_CASE("pde poisson: multigrid_precondition is a symmetric approximate inverse of A(nu) per sample") {
  for (int dim : {2, 3}) {
    CAPTURE(dim);
    const int64_t n = dim == 2 ? 33 : 17;
    // Two samples: each must use its own nu.
    const Tensor nu = nu_batch(dim, n, 5, {2, kHeldOutStart + 1}, DType::Float64);
    const int64_t S = nu.numel() / 2;
    auto random_r = [&](uint64_t stream) {
      std::vector<double> r(nu.numel());
      for (int64_t i = 0; i < nu.numel(); ++i) r[i] = philox_uniform(7, stream, i) - 0.5;
      return from_vector<double>(r, nu.shape());
    };
    auto free_node = [&](int64_t i) { return i % n != 0 && i % n != n - 1; };
    const Tensor r1 = random_r(0), r2 = random_r(1);
    const auto z1 = multigrid_precondition(nu, r1).to_vector();
    const auto z2 = multigrid_precondition(nu, r2).to_vector();
    const auto a1 = r1.to_vector(), a2 = r2.to_vector();
    double z1r2 = 0, r1z2 = 0, z1r1 = 0, dirichlet = 0;
    for (int64_t i = 0; i < nu.numel(); ++i) {
      if (!free_node(i)) {
        dirichlet = std::max(dirichlet, std::abs(z1[i]));
        continue;
      }
      z1r2 += z1[i] * a2[i];
      r1z2 += a1[i] * z2[i];
      z1r1 += z1[i] * a1[i];
    }
    CHECK(dirichlet == 0.0);
    CHECK(z1r2 == doctest::Approx(r1z2).epsilon(1e-11));
    CHECK(z1r1 > 0);
    // Residual ||r - A z|| / ||r|| over the free nodes: one V-cycle removes most of it, 25 solve.
    auto residual = [&](const Tensor& z) {
      const auto az = kernels::fem_apply(nu, z).to_vector();
      double num = 0, den = 0;
      for (int64_t i = 0; i < nu.numel(); ++i)
        if (free_node(i)) {
          num += (a1[i] - az[i]) * (a1[i] - az[i]);
          den += a1[i] * a1[i];
        }
      return std::sqrt(num / den);
    };
    const double one = residual(from_vector<double>(z1, nu.shape()));
    const double many = residual(multigrid_precondition(nu, r1, 25));
    MESSAGE("residual after 1 cycle ", one, ", after 25 ", many);
    CHECK(one < 0.5);
    CHECK(many < 1e-8);
    // Sample 1 alone gives the same as sample 1 of the batch.
    const Tensor z_alone = multigrid_precondition(nu.narrow(0, 1, 1).contiguous(), r1.narrow(0, 1, 1).contiguous());
    const auto za = z_alone.to_vector();
    double diff = 0;
    for (int64_t i = 0; i < S; ++i) diff = std::max(diff, std::abs(za[i] - z1[S + i]));
    CHECK(diff == 0.0);
  }
  // Samples are set up in parallel: an error in one (here sample 2's nu < 0) still reaches the
  // caller, naming what was wrong.
  {
    Tensor nu = nu_batch(2, 33, 5, {0, 1, 2, 3}, DType::Float64).contiguous();
    double* p = nu.data<double>();
    for (int64_t i = 2 * 33 * 33; i < 3 * 33 * 33; ++i) p[i] = -p[i];
    CHECK_THROWS_WITH_AS(multigrid_precondition(nu, kernels::fem_apply(nu, nu)),
                         doctest::Contains("non-positive or non-finite diagonal"), dfx::Error);
  }
  CHECK_THROWS_WITH_AS(multigrid_precondition(nu_batch(2, 9, 1, {0}, DType::Float64),
                                              zeros({1, 1, 9, 8}, DType::Float64)),
                       doctest::Contains("must be batches of fields of one shape"), dfx::Error);
}

TEST_CASE("pde poisson: multigrid-PCG iteration counts hardly grow with N (2-d)") {
  const uint64_t seed = 11, s = kHeldOutStart + 5;
  std::printf("\n  W1 field (seed %llu, sample 2^40+5), rtol 1e-10\n",
              static_cast<unsigned long long>(seed));
  std::printf("  %5s %8s %8s %10s %9s %9s  %s\n", "N", "PCG it", "CG it", "residual", "setup s",
              "solve s", "hierarchy");
  std::vector<int> its;
  for (int64_t n : {33, 65, 129, 257}) {
    const Tensor nu = nu_batch(2, n, seed, {s}, DType::Float64);
    const PoissonSolution sol = solve_poisson(nu);
    const PoissonStats& st = sol.stats[0];
    CHECK(st.converged);
    CHECK(gradient_ratio(nu, sol.u)[0] < 1e-9);
    int cg_it = -1;
    if (n <= 65) {
      PoissonOptions plain;
      plain.preconditioner = Preconditioner::None;
      const PoissonSolution cg = solve_poisson(nu, plain);
      cg_it = cg.stats[0].iterations;
      double e = 0;
      const auto a = cg.u.to_vector(), b = sol.u.to_vector();
      for (size_t i = 0; i < a.size(); ++i) e = std::max(e, std::abs(a[i] - b[i]));
      CHECK(e < 1e-8);
    }
    std::printf("  %5lld %8d %8d %10.2e %9.4f %9.4f  %s\n", static_cast<long long>(n),
                st.iterations, cg_it, st.relative_residual, st.setup_seconds, st.solve_seconds,
                st.hierarchy.c_str());
    its.push_back(st.iterations);
  }
  const int lo = *std::min_element(its.begin(), its.end());
  const int hi = *std::max_element(its.begin(), its.end());
  CHECK(hi <= 30);
  CHECK(hi - lo <= 4);
}

TEST_CASE("pde poisson: 3-d solver on N = 17 and 33 (constant, x-only and W2 fields)") {
  PoissonOptions zero_guess;
  zero_guess.linear_initial_guess = false;
  std::vector<int> its;
  for (int64_t n : {17, 33}) {
    CAPTURE(n);
    const PoissonSolution c = solve_poisson(full({n, n, n}, 0.7, DType::Float64), zero_guess);
    CHECK(c.u.shape() == Shape{n, n, n});
    CHECK(max_error_vs_x(c.u, linear_exact(n)) < 1e-9);
    const PoissonSolution w = solve_poisson(x_only_nu(3, n, wiggly));
    CHECK(max_error_vs_x(w.u, x_only_exact(n, wiggly)) < 1e-9);
    const Tensor nu = nu_batch(3, n, 6, {kHeldOutStart}, DType::Float64);
    const PoissonSolution r = solve_poisson(nu);
    CHECK(gradient_ratio(nu, r.u)[0] < 1e-9);
    MESSAGE("3-d N = ", n, ": W2 field ", r.stats[0].iterations, " PCG iterations (",
            r.stats[0].hierarchy, "), x-only ", w.stats[0].iterations, ", constant from zero ",
            c.stats[0].iterations);
    its.push_back(r.stats[0].iterations);
  }
  CHECK(std::abs(its[1] - its[0]) <= 4);
}

TEST_CASE("pde poisson: bad input is refused with a dfx::Error") {
  CHECK_THROWS_AS(solve_poisson(full({8}, 1.0, DType::Float64)), Error);
  CHECK_THROWS_AS(solve_poisson(full({2, 3, 8, 8}, 1.0, DType::Float64)), Error);
  CHECK_THROWS_AS(solve_poisson(full({4, 5, 6}, 1.0, DType::Float64)), Error);  // not cubic
  Tensor nu = full({8, 8}, 1.0, DType::Float64);
  nu.set({3, 4}, 0.0);
  CHECK_THROWS_AS(solve_poisson(nu), Error);
  PoissonOptions few;
  few.max_iterations = 1;
  few.linear_initial_guess = false;
  CHECK_THROWS_AS(solve_poisson(nu_batch(2, 33, 1, {0}, DType::Float64), few), Error);
  few.throw_if_not_converged = false;
  const PoissonSolution s = solve_poisson(nu_batch(2, 33, 1, {0}, DType::Float64), few);
  CHECK_FALSE(s.stats[0].converged);
  CHECK(s.stats[0].iterations == 1);
  // Two nodes along x: everything is Dirichlet, nothing to solve.
  const PoissonSolution tiny = solve_poisson(full({3, 2}, 1.0, DType::Float64));
  CHECK(tiny.u.to_vector() == std::vector<double>{1, 0, 1, 0, 1, 0});
}

}  // TEST_SUITE
