// pde/sampler.h — the input fields of the canonical workloads (shared/WORKLOADS.md): W1/W2 log-
// diffusivity fields omega = log nu and W3 Burgers initial conditions, each a pure function of
// (seed, sample index), so any process or thread draws the same sample for the same index.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace dfx::pde {

// ---- sample indices ----
// Held-out samples are drawn from indices starting at 2^40, so no training index below that can
// ever coincide with one (a training set would need 10^12 samples to reach them).
constexpr uint64_t kHeldOutStart = uint64_t{1} << 40;

std::vector<uint64_t> train_indices(uint64_t n_train);           // 0, 1, ..., n_train - 1
std::vector<uint64_t> held_out_indices(uint64_t n_held_out);     // kHeldOutStart + 0, 1, ...
bool is_held_out(uint64_t sample);

// ---- W1 (dim 2) and W2 (dim 3): omega = log nu ----
// omega = sum over modes 4 xi / |m|^2 prod_a cos(m_a pi x_a), m_a in 1..M (M = 4 in 2-d, 3 in 3-d),
// xi ~ U[-sqrt 3, sqrt 3) = sqrt 3 (2 philox_uniform(seed, sample, mode) - 1).
// Mode numbers, x-frequency i, y-frequency j, z-frequency k (all from 1):
//   2-d: mode = (i - 1) * 4 + (j - 1);   3-d: mode = ((i - 1) * 3 + (j - 1)) * 3 + (k - 1).
int omega_modes(int dim);  // M: 4 for dim 2, 3 for dim 3; throws otherwise
// xi of every mode of one sample, indexed by mode number (M^dim values).
std::vector<double> omega_coefficients(int dim, uint64_t seed, uint64_t sample);
// omega at one point (x, y[, z]) in [0, 1]^dim; pointwise and slow, for tests and probes.
double omega_at(int dim, uint64_t seed, uint64_t sample, double x, double y, double z = 0.0);

// omega on the n^dim node grid x_k = k / (n - 1), x along the last axis, y the one before, z the
// first spatial axis: [B, 1, n, n] (dim 2) or [B, 1, n, n, n] (dim 3), one row of the batch per
// entry of `samples`, float32 or float64, computed in float64, parallel over samples and rows.
Tensor omega_batch(int dim, int64_t n, uint64_t seed, const std::vector<uint64_t>& samples,
                   DType dtype = DType::Float32);
// nu = exp(omega), same layout (the coefficient the FEM loss and the reference solver take).
Tensor nu_batch(int dim, int64_t n, uint64_t seed, const std::vector<uint64_t>& samples,
                DType dtype = DType::Float32);

// ---- W3: Burgers initial conditions b(x) = 1/2 (1 - cos(2 pi c x)) ----
struct BurgersRange {
  double c_min = 1.0;
  double c_max = 4.0;
};
// c = c_min + (c_max - c_min) * philox_uniform(seed, sample, 0).
double burgers_c(uint64_t seed, uint64_t sample, BurgersRange range = {});
double burgers_initial_at(double c, double x);
// b at x_k = k / (n - 1): [B, n].
Tensor burgers_initial(int64_t n, uint64_t seed, const std::vector<uint64_t>& samples,
                       BurgersRange range = {}, DType dtype = DType::Float32);
// The network input: b broadcast along t (the height axis), [B, 1, n, n], contiguous.
Tensor burgers_input(int64_t n, uint64_t seed, const std::vector<uint64_t>& samples,
                     BurgersRange range = {}, DType dtype = DType::Float32);

}  // namespace dfx::pde
