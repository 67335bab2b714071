// kernels/fem.h — Q1 finite-element stencils on uniform grids (2-d bilinear quads, 3-d trilinear
// hexahedra), the PDE kernels behind W1/W2's energy loss and the reference solver.
//
// Nodal fields are [B, 1, *S] (or [B, *S]); cell coefficient nu_c = mean of nu at the cell's
// 2^d nodes; K_e = element stiffness of -div(nu grad u) for a cell of side h = 1/(S_k - 1)
// (in 2-d K_e does not depend on h). Three operators close under differentiation:
//   energy(u, nu)[b] = 1/2 sum_c nu_c u_c^T K_e u_c                        (per sample)
//   apply(nu, u)     = A(nu) u,  (A(nu) u)_i = sum_{c ∋ i} nu_c (K_e u_c)_i  (the energy's u-gradient)
//   bilinear(a, b)_i = 2^-d sum_{c ∋ i} a_c^T K_e b_c                      (<nu, bilinear(a,b)> = <a, A(nu) b>)
// so d energy/du = A(nu) u, d energy/dnu = bilinear(u, u) / 2, and
// d<h, A(nu)u>/du = A(nu) h, /dnu = bilinear(h, u); d<h, bilinear(a,b)>/da = A(h) b, /db = A(h) a.
#pragma once
#include "core/tensor.h"

namespace dfx::kernels {

// The Q1 element stiffness matrix for spatial dimension d in {2, 3} on a cell of side h, local
// nodes in lexicographic order (x fastest: node k has offsets (k&1, (k>>1)&1, (k>>2)&1) along
// x, y, z). 2^d x 2^d, float64, computed once by exact Gauss quadrature.
Tensor q1_stiffness(int d, double h);

Tensor fem_energy(const Tensor& u, const Tensor& nu);    // -> [B]
Tensor fem_apply(const Tensor& nu, const Tensor& u);     // -> shape of u
Tensor fem_bilinear(const Tensor& a, const Tensor& b);   // -> shape of a

}  // namespace dfx::kernels
