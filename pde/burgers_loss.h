// pde/burgers_loss.h — the W3 training loss for u_t + u u_x = visc u_xx on [0,1] x [0,1]:
// the mean squared finite-difference residual over interior nodes plus boundary_factor times
// the mean squared mismatch on the initial row (u = b(x)) and the two x-boundaries (u = 0).
//
// Discretisation (our choice where W3 is silent): backward difference in t (causal, no odd-even
// decoupling in time), central differences in x for u_xx, on the N x N output grid (t along
// height). The advection term u u_x is either central, (u_{x+1} - u_{x-1}) u_x / (2 dx), whose
// minimiser is accurate for visc > 0 (1.45 % from the FV reference at N = 128, visc = 0.01) but
// oscillates without bound at shocks when visc = 0 (245 %), or upwind, the conservative
// difference (F_{x+1/2} - F_{x-1/2}) / dx of the Engquist-Osher flux
// F(a, b) = max(a, 0)^2 / 2 + min(b, 0)^2 / 2, which converges to the entropy solution
// (10 % at N = 128, 7.2 % at N = 256 inviscid; first order, so 3.1 % at N = 128 viscous).
#pragma once
#include <string>
#include <vector>

#include "autodiff/var.h"

namespace dfx::pde {

struct BurgersLossParts {
  ad::Var residual;  // sum over the batch of per-sample mean squared residuals
  ad::Var boundary;  // sum over the batch of per-sample mean squared boundary mismatch
  ad::Var total;     // (residual + boundary_factor * boundary) / global_count
};

// The residuals the loss squares: the interior residual [B, 1, N-1, N-2] and the initial row and
// two x-boundary mismatches, with the node counts the loss divides by. The loss is
// (|interior|^2 / n_interior + boundary_factor * sum |boundary_k|^2 / n_boundary) / global_count.
struct BurgersResiduals {
  ad::Var interior;
  std::vector<ad::Var> boundary;
  double n_interior = 1, n_boundary = 1;
};
enum class BurgersAdvection { Central, Upwind };
// "central" or "upwind"; anything else is refused by name.
BurgersAdvection burgers_advection(const std::string& name);

BurgersResiduals burgers_residuals(const ad::Var& u, const Tensor& b, double visc,
                                   BurgersAdvection advection = BurgersAdvection::Central);

// u [B, 1, N, N] network output, b [B, 1, 1, N] or [B, N] initial condition.
BurgersLossParts burgers_loss(const ad::Var& u, const Tensor& b, double visc,
                              double boundary_factor = 64.0, int64_t global_count = 0,
                              BurgersAdvection advection = BurgersAdvection::Central);

// z = B g with B = (2 R'^T W R')^-1, the inverse of the loss's Gauss-Newton matrix in output
// space without its 1 / count: R' the Jacobian of all N^2 residuals (initial row, the two
// x-boundaries, the interior) at u, W their weights in the loss. There are as many residuals as
// nodes and R' is block lower bidiagonal in t (backward Euler), so B g is one backward sweep in t
// with R'^T and one forward sweep with R', a tridiagonal solve per time row (partial pivoting):
// O(N^2) per sample. B g is the Newton step R'^-1 R of the implicit scheme the loss discretises,
// scaled like g. A sample whose R' is numerically singular (a non-finite sweep) gets z = g.
// u, g [B, 1, N, N] (R' does not depend on b); returns float64 CPU.
Tensor burgers_precondition(const Tensor& u, double visc, double boundary_factor, const Tensor& g,
                            BurgersAdvection advection = BurgersAdvection::Central);

}  // namespace dfx::pde
