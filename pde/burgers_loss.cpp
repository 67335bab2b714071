// pde/burgers_loss.cpp — W3 loss from differentiable slices (narrow) and elementwise ops, so its
// gradients and HVPs come from the tape's own rules.
#include "pde/burgers_loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autodiff/ops.h"

namespace dfx::pde {
using ad::Var;

BurgersAdvection burgers_advection(const std::string& name) {
  if (name == "central") return BurgersAdvection::Central;
  if (name == "upwind") return BurgersAdvection::Upwind;
  DFX_FAIL("burgers: unknown advection scheme '", name, "', expected central or upwind");
}

BurgersResiduals burgers_residuals(const Var& u, const Tensor& b, double visc,
                                   BurgersAdvection advection) {
  DFX_CHECK(u.dim() == 4 && u.shape()[1] == 1 && u.shape()[2] == u.shape()[3],
            "burgers_loss: expected u [B, 1, N, N], got ", u.data().describe());
  const int64_t B = u.shape()[0], N = u.shape()[3];
  DFX_CHECK(N >= 4, "burgers_loss: need N >= 4, got ", N);
  DFX_CHECK(b.numel() == B * N, "burgers_loss: initial condition ", b.describe(),
            " does not hold B*N = ", B * N, " values");
  DFX_CHECK(visc >= 0, "burgers_loss: viscosity must be >= 0, got ", visc);
  const double dt = 1.0 / static_cast<double>(N - 1), dx = dt;
  // Interior in x (columns 1..N-2), time rows 1..N-1.
  auto at = [&](int64_t t0, int64_t x0) { return ad::narrow(ad::narrow(u, 2, t0, N - 1), 3, x0, N - 2); };
  Var c = at(1, 1), prev = at(0, 1), east = at(1, 2), west = at(1, 0);
  Var ut = ad::mul(ad::sub(c, prev), 1.0 / dt);
  Var r;
  if (advection == BurgersAdvection::Central) {
    Var ux = ad::mul(ad::sub(east, west), 0.5 / dx);
    r = ad::add(ut, ad::mul(c, ux));
  } else {
    // Engquist-Osher flux on the N - 1 faces of each row t >= 1; node x takes face x - face x-1.
    Var row = ad::narrow(u, 2, 1, N - 1);
    Var left = ad::narrow(row, 3, 0, N - 1), right = ad::narrow(row, 3, 1, N - 1);
    Var neg = ad::relu(ad::mul(right, -1.0));  // |min(b, 0)|
    Var flux = ad::mul(ad::add(ad::square(ad::relu(left)), ad::square(neg)), 0.5);
    r = ad::add(ut, ad::mul(ad::sub(ad::narrow(flux, 3, 1, N - 2), ad::narrow(flux, 3, 0, N - 2)),
                            1.0 / dx));
  }
  if (visc > 0) {
    Var uxx = ad::mul(ad::sub(ad::add(east, west), ad::mul(c, 2.0)), 1.0 / (dx * dx));
    r = ad::sub(r, ad::mul(uxx, visc));
  }
  BurgersResiduals out;
  out.interior = r;
  out.boundary = {ad::sub(ad::narrow(u, 2, 0, 1), Var(b.reshape({B, 1, 1, N}))),
                  ad::narrow(ad::narrow(u, 2, 1, N - 1), 3, 0, 1),
                  ad::narrow(ad::narrow(u, 2, 1, N - 1), 3, N - 1, 1)};
  out.n_interior = static_cast<double>((N - 1) * (N - 2));
  out.n_boundary = static_cast<double>(N + 2 * (N - 1));
  return out;
}

BurgersLossParts burgers_loss(const Var& u, const Tensor& b, double visc, double boundary_factor,
                              int64_t global_count, BurgersAdvection advection) {
  BurgersResiduals r = burgers_residuals(u, b, visc, advection);
  Var residual = ad::mul(ad::sum(ad::square(r.interior)), 1.0 / r.n_interior);
  Var boundary = ad::mul(ad::add(ad::sum(ad::square(r.boundary[0])),
                                 ad::add(ad::sum(ad::square(r.boundary[1])),
                                         ad::sum(ad::square(r.boundary[2])))),
                         1.0 / r.n_boundary);
  const int64_t count = global_count > 0 ? global_count : u.shape()[0];
  Var total = ad::mul(ad::add(residual, ad::mul(boundary, boundary_factor)),
                      1.0 / static_cast<double>(count));
  return {residual, boundary, total};
}

namespace {
// Solves the tridiagonal system (sub[i] x[i-1] + diag[i] x[i] + sup[i] x[i+1] = r[i]) in place
// in r, by Gaussian elimination with partial pivoting (row swaps put one fill-in on the second
// superdiagonal), as LAPACK's gtsv does; the inputs are left as they were.
void solve_tridiagonal(int64_t n, const double* sub, const double* diag, const double* sup,
                       double* r, std::vector<double>& work) {
  work.resize(3 * n);
  double *u0 = work.data(), *u1 = u0 + n, *u2 = u1 + n;
  double cd = diag[0], cu = n > 1 ? sup[0] : 0.0, cr = r[0];  // the current pivot row
  for (int64_t i = 0; i + 1 < n; ++i) {
    const double l = sub[i + 1], d = diag[i + 1], up = i + 2 < n ? sup[i + 1] : 0.0;
    const double rr = r[i + 1];
    if (std::abs(cd) >= std::abs(l)) {
      const double m = l / cd;
      u0[i] = cd, u1[i] = cu, u2[i] = 0.0, r[i] = cr;
      cd = d - m * cu, cu = up, cr = rr - m * cr;
    } else {
      const double m = cd / l;
      u0[i] = l, u1[i] = d, u2[i] = up, r[i] = rr;
      cd = cu - m * d, cu = -m * up, cr = cr - m * rr;
    }
  }
  u0[n - 1] = cd, r[n - 1] = cr;
  for (int64_t i = n - 1; i >= 0; --i) {
    double s = r[i];
    if (i + 1 < n) s -= u1[i] * r[i + 1];
    if (i + 2 < n) s -= u2[i] * r[i + 2];
    r[i] = s / u0[i];
  }
}
}  // namespace

Tensor burgers_precondition(const Tensor& u, double visc, double boundary_factor, const Tensor& g,
                            BurgersAdvection advection) {
  DFX_CHECK(u.dim() == 4 && u.shape()[1] == 1 && u.shape()[2] == u.shape()[3] && g.shape() == u.shape(),
            "burgers_precondition: expected u and g [B, 1, N, N] of one shape, got ", u.describe(),
            " and ", g.describe());
  const int64_t B = u.shape()[0], N = u.shape()[3];
  DFX_CHECK(N >= 4, "burgers_precondition: need N >= 4, got ", N);
  DFX_CHECK(boundary_factor > 0, "burgers_precondition: boundary_factor = ", boundary_factor,
            " must be > 0 (the boundary rows' weight is inverted)");
  const Tensor u64 = u.cpu().to(DType::Float64).contiguous(), g64 = g.cpu().to(DType::Float64).contiguous();
  Tensor z = g64.clone();
  const double h = 1.0 / static_cast<double>(N - 1);
  // The residual weights of the loss (burgers_loss, without 1 / count) and 1 / (2 w).
  const double n_int = static_cast<double>((N - 1) * (N - 2)), n_bnd = static_cast<double>(N + 2 * (N - 1));
  const double half_inv_w_int = 0.5 * n_int, half_inv_w_bnd = 0.5 * n_bnd / boundary_factor;
  const double k_t = 1.0 / h, k_c = 0.5 / h, k_v = visc / (h * h);
  const bool upwind = advection == BurgersAdvection::Upwind;
#pragma omp parallel for schedule(dynamic) if (B > 1)
  for (int64_t s = 0; s < B; ++s) {
    const double* us = u64.data<double>() + s * N * N;
    const double* gs = g64.data<double>() + s * N * N;
    double* zs = z.data<double>() + s * N * N;
    // D_t, the Jacobian of time row t's residuals in row t: identity rows at x = 0 and N - 1
    // (boundary residuals), d r_x / d u_{x-1}, u_x, u_{x+1} inside; the coupling to row t - 1 is
    // -1 / h on the interior nodes (none on the boundary nodes).
    std::vector<double> sub(N * N), diag(N * N), sup(N * N), work, rhs(N);
    for (int64_t t = 1; t < N; ++t) {
      double *l = sub.data() + t * N, *d = diag.data() + t * N, *p = sup.data() + t * N;
      const double* c = us + t * N;
      l[0] = p[0] = l[N - 1] = p[N - 1] = 0.0;
      d[0] = d[N - 1] = 1.0;
      for (int64_t x = 1; x + 1 < N; ++x) {
        if (upwind) {  // d/du of (F(c_x, c_{x+1}) - F(c_{x-1}, c_x)) / h, Engquist-Osher F
          l[x] = -std::max(c[x - 1], 0.0) * k_t - k_v;
          d[x] = k_t + std::abs(c[x]) * k_t + 2.0 * k_v;
          p[x] = std::min(c[x + 1], 0.0) * k_t - k_v;
        } else {
          l[x] = -k_c * c[x] - k_v;
          d[x] = k_t + k_c * (c[x + 1] - c[x - 1]) + 2.0 * k_v;
          p[x] = k_c * c[x] - k_v;
        }
      }
    }
    // y = R'^-T g, backward in t: D_t^T y_t = g_t + (1 / h) y_{t+1} on the interior nodes.
    std::vector<double> y(N * N), tsub(N), tsup(N);
    for (int64_t t = N - 1; t >= 1; --t) {
      for (int64_t x = 0; x < N; ++x) {
        rhs[x] = gs[t * N + x];
        if (t + 1 < N && x > 0 && x + 1 < N) rhs[x] += k_t * y[(t + 1) * N + x];
      }
      const double *l = sub.data() + t * N, *p = sup.data() + t * N;
      for (int64_t x = 0; x < N; ++x) {  // D^T: sub and super trade places, shifted by one
        tsub[x] = x > 0 ? p[x - 1] : 0.0;
        tsup[x] = x + 1 < N ? l[x + 1] : 0.0;
      }
      solve_tridiagonal(N, tsub.data(), diag.data() + t * N, tsup.data(), rhs.data(), work);
      std::copy(rhs.begin(), rhs.end(), y.begin() + t * N);
    }
    for (int64_t x = 0; x < N; ++x)
      y[x] = gs[x] + (x > 0 && x + 1 < N ? k_t * y[N + x] : 0.0);
    // R = W^-1 y / 2, then z = R'^-1 R forward in t: D_t z_t = R_t + (1 / h) z_{t-1} inside.
    bool finite = true;
    for (int64_t t = 0; t < N; ++t)
      for (int64_t x = 0; x < N; ++x) {
        const bool boundary = t == 0 || x == 0 || x == N - 1;
        y[t * N + x] *= boundary ? half_inv_w_bnd : half_inv_w_int;
      }
    std::vector<double> out(N * N);
    for (int64_t x = 0; x < N; ++x) out[x] = y[x];
    for (int64_t t = 1; t < N; ++t) {
      for (int64_t x = 0; x < N; ++x) {
        rhs[x] = y[t * N + x];
        if (x > 0 && x + 1 < N) rhs[x] += k_t * out[(t - 1) * N + x];
      }
      solve_tridiagonal(N, sub.data() + t * N, diag.data() + t * N, sup.data() + t * N,
                        rhs.data(), work);
      std::copy(rhs.begin(), rhs.end(), out.begin() + t * N);
    }
    for (double v : out) finite = finite && std::isfinite(v);
    if (finite) std::copy(out.begin(), out.end(), zs);
  }
  return z;
}

}  // namespace dfx::pde
