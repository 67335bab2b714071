// pde/poisson_solver.h — the classical reference for W1/W2: the Q1 FEM solution of
// -div(nu grad u) = 0 with u = 1 at x = 0, u = 0 at x = 1 (x = the last axis), zero flux elsewhere,
// by matrix-free conjugate gradients on A(nu) = kernels::fem_apply, multigrid-preconditioned.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "pde/multigrid.h"

namespace dfx::pde {

enum class Preconditioner { None, Multigrid };

struct PoissonOptions {
  Preconditioner preconditioner = Preconditioner::Multigrid;
  double rtol = 1e-10;          // stop when ||r|| <= rtol ||b|| (2-norms over the free nodes)
  int max_iterations = 100000;  // plain CG needs O(N) iterations
  // Start from u = 1 - x (exact for constant nu) rather than from zero at the free nodes.
  bool linear_initial_guess = true;
  bool throw_if_not_converged = true;  // else stats.converged says so
  MultigridOptions multigrid;
};

struct PoissonStats {
  int iterations = 0;
  // ||b - A u|| / ||b|| over the free nodes, recomputed from u after the last iteration; b is
  // the right-hand side the Dirichlet values induce, -(A(nu) g) with g = 1 on x = 0, else 0.
  double relative_residual = 0.0;
  bool converged = false;
  double setup_seconds = 0.0;  // multigrid hierarchy (0 for plain CG)
  double solve_seconds = 0.0;  // the CG iterations
  std::string hierarchy;       // Multigrid::describe(), empty for plain CG
};

struct PoissonSolution {
  Tensor u;                         // float64, same shape as nu
  std::vector<PoissonStats> stats;  // one per sample
};

// nu: [H, W] or [D, H, W] for one field (3-d fields must be cubic, as fem_apply requires), or a
// batch [B, 1, H, W] / [B, 1, D, H, W]; any float dtype (solved in float64), CPU, all nu > 0.
// Samples are solved one after another, each with the threads of the kernels inside.
PoissonSolution solve_poisson(const Tensor& nu, const PoissonOptions& opts = {});

// z = B r with B ~ A(nu)^-1 on the free nodes: `cycles` multigrid V-cycles (the first from zero,
// each later one on the remaining residual r - A z), per sample of a batch nu, r [B, 1, *S]
// (float, CPU; z float64 of r's shape, zero at Dirichlet nodes, which r's are ignored at). B is
// symmetric positive definite and spectrally equivalent to A^-1 independently of N: the
// preconditioner of the energy gradient in training (pde::Problem::preconditioner).
Tensor multigrid_precondition(const Tensor& nu, const Tensor& r, int cycles = 1,
                              const MultigridOptions& opts = {});

}  // namespace dfx::pde
