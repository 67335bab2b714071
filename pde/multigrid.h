// pde/multigrid.h — a geometric multigrid V-cycle for Q1 (9-point / 27-point) operators on node
// grids of any size, used as the SPD preconditioner of the Poisson reference solver and of the
// training direction. The finest operator is the Q1 FEM matrix A(nu), assembled from the nodal
// coefficient with kernels::q1_stiffness (the element matrix behind kernels::fem_apply), so the
// FEM operator is defined in one place; assembling costs one pass over the cells, where probing
// it through fem_apply cost 3^d applications.
//
// Design: each axis of n nodes coarsens to ceil((n + 1) / 2) nodes (every other node, the last
// node always kept, so the last coarse cell may be one fine cell wide); prolongation P is the
// tensor product of 1-d linear interpolations and restriction is exactly P^T; coarse operators are
// Galerkin products P^T A P, extracted by probing with 3^d colour classes (they stay 3^d-point
// stencils whatever the spacing; on a CPU the 3^d streaming passes beat a direct triple product
// per coarse node, measured in BENCHMARKS.md); smoothing is scaled l1-Jacobi (a local weight per
// node, convergent for any SPD operator, so no spectral radius is estimated), the same number of
// sweeps before and after, and the coarsest level is solved by Cholesky (within its band), so the
// V-cycle is a fixed symmetric positive definite operator, as conjugate gradients needs.
// Dirichlet nodes are the first and last node along x (the last axis); the cycle works on the
// free nodes only (vectors hold zeros at Dirichlet nodes).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace dfx::pde {

struct MultigridOptions {
  int smoothing_steps = 2;         // Jacobi sweeps before and after the coarse correction
  int64_t coarse_max_nodes = 800;  // stop coarsening once a level has at most this many nodes
};

class Multigrid {
 public:
  // dim in {2, 3}; n = {nx, ny, nz} (nz = 1 for dim 2; 3-d grids cubic, one spacing h as in
  // kernels::fem_apply); nu: the nodal coefficient, row-major [nz, ny, nx], > 0. The fine level
  // is A(nu) on the free nodes: A_ij = sum over the cells c holding i and j of nu_c K_e[a][b],
  // nu_c the mean of c's 2^d nodes (as in the loss).
  Multigrid(int dim, std::array<int64_t, 3> n, const double* nu, MultigridOptions opts = {});
  ~Multigrid();
  Multigrid(Multigrid&&) noexcept;
  Multigrid& operator=(Multigrid&&) noexcept;

  // z = B r: one V-cycle from a zero initial guess. Dirichlet entries of r are ignored, those of
  // z are set to 0. r and z may not alias.
  void apply(const double* r, double* z);
  // out = A v with the assembled fine-level stencil, for a v zero at Dirichlet nodes (out is 0
  // there). Arrays are row-major [nz, ny, nx].
  void apply_fine_stencil(const double* v, double* out) const;
  // The same on level l (0 = finest), with level_shape(l) = {nx, ny, nz}: for checking the
  // Galerkin products against P^T A P.
  void apply_level_stencil(int l, const double* v, double* out) const;
  std::array<int64_t, 3> level_shape(int l) const;

  int num_levels() const;
  // e.g. "65x65 -> 33x33 -> 17x17 (Cholesky of 255 free, band 16)"
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dfx::pde
