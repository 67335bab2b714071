// autodiff/fem_ops.h — differentiable Q1 finite-element stencils (kernels/fem.h): the energy
// behind the W1/W2 losses and the two operators its derivatives are made of. The three close
// under differentiation, so HVPs through the PDE loss are exact.
#pragma once
#include "autodiff/var.h"

namespace dfx::ad {

Var fem_energy(const Var& u, const Var& nu);    // [B] per-sample energies
Var fem_apply(const Var& nu, const Var& u);     // A(nu) u
Var fem_bilinear(const Var& a, const Var& b);   // the nu-gradient form

}  // namespace dfx::ad
