// pde/poisson_solver.cpp — preconditioned conjugate gradients on the free nodes of the Q1 system.
// The operator is kernels::fem_apply on the full grid with Dirichlet entries of the search
// direction held at zero (so it acts as A_FF); the multigrid hierarchy assembles the same
// operator from nu (pde/multigrid.h), which the tests check against fem_apply.
#include "pde/poisson_solver.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <optional>

#include "kernels/fem.h"

namespace dfx::pde {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Sums in fixed chunks, then the chunks in order: the same bits whatever the thread count.
double dot(const std::vector<double>& a, const std::vector<double>& b) {
  constexpr int64_t kChunk = 8192;
  const int64_t n = static_cast<int64_t>(a.size());
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(chunks, 0.0);
#pragma omp parallel for schedule(static) if (n >= 65536)
  for (int64_t c = 0; c < chunks; ++c) {
    double s = 0.0;
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i) s += a[i] * b[i];
    part[c] = s;
  }
  double s = 0.0;
  for (double p : part) s += p;
  return s;
}

// y += alpha x
void axpy(std::vector<double>& y, double alpha, const std::vector<double>& x) {
  const int64_t n = static_cast<int64_t>(y.size());
#pragma omp parallel for schedule(static) if (n >= 65536)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// A(nu) through kernels::fem_apply on one sample [1, 1, *S]; rows of Dirichlet nodes zeroed.
class FemOperator {
 public:
  FemOperator(const Tensor& nu, int64_t nx) : nu_(nu), in_(zeros_like(nu)), nx_(nx) {}
  int64_t size() const { return nu_.numel(); }
  bool is_free(int64_t i) const {
    const int64_t x = i % nx_;
    return x != 0 && x != nx_ - 1;
  }
  void apply(const double* v, double* out) const {
    std::copy(v, v + size(), in_.data<double>());
    const Tensor r = kernels::fem_apply(nu_, in_);
    const double* rp = r.data<double>();
    const int64_t n = size();
    for (int64_t i = 0; i < n; ++i) out[i] = is_free(i) ? rp[i] : 0.0;
  }

 private:
  Tensor nu_, in_;
  int64_t nx_;
};

struct SampleResult {
  std::vector<double> u;
  PoissonStats stats;
};

SampleResult solve_sample(const Tensor& nu, int dim, const PoissonOptions& opts) {
  const int64_t nx = nu.size(-1), ny = nu.size(-2), nz = dim == 3 ? nu.size(-3) : 1;
  const FemOperator A(nu, nx);
  const int64_t S = A.size();
  SampleResult res;
  PoissonStats& st = res.stats;
  std::vector<double>& u = res.u;
  u.assign(S, 0.0);
  // The Dirichlet lifting g (1 on x = 0) gives the right-hand side b = -(A g)_F.
  for (int64_t i = 0; i < S; i += nx) u[i] = 1.0;
  std::vector<double> r(S), z(S), p(S), q(S);
  A.apply(u.data(), q.data());
  const double b_norm = std::sqrt(dot(q, q));
  if (opts.linear_initial_guess)
    for (int64_t i = 0; i < S; ++i)
      if (A.is_free(i)) u[i] = 1.0 - static_cast<double>(i % nx) / static_cast<double>(nx - 1);

  auto true_residual = [&] {  // r = -(A u)_F, returns ||r|| / ||b||
    A.apply(u.data(), r.data());
    for (double& e : r) e = -e;
    return b_norm > 0.0 ? std::sqrt(dot(r, r)) / b_norm : 0.0;
  };
  st.relative_residual = true_residual();
  if (st.relative_residual <= opts.rtol) {  // includes nx == 2 (no free nodes)
    st.converged = true;
    return res;
  }

  std::optional<Multigrid> mg;
  auto t0 = Clock::now();
  if (opts.preconditioner == Preconditioner::Multigrid) {
    mg.emplace(dim, std::array<int64_t, 3>{nx, ny, nz}, nu.data<double>(), opts.multigrid);
    st.hierarchy = mg->describe();
  }
  st.setup_seconds = seconds_since(t0);
  t0 = Clock::now();

  const double tol = opts.rtol * b_norm;
  // Restarts from the true residual if the recursively updated one drifted below tolerance
  // while the true one did not (rounding); normally the outer loop runs once.
  while (st.iterations < opts.max_iterations) {
    if (mg) mg->apply(r.data(), z.data());
    else z = r;
    p = z;
    double rz = dot(r, z);
    while (st.iterations < opts.max_iterations) {
      A.apply(p.data(), q.data());
      const double pq = dot(p, q);
      DFX_CHECK(pq > 0.0, "solve_poisson: p^T A p = ", pq, " at iteration ", st.iterations,
                "; the operator is not positive definite (is nu > 0 everywhere?)");
      const double alpha = rz / pq;
      axpy(u, alpha, p);
      axpy(r, -alpha, q);
      ++st.iterations;
      if (std::sqrt(dot(r, r)) <= tol) break;
      if (mg) mg->apply(r.data(), z.data());
      else z = r;
      const double rz_new = dot(r, z);
      const double beta = rz_new / rz;
      rz = rz_new;
      const int64_t n = S;
#pragma omp parallel for schedule(static) if (n >= 65536)
      for (int64_t i = 0; i < n; ++i) p[i] = z[i] + beta * p[i];
    }
    st.relative_residual = true_residual();
    if (st.relative_residual <= opts.rtol) {
      st.converged = true;
      break;
    }
  }
  st.solve_seconds = seconds_since(t0);
  return res;
}

}  // namespace

PoissonSolution solve_poisson(const Tensor& nu, const PoissonOptions& opts) {
  const int nd = nu.dim();
  const bool batched = (nd == 4 || nd == 5) && nu.size(1) == 1;
  DFX_CHECK(nd == 2 || nd == 3 || batched, "solve_poisson: nu ", nu.describe(),
            " is not a field; expected [H, W], [D, H, W], [B, 1, H, W] or [B, 1, D, H, W]");
  DFX_CHECK(is_floating(nu.dtype()) && nu.device().is_cpu(), "solve_poisson: nu ",
            nu.describe(), " must be a floating-point CPU tensor");
  DFX_CHECK(opts.rtol > 0.0, "solve_poisson: rtol = ", opts.rtol, " must be positive");
  const int dim = batched ? nd - 2 : nd;
  const int64_t B = batched ? nu.size(0) : 1;
  Shape sample_shape = {1, 1};
  for (int a = nd - dim; a < nd; ++a) {
    DFX_CHECK(nu.size(a) >= 2, "solve_poisson: nu ", nu.describe(),
              " needs at least 2 nodes along every spatial axis");
    sample_shape.push_back(nu.size(a));
  }
  if (dim == 3)
    DFX_CHECK(nu.size(-1) == nu.size(-2) && nu.size(-1) == nu.size(-3), "solve_poisson: 3-d nu ",
              nu.describe(), " must be cubic (the Q1 stencil assumes one spacing h)");

  const Tensor nu64 = nu.to(DType::Float64).contiguous();
  {
    const double* p = nu64.data<double>();
    for (int64_t i = 0; i < nu64.numel(); ++i)
      DFX_CHECK(p[i] > 0.0 && std::isfinite(p[i]), "solve_poisson: nu ", nu.describe(),
                " has the value ", p[i], " at flat index ", i, "; expected finite nu > 0");
  }
  const int64_t S = shape_numel(sample_shape);
  PoissonSolution sol;
  sol.u = Tensor::empty(nu.shape(), DType::Float64);
  double* out = sol.u.data<double>();
  for (int64_t b = 0; b < B; ++b) {
    const Tensor nu_b = nu64.reshape({B * S}).narrow(0, b * S, S).view(sample_shape);
    SampleResult r = solve_sample(nu_b, dim, opts);
    DFX_CHECK(r.stats.converged || !opts.throw_if_not_converged, "solve_poisson: sample ", b,
              " of ", nu.describe(), " did not converge: relative residual ",
              r.stats.relative_residual, " > rtol ", opts.rtol, " after ", r.stats.iterations,
              " iterations");
    std::copy(r.u.begin(), r.u.end(), out + b * S);
    sol.stats.push_back(std::move(r.stats));
  }
  return sol;
}

Tensor multigrid_precondition(const Tensor& nu, const Tensor& r, int cycles,
                              const MultigridOptions& opts) {
  const int nd = nu.dim();
  DFX_CHECK((nd == 4 || nd == 5) && nu.size(1) == 1 && nu.shape() == r.shape(),
            "multigrid_precondition: nu ", nu.describe(), " and r ", r.describe(),
            " must be batches of fields of one shape, [B, 1, H, W] or [B, 1, D, H, W]");
  DFX_CHECK(cycles >= 1, "multigrid_precondition: cycles must be >= 1, got ", cycles);
  DFX_CHECK(nu.device().is_cpu() && r.device().is_cpu(), "multigrid_precondition: CPU tensors expected");
  const int dim = nd - 2;
  const int64_t B = nu.size(0), nx = nu.size(-1), ny = nu.size(-2), nz = dim == 3 ? nu.size(-3) : 1;
  const int64_t S = nx * ny * nz;
  Shape sample_shape = nu.shape();
  sample_shape[0] = 1;
  const Tensor nu64 = nu.to(DType::Float64).contiguous(), r64 = r.to(DType::Float64).contiguous();
  Tensor z = zeros(r.shape(), DType::Float64);
  if (nx <= 2) return z;  // no free nodes
  // Samples in parallel, each hierarchy built and cycled by one thread (the loops inside then run
  // serially): the setup's serial parts (the probes' fills, the coarse Cholesky) otherwise leave
  // threads idle, and it is most of the cost (BENCHMARKS.md). Every sample's arithmetic is the
  // same whichever thread runs it, so the bits do not change.
  std::vector<std::exception_ptr> errors(static_cast<size_t>(B));
#pragma omp parallel for schedule(dynamic, 1) if (B > 1 && S >= 1024)
  for (int64_t b = 0; b < B; ++b) {
    try {
      std::vector<double> res(S), dz(S), az(S);
      const Tensor nu_b = nu64.reshape({B * S}).narrow(0, b * S, S).view(sample_shape);
      const FemOperator A(nu_b, nx);
      Multigrid mg(dim, {nx, ny, nz}, nu_b.data<double>(), opts);
      const double* rb = r64.data<double>() + b * S;
      double* zb = z.data<double>() + b * S;
      for (int64_t i = 0; i < S; ++i) res[i] = A.is_free(i) ? rb[i] : 0.0;
      for (int c = 0; c < cycles; ++c) {
        if (c > 0) {
          A.apply(zb, az.data());
          for (int64_t i = 0; i < S; ++i) res[i] = A.is_free(i) ? rb[i] - az[i] : 0.0;
        }
        mg.apply(res.data(), dz.data());
        for (int64_t i = 0; i < S; ++i) zb[i] += dz[i];
      }
    } catch (...) {  // an exception may not leave an OpenMP region
      errors[static_cast<size_t>(b)] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  return z;
}

}  // namespace dfx::pde
