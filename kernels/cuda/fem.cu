// kernels/cuda/fem.cu — Q1 stencils on the GPU, the same formulation as kernels/cpu/fem.cpp.
// apply and bilinear are node-centric gathers: one thread per output node sums over the (up to
// 2^d) cells that touch it, skipping cells outside the grid (the boundary handling), so no two
// threads write one node and no atomics are needed. The energy is cell-centric: fixed chunks of
// cells per block (warp-shuffle tree), then one thread per sample adds its chunks in order; all
// sums are float64 and bitwise reproducible for a given shape.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/fem.cuh"

namespace dfx::kernels::cuda {
namespace {

// The grid and element matrix, passed by value (about 700 bytes of kernel parameters).
template <int D>
struct Grid {
  static constexpr int kNodes = 1 << D;
  int64_t B = 0;
  int64_t n[3] = {1, 1, 1};       // nodes along x, y, z (x = last tensor axis)
  int64_t stride[3] = {0, 0, 0};  // element strides along x, y, z
  int64_t plane = 0;              // nodes per sample
  int64_t cells = 0;              // cells per sample
  int64_t local[8] = {};          // offset of cell-local node k from the cell origin
  double K[8][8] = {};
};

template <int D>
Grid<D> make_grid(const Tensor& t, const Tensor& k) {
  Grid<D> g;
  g.B = t.shape()[0];
  for (int a = 0; a < D; ++a) g.n[a] = t.shape()[t.dim() - 1 - a];
  int64_t s = 1, cells = 1;
  for (int a = 0; a < D; ++a) {
    g.stride[a] = s;
    s *= g.n[a];
    cells *= g.n[a] - 1;
  }
  g.plane = s;
  g.cells = cells;
  for (int kk = 0; kk < Grid<D>::kNodes; ++kk) {
    g.local[kk] = 0;
    for (int a = 0; a < D; ++a) g.local[kk] += ((kk >> a) & 1) * g.stride[a];
  }
  Tensor kc = k.cpu().to(DType::Float64).contiguous();
  const double* kp = kc.data<double>();
  for (int i = 0; i < Grid<D>::kNodes; ++i)
    for (int j = 0; j < Grid<D>::kNodes; ++j) g.K[i][j] = kp[i * Grid<D>::kNodes + j];
  return g;
}

template <int D, class T>
__device__ __forceinline__ double cell_mean(const Grid<D>& g, const T* f, int64_t origin) {
  double s = 0;
#pragma unroll
  for (int k = 0; k < Grid<D>::kNodes; ++k) s += static_cast<double>(f[origin + g.local[k]]);
  return s / Grid<D>::kNodes;
}

// uc^T K vc for the cell at `origin`.
template <int D, class T>
__device__ __forceinline__ double cell_form(const Grid<D>& g, const T* a, const T* b,
                                            int64_t origin) {
  constexpr int N = Grid<D>::kNodes;
  double ac[N], bc[N];
#pragma unroll
  for (int k = 0; k < N; ++k) {
    ac[k] = static_cast<double>(a[origin + g.local[k]]);
    bc[k] = static_cast<double>(b[origin + g.local[k]]);
  }
  double q = 0;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    double ki = 0;
#pragma unroll
    for (int j = 0; j < N; ++j) ki += g.K[i][j] * bc[j];
    q += ac[i] * ki;
  }
  return q;
}

// Calls f(origin, local index of the node) for every in-grid cell touching node c, in the CPU's
// order (local index k ascending).
template <int D, class F>
__device__ __forceinline__ void for_cells_of(const Grid<D>& g, const int64_t c[3], F&& f) {
#pragma unroll
  for (int kk = 0; kk < Grid<D>::kNodes; ++kk) {
    int64_t origin = 0;
    bool ok = true;
#pragma unroll
    for (int a = 0; a < D; ++a) {
      const int64_t o = c[a] - ((kk >> a) & 1);
      ok = ok && o >= 0 && o < g.n[a] - 1;
      origin += o * g.stride[a];
    }
    if (ok) f(origin, kk);
  }
}

template <int D>
__device__ __forceinline__ void node_coords(const Grid<D>& g, int64_t p, int64_t c[3]) {
  c[0] = c[1] = c[2] = 0;
#pragma unroll
  for (int a = 0; a < D; ++a) {
    c[a] = p % g.n[a];
    p /= g.n[a];
  }
}

// out[b, p] = sum over cells c of p: nu_c (K u_c)_k.
template <int D, class T>
__global__ void apply_kernel(Grid<D> g, const T* __restrict__ nu, const T* __restrict__ u,
                             T* __restrict__ out) {
  const int64_t total = g.B * g.plane;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t b = i / g.plane, p = i % g.plane;
    const T* ub = u + b * g.plane;
    const T* nb = nu + b * g.plane;
    int64_t c[3];
    node_coords<D>(g, p, c);
    double acc = 0;
    for_cells_of<D>(g, c, [&](int64_t origin, int k) {
      double ku = 0;
#pragma unroll
      for (int j = 0; j < Grid<D>::kNodes; ++j)
        ku += g.K[k][j] * static_cast<double>(ub[origin + g.local[j]]);
      acc += cell_mean<D>(g, nb, origin) * ku;
    });
    out[i] = static_cast<T>(acc);
  }
}

// out[b, p] = 2^-d sum over cells c of p: a_c^T K b_c.
template <int D, class T>
__global__ void bilinear_kernel(Grid<D> g, const T* __restrict__ a, const T* __restrict__ bt,
                                T* __restrict__ out) {
  const int64_t total = g.B * g.plane;
  const double w = 1.0 / Grid<D>::kNodes;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t b = i / g.plane, p = i % g.plane;
    const T* ab = a + b * g.plane;
    const T* bb = bt + b * g.plane;
    int64_t c[3];
    node_coords<D>(g, p, c);
    double acc = 0;
    for_cells_of<D>(g, c, [&](int64_t origin, int) { acc += cell_form<D>(g, ab, bb, origin); });
    out[i] = static_cast<T>(w * acc);
  }
}

constexpr int64_t kCellChunk = 4096;

// Block (b, k) sums nu_c u_c^T K u_c over cells [k * kCellChunk, ...) of sample b.
template <int D, class T>
__global__ void energy_partials_kernel(Grid<D> g, const T* __restrict__ u,
                                       const T* __restrict__ nu, int64_t per,
                                       double* __restrict__ part) {
  __shared__ double smem[32];
  const int64_t q = blockIdx.x;
  const int64_t b = q / per, k = q % per;
  const int64_t lo = k * kCellChunk, hi = min(g.cells, lo + kCellChunk);
  const T* ub = u + b * g.plane;
  const T* nb = nu + b * g.plane;
  double acc = 0;
  for (int64_t cell = lo + threadIdx.x; cell < hi; cell += blockDim.x) {
    int64_t rem = cell, origin = 0;
#pragma unroll
    for (int a = 0; a < D; ++a) {
      origin += (rem % (g.n[a] - 1)) * g.stride[a];
      rem /= g.n[a] - 1;
    }
    acc += cell_mean<D>(g, nb, origin) * cell_form<D>(g, ub, ub, origin);
  }
  acc = block_reduce(acc, [](double x, double y) { return x + y; }, smem);
  if (threadIdx.x == 0) part[q] = acc;
}

template <class T>
__global__ void energy_combine_kernel(const double* __restrict__ part, int64_t B, int64_t per,
                                      T* __restrict__ out) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= B) return;
  double s = 0;
  for (int64_t k = 0; k < per; ++k) s += part[b * per + k];
  out[b] = static_cast<T>(0.5 * s);
}

int spatial_dims(const Tensor& K) { return K.shape()[0] == 4 ? 2 : 3; }

template <int D, class T>
void energy_impl(const Tensor& u, const Tensor& nu, const Tensor& K, const Tensor& out) {
  const Grid<D> g = make_grid<D>(u, K);
  if (g.B == 0) return;
  const int64_t per = g.cells > 0 ? (g.cells + kCellChunk - 1) / kCellChunk : 1;
  DFX_CHECK(g.B * per <= 0x7fffffff, "fem_energy: too many cell chunks for ", u.describe());
  Tensor part = Tensor::empty(Shape{g.B * per}, DType::Float64, u.device());
  energy_partials_kernel<D, T><<<static_cast<unsigned>(g.B * per), kThreads, 0, launch_stream()>>>(
      g, u.data<T>(), nu.data<T>(), per, part.data<double>());
  DFX_CUDA_CHECK_LAUNCH(
      ::dfx::detail::cat("fem energy_partials_kernel<", D, "d, ", dtype_name(u.dtype()), ">"),
      u.shape());
  energy_combine_kernel<T><<<blocks_for(g.B), kThreads, 0, launch_stream()>>>(
      part.data<double>(), g.B, per, out.data<T>());
  DFX_CUDA_CHECK_LAUNCH(
      ::dfx::detail::cat("fem energy_combine_kernel<", D, "d, ", dtype_name(u.dtype()), ">"),
      u.shape());
}

void check_fem(const char* op, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_cuda_tensor(a, op, "operand");
  check_cuda_tensor(b, op, "operand");
  check_cuda_tensor(out, op, "output");
}

}  // namespace

void fem_energy(const Tensor& u, const Tensor& nu, const Tensor& K, const Tensor& out) {
  check_fem("fem_energy", u, nu, out);
  ::dfx::cuda::DeviceGuard guard(u.device().index);
  const int d = spatial_dims(K);
  dispatch_float_cuda(u, "fem_energy", [&](auto z) {
    using T = decltype(z);
    if (d == 2) energy_impl<2, T>(u, nu, K, out);
    else energy_impl<3, T>(u, nu, K, out);
  });
}

void fem_apply(const Tensor& nu, const Tensor& u, const Tensor& K, const Tensor& out) {
  check_fem("fem_apply", u, nu, out);
  if (out.numel() == 0) return;
  ::dfx::cuda::DeviceGuard guard(u.device().index);
  const int d = spatial_dims(K);
  dispatch_float_cuda(u, "fem_apply", [&](auto z) {
    using T = decltype(z);
    const std::string name =
        ::dfx::detail::cat("fem apply_kernel<", d, "d, ", dtype_name(u.dtype()), ">");
    if (d == 2) {
      apply_kernel<2, T><<<grid_for(u.numel()), kThreads, 0, launch_stream()>>>(
          make_grid<2>(u, K), nu.data<T>(), u.data<T>(), out.data<T>());
    } else {
      apply_kernel<3, T><<<grid_for(u.numel()), kThreads, 0, launch_stream()>>>(
          make_grid<3>(u, K), nu.data<T>(), u.data<T>(), out.data<T>());
    }
    DFX_CUDA_CHECK_LAUNCH(name, u.shape());
  });
}

void fem_bilinear(const Tensor& a, const Tensor& b, const Tensor& K, const Tensor& out) {
  check_fem("fem_bilinear", a, b, out);
  if (out.numel() == 0) return;
  ::dfx::cuda::DeviceGuard guard(a.device().index);
  const int d = spatial_dims(K);
  dispatch_float_cuda(a, "fem_bilinear", [&](auto z) {
    using T = decltype(z);
    const std::string name =
        ::dfx::detail::cat("fem bilinear_kernel<", d, "d, ", dtype_name(a.dtype()), ">");
    if (d == 2) {
      bilinear_kernel<2, T><<<grid_for(a.numel()), kThreads, 0, launch_stream()>>>(
          make_grid<2>(a, K), a.data<T>(), b.data<T>(), out.data<T>());
    } else {
      bilinear_kernel<3, T><<<grid_for(a.numel()), kThreads, 0, launch_stream()>>>(
          make_grid<3>(a, K), a.data<T>(), b.data<T>(), out.data<T>());
    }
    DFX_CUDA_CHECK_LAUNCH(name, a.shape());
  });
}

}  // namespace dfx::kernels::cuda
