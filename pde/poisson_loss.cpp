// pde/poisson_loss.cpp — W1/W2 loss from the differentiable Q1 stencils (autodiff/fem_ops.h).
#include "pde/poisson_loss.h"

#include "autodiff/fem_ops.h"
#include "autodiff/ops.h"
#include "core/copy.h"

namespace dfx::pde {

ad::Var apply_dirichlet_x(const ad::Var& u, double left, double right) {
  DFX_CHECK(u.dim() >= 3, "apply_dirichlet_x: expected [B, C, *S], got ", u.data().describe());
  const int64_t n = u.shape().back();
  DFX_CHECK(n >= 2, "apply_dirichlet_x: need at least 2 nodes along x, got ", u.data().describe());
  // mask zeroes the two boundary columns, lift puts the prescribed values there; both are
  // filled on u's device (no host copy inside a training step).
  Tensor mask = ones({n}, u.dtype(), u.device()), lift = zeros({n}, u.dtype(), u.device());
  for (int64_t i : {int64_t{0}, n - 1}) fill_(mask.narrow(0, i, 1), 0.0);
  fill_(lift.narrow(0, 0, 1), left);
  fill_(lift.narrow(0, n - 1, 1), right);
  return ad::add(ad::mul(u, ad::Var(mask)), ad::Var(lift));
}

ad::Var poisson_energies(const ad::Var& u, const Tensor& nu, double left, double right) {
  DFX_CHECK(u.shape() == nu.shape(), "poisson_energies: output ", u.data().describe(),
            " and coefficient ", nu.describe(), " must have the same shape");
  return ad::fem_energy(apply_dirichlet_x(u, left, right), ad::Var(nu));
}

ad::Var poisson_loss(const ad::Var& u, const Tensor& nu, int64_t global_count) {
  const int64_t count = global_count > 0 ? global_count : u.shape()[0];
  return ad::mul(ad::sum(poisson_energies(u, nu)), 1.0 / static_cast<double>(count));
}

}  // namespace dfx::pde
