// pde/multigrid.h — a geometric multigrid V-cycle for Q1 (9-point / 27-point) operators on node
// grids of any size, used as the SPD preconditioner of the Poisson reference solver. The finest
// operator is only ever seen through a callback, so the FEM operator is defined in one place.
//
// Design: each axis of n nodes coarsens to ceil((n + 1) / 2) nodes (every other node, the last
// node always kept, so the last coarse cell may be one fine cell wide); prolongation P is the
// tensor product of 1-d linear interpolations and restriction is exactly P^T; coarse operators are
// Galerkin products P^T A P, extracted by probing with 3^d colour classes (they stay 3^d-point
// stencils whatever the spacing); smoothing is damped Jacobi with weight 4 / (3 rho(D^-1 A)), the
// same number of sweeps before and after, and the coarsest level is solved by dense Cholesky, so
// the V-cycle is a fixed symmetric positive definite operator, as conjugate gradients needs.
// Dirichlet nodes are the first and last node along x (the last axis); the cycle works on the
// free nodes only (vectors hold zeros at Dirichlet nodes).
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace dfx::pde {

struct MultigridOptions {
  int smoothing_steps = 2;         // Jacobi sweeps before and after the coarse correction
  int64_t coarse_max_nodes = 800;  // stop coarsening once a level has at most this many nodes
};

class Multigrid {
 public:
  // out = A v on the fine grid for a v that is zero at Dirichlet nodes; out at Dirichlet nodes is
  // ignored. Arrays are row-major [nz, ny, nx] (nz = 1 in 2-d).
  using Operator = std::function<void(const double* v, double* out)>;

  // dim in {2, 3}; n = {nx, ny, nz} (nz = 1 for dim 2). Calls apply_fine 3^dim times.
  Multigrid(int dim, std::array<int64_t, 3> n, const Operator& apply_fine,
            MultigridOptions opts = {});
  ~Multigrid();
  Multigrid(Multigrid&&) noexcept;
  Multigrid& operator=(Multigrid&&) noexcept;

  // z = B r: one V-cycle from a zero initial guess. Dirichlet entries of r are ignored, those of
  // z are set to 0. r and z may not alias.
  void apply(const double* r, double* z);
  // out = A v with the fine-level stencil (the probed copy of apply_fine's operator, masked).
  void apply_fine_stencil(const double* v, double* out) const;

  int num_levels() const;
  std::string describe() const;  // e.g. "65x65 -> 33x33 -> 17x17 (dense, 255 free)"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dfx::pde
