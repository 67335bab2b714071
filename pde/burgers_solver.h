// pde/burgers_solver.h — the classical reference for W3: u_t + (u^2 / 2)_x = visc u_xx on [0, 1],
// u = 0 at x = 0 and x = 1, by a conservative finite-volume scheme (Godunov flux, explicit
// viscous flux, CFL-limited forward-Euler sub-steps) on a finer grid, sampled onto the output grid.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"
#include "pde/sampler.h"

namespace dfx::pde {

struct BurgersOptions {
  double visc = 0.01;  // 0 allowed (inviscid)
  int refine = 4;      // fine cells per output cell; WORKLOADS.md asks for >= 4
  // dt = cfl / (max|u| / dx + 2 visc / dx^2): for cfl <= 1 every update is a convex combination
  // of old values, so the scheme is monotone (maximum principle, no new extrema).
  double cfl = 0.9;
  double t_end = 1.0;
};

struct BurgersResult {
  // [n, n] float64: row r at t_r = r t_end / (n - 1), column k at x_k = k / (n - 1). Row 0 is the
  // initial condition with the boundary values 0 imposed (b(1) != 0 for non-integer c).
  Tensor u;
  int64_t substeps = 0;
  double dx = 0.0;  // fine spacing
  // Fine-grid mass sum_i dx u_i at every output time, and the net flux that left through x = 0
  // and x = 1 up to then: mass[r] + outflow[r] == mass[0] up to rounding (conservation).
  std::vector<double> mass, outflow;
};

// Vertex-centred finite volumes: fine nodes x_i = i dx, dx = 1 / (refine (n - 1)), the output
// nodes being every refine-th fine node; control volume [x_i - dx/2, x_i + dx/2] for the interior
// nodes, u_0 = u_M = 0. u0 is sampled at the fine nodes.
BurgersResult solve_burgers(const std::function<double(double)>& u0, int64_t n,
                            const BurgersOptions& opts = {});

// W3 fields for b(x) = 1/2 (1 - cos(2 pi c x)), one per c: [B, 1, n, n] float64, samples in
// parallel.
Tensor solve_burgers_batch(const std::vector<double>& c, int64_t n,
                           const BurgersOptions& opts = {});
// The reference for sample indices (c from burgers_c(seed, sample, range)).
Tensor burgers_reference(int64_t n, uint64_t seed, const std::vector<uint64_t>& samples,
                         BurgersRange range = {}, const BurgersOptions& opts = {});

}  // namespace dfx::pde
