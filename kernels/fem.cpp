// kernels/fem.cpp — Q1 element stiffness, shape checks and device dispatch for the FEM stencils.
#include "kernels/fem.h"

#include <cmath>
#include <map>
#include <mutex>

#include "config.h"
#include "kernels/backend.h"
#include "kernels/cpu/fem.h"
#if DFX_HAVE_CUDA
#include "kernels/cuda/fem.cuh"
#endif

namespace dfx::kernels {

Tensor q1_stiffness(int d, double h) {
  DFX_CHECK(d == 2 || d == 3, "q1_stiffness: dimension ", d, " not supported; expected 2 or 3");
  const int n = 1 << d;
  // Exact for these integrands: each factor is at most quadratic in each coordinate.
  const double gp[2] = {0.5 - 0.5 / std::sqrt(3.0), 0.5 + 0.5 / std::sqrt(3.0)};
  Tensor K = zeros({n, n}, DType::Float64);
  double* k = K.data<double>();
  const int nq = 1 << d;
  for (int q = 0; q < nq; ++q) {
    double xi[3] = {gp[q & 1], gp[(q >> 1) & 1], gp[(q >> 2) & 1]};
    const double w = 1.0 / nq;
    double grad[8][3];
    for (int a = 0; a < n; ++a)
      for (int dir = 0; dir < d; ++dir) {
        double g = 1;
        for (int e = 0; e < d; ++e) {
          const int bit = (a >> e) & 1;
          if (e == dir) g *= bit ? 1.0 : -1.0;
          else g *= bit ? xi[e] : 1.0 - xi[e];
        }
        grad[a][dir] = g;
      }
    for (int a = 0; a < n; ++a)
      for (int b = 0; b < n; ++b) {
        double s = 0;
        for (int dir = 0; dir < d; ++dir) s += grad[a][dir] * grad[b][dir];
        k[a * n + b] += w * s;
      }
  }
  // Gradients scale as 1/h and the cell volume as h^d.
  const double scale = std::pow(h, d - 2);
  for (int i = 0; i < n * n; ++i) k[i] *= scale;
  return K;
}

namespace {

// Spatial dims of a nodal field: [B, 1, *S] or [B, *S] with |S| in {2, 3}.
int field_dims(const Tensor& t, const char* op) {
  if ((t.dim() == 4 || t.dim() == 5) && t.shape()[1] == 1) return t.dim() - 2;
  if (t.dim() == 3) return 2;
  if (t.dim() == 4) return 3;
  DFX_FAIL(op, ": expected a nodal field [B, 1, H, W], [B, 1, D, H, W], [B, H, W] or "
           "[B, D, H, W], got ", t.describe());
}

Tensor stiffness_for(const Tensor& t, int d, const char* op) {
  const int64_t nx = t.shape()[t.dim() - 1];
  for (int a = 0; a < d; ++a) {
    const int64_t na = t.shape()[t.dim() - 1 - a];
    DFX_CHECK(na >= 2, op, ": every spatial size must be >= 2 nodes, got ", t.describe());
    DFX_CHECK(d == 2 || na == nx, op, ": 3-d fields must be cubic (equal h), got ", t.describe());
  }
  // One cached matrix per (d, n): the energy is called every step.
  static std::mutex mu;
  static std::map<std::pair<int, int64_t>, Tensor> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(d, d == 2 ? int64_t{0} : nx);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, q1_stiffness(d, 1.0 / static_cast<double>(nx - 1))).first;
  return it->second;
}

void check_pair(const Tensor& a, const Tensor& b, const char* op) {
  DFX_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype() && a.device() == b.device(), op,
            ": operands must match in shape, dtype and device, got ", a.describe(), " and ",
            b.describe());
  DFX_CHECK(is_floating(a.dtype()), op, ": expected float32 or float64, got ", a.describe());
  DFX_CHECK(a.device().is_cpu() || DFX_HAVE_CUDA, op, ": no CUDA kernel for ", a.describe(),
            " (dfx was built without CUDA)");
}

// Checks a pair of operands and returns the cached element matrix for their grid.
Tensor prepare(const Tensor& a, const Tensor& b, const char* op) {
  check_pair(a, b, op);
  return stiffness_for(a, field_dims(a, op), op);
}

}  // namespace

Tensor fem_energy(const Tensor& u, const Tensor& nu) {
  Tensor K = prepare(u, nu, "fem_energy");
  Tensor out = Tensor::empty({u.shape()[0]}, u.dtype(), u.device());
  DFX_BACKEND(u, fem_energy(u.contiguous(), nu.contiguous(), K, out));
  return out;
}

Tensor fem_apply(const Tensor& nu, const Tensor& u) {
  Tensor K = prepare(u, nu, "fem_apply");
  Tensor out = empty_like(u);
  DFX_BACKEND(u, fem_apply(nu.contiguous(), u.contiguous(), K, out));
  return out;
}

Tensor fem_bilinear(const Tensor& a, const Tensor& b) {
  Tensor K = prepare(a, b, "fem_bilinear");
  Tensor out = empty_like(a);
  DFX_BACKEND(a, fem_bilinear(a.contiguous(), b.contiguous(), K, out));
  return out;
}

}  // namespace dfx::kernels
