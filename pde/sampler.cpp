// pde/sampler.cpp — W1/W2 omega fields and W3 initial conditions. Fields are evaluated
// separably (a table of cos(m pi x_k) per axis, then sums over modes), in float64, each sample
// by the same sequence of operations whatever batch it sits in, so values never depend on it.
#include "pde/sampler.h"

#include <cmath>
#include <numbers>

#include "core/rng.h"

namespace dfx::pde {
namespace {

constexpr double kPi = std::numbers::pi;

void check_grid(const char* op, int64_t n, const std::vector<uint64_t>& samples, DType dtype) {
  DFX_CHECK(n >= 2, op, ": grid size n = ", n, " must be at least 2 (nodes x_k = k / (n - 1))");
  DFX_CHECK(!samples.empty(), op, ": the list of sample indices is empty");
  DFX_CHECK(dtype == DType::Float32 || dtype == DType::Float64, op, ": dtype ", dtype_name(dtype),
            " is not supported; expected float32 or float64");
}

// table[(m - 1) * n + k] = cos(m pi x_k), m = 1..modes.
std::vector<double> cos_table(int modes, int64_t n) {
  std::vector<double> t(static_cast<size_t>(modes * n));
  for (int m = 1; m <= modes; ++m)
    for (int64_t k = 0; k < n; ++k)
      t[(m - 1) * n + k] = std::cos(kPi * m * static_cast<double>(k) / static_cast<double>(n - 1));
  return t;
}

// Writes omega (or exp(omega)) of every sample into out, [B, n^dim] contiguous.
template <class T>
void fill_omega(int dim, int64_t n, uint64_t seed, const std::vector<uint64_t>& samples,
                bool exponentiate, T* out) {
  const int M = omega_modes(dim);
  const int64_t B = static_cast<int64_t>(samples.size());
  const std::vector<double> cs = cos_table(M, n);
  // g[b][q][x]: for each (y-mode[, z-mode]) pair q, the x-sum  sum_i a_{i,q} cos(i pi x).
  const int64_t Q = dim == 2 ? M : M * M;
  std::vector<double> g(static_cast<size_t>(B * Q * n));
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<double> xi = omega_coefficients(dim, seed, samples[b]);
    double* gb = g.data() + b * Q * n;
    for (int64_t q = 0; q < Q; ++q) {
      const int j = dim == 2 ? static_cast<int>(q) + 1 : static_cast<int>(q / M) + 1;
      const int k = dim == 2 ? 0 : static_cast<int>(q % M) + 1;
      for (int64_t x = 0; x < n; ++x) gb[q * n + x] = 0.0;
      for (int i = 1; i <= M; ++i) {
        const int mode = dim == 2 ? (i - 1) * M + (j - 1) : ((i - 1) * M + (j - 1)) * M + (k - 1);
        const double a = 4.0 * xi[mode] / static_cast<double>(i * i + j * j + k * k);
        for (int64_t x = 0; x < n; ++x) gb[q * n + x] += a * cs[(i - 1) * n + x];
      }
    }
  }
  // One row (fixed y[, z]) at a time: omega(x) = sum_q w_q g_q(x).
  const int64_t rows = dim == 2 ? n : n * n;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t y = r % n, z = r / n;
      double w[9];
      for (int64_t q = 0; q < Q; ++q) {
        if (dim == 2) w[q] = cs[q * n + y];
        else w[q] = cs[(q / M) * n + y] * cs[(q % M) * n + z];
      }
      const double* gb = g.data() + b * Q * n;
      T* o = out + (b * rows + r) * n;
      for (int64_t x = 0; x < n; ++x) {
        double s = 0.0;
        for (int64_t q = 0; q < Q; ++q) s += w[q] * gb[q * n + x];
        o[x] = static_cast<T>(exponentiate ? std::exp(s) : s);
      }
    }
  }
}

Tensor omega_or_nu(const char* op, int dim, int64_t n, uint64_t seed,
                   const std::vector<uint64_t>& samples, DType dtype, bool exponentiate) {
  omega_modes(dim);  // validates dim
  check_grid(op, n, samples, dtype);
  Shape shape = {static_cast<int64_t>(samples.size()), 1};
  for (int a = 0; a < dim; ++a) shape.push_back(n);
  Tensor t = Tensor::empty(shape, dtype);
  if (dtype == DType::Float32) fill_omega(dim, n, seed, samples, exponentiate, t.data<float>());
  else fill_omega(dim, n, seed, samples, exponentiate, t.data<double>());
  return t;
}

}  // namespace

std::vector<uint64_t> train_indices(uint64_t n_train) {
  DFX_CHECK(n_train <= kHeldOutStart, "train_indices: ", n_train,
            " training samples would reach the held-out range starting at 2^40");
  std::vector<uint64_t> v(n_train);
  for (uint64_t i = 0; i < n_train; ++i) v[i] = i;
  return v;
}

std::vector<uint64_t> held_out_indices(uint64_t n_held_out) {
  DFX_CHECK(n_held_out <= kHeldOutStart, "held_out_indices: ", n_held_out, " is too many");
  std::vector<uint64_t> v(n_held_out);
  for (uint64_t i = 0; i < n_held_out; ++i) v[i] = kHeldOutStart + i;
  return v;
}

bool is_held_out(uint64_t sample) { return sample >= kHeldOutStart; }

int omega_modes(int dim) {
  DFX_CHECK(dim == 2 || dim == 3, "omega_modes: dim = ", dim,
            " is not a workload; expected 2 (W1) or 3 (W2)");
  return dim == 2 ? 4 : 3;
}

std::vector<double> omega_coefficients(int dim, uint64_t seed, uint64_t sample) {
  const int M = omega_modes(dim);
  const int count = dim == 2 ? M * M : M * M * M;
  std::vector<double> xi(count);
  for (int m = 0; m < count; ++m)
    xi[m] = std::sqrt(3.0) * (2.0 * philox_uniform(seed, sample, static_cast<uint64_t>(m)) - 1.0);
  return xi;
}

double omega_at(int dim, uint64_t seed, uint64_t sample, double x, double y, double z) {
  const int M = omega_modes(dim);
  const std::vector<double> xi = omega_coefficients(dim, seed, sample);
  double s = 0.0;
  for (int i = 1; i <= M; ++i)
    for (int j = 1; j <= M; ++j) {
      if (dim == 2) {
        s += 4.0 * xi[(i - 1) * M + (j - 1)] / (i * i + j * j) * std::cos(i * kPi * x) *
             std::cos(j * kPi * y);
        continue;
      }
      for (int k = 1; k <= M; ++k)
        s += 4.0 * xi[((i - 1) * M + (j - 1)) * M + (k - 1)] / (i * i + j * j + k * k) *
             std::cos(i * kPi * x) * std::cos(j * kPi * y) * std::cos(k * kPi * z);
    }
  return s;
}

Tensor omega_batch(int dim, int64_t n, uint64_t seed, const std::vector<uint64_t>& samples,
                   DType dtype) {
  return omega_or_nu("omega_batch", dim, n, seed, samples, dtype, false);
}

Tensor nu_batch(int dim, int64_t n, uint64_t seed, const std::vector<uint64_t>& samples,
                DType dtype) {
  return omega_or_nu("nu_batch", dim, n, seed, samples, dtype, true);
}

double burgers_c(uint64_t seed, uint64_t sample, BurgersRange range) {
  DFX_CHECK(range.c_min <= range.c_max, "burgers_c: c_min = ", range.c_min, " exceeds c_max = ",
            range.c_max);
  return range.c_min + (range.c_max - range.c_min) * philox_uniform(seed, sample, 0);
}

double burgers_initial_at(double c, double x) { return 0.5 * (1.0 - std::cos(2.0 * kPi * c * x)); }

Tensor burgers_initial(int64_t n, uint64_t seed, const std::vector<uint64_t>& samples,
                       BurgersRange range, DType dtype) {
  check_grid("burgers_initial", n, samples, dtype);
  const int64_t B = static_cast<int64_t>(samples.size());
  std::vector<double> v(static_cast<size_t>(B * n));
  for (int64_t b = 0; b < B; ++b) {
    const double c = burgers_c(seed, samples[b], range);
    for (int64_t k = 0; k < n; ++k)
      v[b * n + k] = burgers_initial_at(c, static_cast<double>(k) / static_cast<double>(n - 1));
  }
  Tensor t = from_vector(v, {B, n});
  return dtype == DType::Float64 ? t : t.to(dtype);
}

Tensor burgers_input(int64_t n, uint64_t seed, const std::vector<uint64_t>& samples,
                     BurgersRange range, DType dtype) {
  const Tensor b = burgers_initial(n, seed, samples, range, dtype);
  const int64_t B = b.size(0);
  return b.view({B, 1, 1, n}).expand({B, 1, n, n}).contiguous();
}

}  // namespace dfx::pde
