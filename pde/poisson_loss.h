// pde/poisson_loss.h — the W1/W2 training loss: hard Dirichlet values on the x = 0 and x = 1
// faces, then the Q1 finite-element energy, averaged over the GLOBAL batch (loss integrity: the
// per-sample energies are summed and divided by the global sample count, on every rank).
#pragma once
#include "autodiff/var.h"

namespace dfx::pde {

// u with its first x-column (x = 0, last tensor axis index 0) set to `left` and its last
// (x = 1) set to `right`; differentiable (the boundary values carry zero gradient).
ad::Var apply_dirichlet_x(const ad::Var& u, double left = 1.0, double right = 0.0);

// Per-sample energies E(u_bc; nu) of a network output u [B, 1, *S] for coefficients nu = exp(omega).
ad::Var poisson_energies(const ad::Var& u, const Tensor& nu, double left = 1.0, double right = 0.0);

// sum_b E_b / global_count (global_count <= 0: the local batch size).
ad::Var poisson_loss(const ad::Var& u, const Tensor& nu, int64_t global_count = 0);

}  // namespace dfx::pde
