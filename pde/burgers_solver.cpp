// pde/burgers_solver.cpp — Godunov finite volumes for viscous Burgers. One sample runs serially
// (the fine grid has only refine (n - 1) cells, too few to pay for a parallel region per
// sub-step); batches run samples in parallel.
#include "pde/burgers_solver.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <string>

namespace dfx::pde {
namespace {

// Exact Riemann flux of f(u) = u^2 / 2 (convex): max(f(max(ul, 0)), f(min(ur, 0))).
inline double godunov(double ul, double ur) {
  const double a = std::max(ul, 0.0), b = std::min(ur, 0.0);
  return 0.5 * std::max(a * a, b * b);
}

}  // namespace

BurgersResult solve_burgers(const std::function<double(double)>& u0, int64_t n,
                            const BurgersOptions& opts) {
  DFX_CHECK(n >= 2, "solve_burgers: output grid n = ", n, " must be at least 2");
  DFX_CHECK(opts.refine >= 1, "solve_burgers: refine = ", opts.refine, " must be at least 1");
  DFX_CHECK(opts.visc >= 0.0, "solve_burgers: visc = ", opts.visc, " must be >= 0");
  DFX_CHECK(opts.cfl > 0.0 && opts.cfl <= 1.0, "solve_burgers: cfl = ", opts.cfl,
            " must lie in (0, 1] for a monotone scheme");
  DFX_CHECK(opts.t_end > 0.0, "solve_burgers: t_end = ", opts.t_end, " must be positive");
  const int64_t M = opts.refine * (n - 1);  // fine cells; nodes 0..M
  const double dx = 1.0 / static_cast<double>(M);
  BurgersResult res;
  res.dx = dx;
  res.u = Tensor::empty({n, n}, DType::Float64);
  double* out = res.u.data<double>();

  std::vector<double> u(M + 1, 0.0), un(M + 1, 0.0), flux(M, 0.0);
  for (int64_t i = 1; i < M; ++i) {
    u[i] = u0(static_cast<double>(i) * dx);
    DFX_CHECK(std::isfinite(u[i]), "solve_burgers: the initial condition is not finite at x = ",
              static_cast<double>(i) * dx);
  }
  auto mass = [&] {
    double s = 0.0;
    for (int64_t i = 1; i < M; ++i) s += u[i];
    return s * dx;
  };
  auto record = [&](int64_t row, double outflow) {
    for (int64_t k = 0; k < n; ++k) out[row * n + k] = u[k * opts.refine];
    res.mass.push_back(mass());
    res.outflow.push_back(outflow);
  };

  double amax = 0.0;
  for (double v : u) amax = std::max(amax, std::abs(v));
  double t = 0.0, outflow = 0.0;
  record(0, 0.0);
  for (int64_t row = 1; row < n; ++row) {
    const double t_next = opts.t_end * static_cast<double>(row) / static_cast<double>(n - 1);
    while (t < t_next) {
      const double rate = amax / dx + 2.0 * opts.visc / (dx * dx);
      double dt = rate > 0.0 ? opts.cfl / rate : t_next - t;
      // Land exactly on the output time; a remainder under 1e-12 of a step is folded into this one.
      const bool last = t + dt >= t_next - 1e-12 * dt;
      if (last) dt = t_next - t;
      for (int64_t i = 0; i < M; ++i)
        flux[i] = godunov(u[i], u[i + 1]) - opts.visc * (u[i + 1] - u[i]) / dx;
      const double lambda = dt / dx;
      amax = 0.0;
      for (int64_t i = 1; i < M; ++i) {
        un[i] = u[i] - lambda * (flux[i] - flux[i - 1]);
        amax = std::max(amax, std::abs(un[i]));
      }
      outflow += dt * (flux[M - 1] - flux[0]);
      std::swap(u, un);
      t = last ? t_next : t + dt;
      ++res.substeps;
    }
    record(row, outflow);
  }
  return res;
}

Tensor solve_burgers_batch(const std::vector<double>& c, int64_t n, const BurgersOptions& opts) {
  DFX_CHECK(!c.empty(), "solve_burgers_batch: the list of c values is empty");
  DFX_CHECK(n >= 2, "solve_burgers_batch: output grid n = ", n, " must be at least 2");
  const int64_t B = static_cast<int64_t>(c.size());
  Tensor out = Tensor::empty({B, 1, n, n}, DType::Float64);
  double* po = out.data<double>();
  // Errors cannot leave an OpenMP region: keep the first message and throw it afterwards.
  std::string error;
#pragma omp parallel for schedule(dynamic)
  for (int64_t b = 0; b < B; ++b) {
    try {
      const double cb = c[b];
      const BurgersResult r =
          solve_burgers([cb](double x) { return burgers_initial_at(cb, x); }, n, opts);
      const double* pr = r.u.data<double>();
      std::copy(pr, pr + n * n, po + b * n * n);
    } catch (const std::exception& e) {
#pragma omp critical(dfx_pde_burgers_error)
      if (error.empty()) error = e.what();
    }
  }
  DFX_CHECK(error.empty(), error);
  return out;
}

Tensor burgers_reference(int64_t n, uint64_t seed, const std::vector<uint64_t>& samples,
                         BurgersRange range, const BurgersOptions& opts) {
  std::vector<double> c;
  for (uint64_t s : samples) c.push_back(burgers_c(seed, s, range));
  return solve_burgers_batch(c, n, opts);
}

}  // namespace dfx::pde
