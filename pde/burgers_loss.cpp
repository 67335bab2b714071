// pde/burgers_loss.cpp — W3 loss from differentiable slices (narrow) and elementwise ops, so its
// gradients and HVPs come from the tape's own rules.
#include "pde/burgers_loss.h"

#include "autodiff/ops.h"

namespace dfx::pde {
using ad::Var;

BurgersResiduals burgers_residuals(const Var& u, const Tensor& b, double visc) {
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
  Var ux = ad::mul(ad::sub(east, west), 0.5 / dx);
  Var r = ad::add(ut, ad::mul(c, ux));
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
                              int64_t global_count) {
  BurgersResiduals r = burgers_residuals(u, b, visc);
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

}  // namespace dfx::pde
