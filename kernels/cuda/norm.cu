// kernels/cuda/norm.cu — batch-norm kernels on the GPU. The per-channel sums are two-level and
// deterministic: every plane (n, c) is cut into fixed chunks of kChunk elements, one block reduces
// a chunk into a float64 pair (warp shuffles, fixed tree), then one block per channel reduces its
// N * chunks partials in a fixed tree. The chunking depends only on the shape, so a given shape
// always sums in the same order; no atomics. The apply passes are elementwise, one thread per
// element, with the same per-channel constants (folded in float64) as the CPU kernels. S = 1
// ([rows, C]: channels-last tensors, BatchNorm1d) reduces columns instead (rows_partials_kernel).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/norm.cuh"

namespace dfx::kernels::cuda {
namespace {

constexpr int64_t kChunk = 4096;

int64_t chunks_of(int64_t s) { return s > 0 ? (s + kChunk - 1) / kChunk : 1; }

// Per element, what the reductions and the backward apply read (kernels/cpu/norm.cpp's
// BackwardIn): x (the input of the plain sums); the gradient of batch norm's output, gy, and
// x - mean. With a fused leaky ReLU, g is the gradient of its output z and gy = g * leaky_relu'(z)
// (as kernels::leaky_relu_backward computes it); with rebuild, x - mean comes from z:
// (leaky_relu(z, 1 / slope) - beta) / (gamma invstd), and x is not read.
template <class T>
struct BackIn {
  const T* x = nullptr;
  const T* g = nullptr;
  const T* z = nullptr;
  T slope = T(0);
  bool rebuild = false;
  double inv_slope = 0;
  const double* beta = nullptr;
  const double* inv_scale = nullptr;

  __device__ T gy(int64_t i) const { return z ? (z[i] > T(0) ? g[i] : g[i] * slope) : g[i]; }
  __device__ double centered(int64_t i, int64_t ch, double m) const {
    if (rebuild) {
      const double zv = static_cast<double>(z[i]);
      return ((zv > 0 ? zv : zv * inv_slope) - beta[ch]) * inv_scale[ch];
    }
    return static_cast<double>(x[i]) - m;
  }
  __device__ T centered_t(int64_t i, int64_t ch, T m) const {
    if (rebuild) {
      const T zv = z[i];
      const T y = zv > T(0) ? zv : zv * static_cast<T>(inv_slope);
      return (y - static_cast<T>(beta[ch])) * static_cast<T>(inv_scale[ch]);
    }
    return x[i] - m;
  }
};

template <class T>
BackIn<T> back_in(const Tensor* x, const Tensor* g, const BnActGrad* act) {
  BackIn<T> in;
  in.x = x && x->defined() ? x->data<T>() : nullptr;
  in.g = g ? g->data<T>() : nullptr;
  if (act && act->on) {
    in.z = act->z.data<T>();
    in.slope = static_cast<T>(act->slope);
    in.rebuild = act->rebuild_x;
    if (act->rebuild_x) {
      in.inv_slope = 1.0 / act->slope;
      in.beta = act->beta.data<double>();
      in.inv_scale = act->inv_scale.data<double>();
    }
  }
  return in;
}

// kMode 0: (sum x, sum x^2). kMode 1: (sum gy, sum gy * (x - mean[c])).
template <class T, int kMode>
__global__ void plane_partials_kernel(BackIn<T> in, const double* __restrict__ mean, int64_t c,
                                      int64_t s, int64_t per, Double2* __restrict__ part) {
  __shared__ Double2 smem[32];
  const int64_t q = blockIdx.x;  // (plane, chunk)
  const int64_t plane = q / per, k = q % per;
  const int64_t lo = k * kChunk, hi = min(s, lo + kChunk);
  Double2 acc{0.0, 0.0};
  if constexpr (kMode == 0) {
    const T* xp = in.x + plane * s;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
      const double v = static_cast<double>(xp[i]);
      acc.a += v;
      acc.b += v * v;
    }
  } else {
    const int64_t ch = plane % c;
    const double m = mean[ch];
    for (int64_t i = plane * s + lo + threadIdx.x; i < plane * s + hi; i += blockDim.x) {
      const double gv = static_cast<double>(in.gy(i));
      acc.a += gv;
      acc.b += gv * in.centered(i, ch, m);
    }
  }
  acc = block_reduce(acc, [](Double2 u, Double2 v) { return u + v; }, smem);
  if (threadIdx.x == 0) part[q] = acc;
}

// S = 1 ([rows, C]: channels-last tensors, BatchNorm1d): block (chunk, group) reduces rows
// [chunk * kRowChunk, ...) of channels [group * cg, ...) with cg = min(C, 256) channels per block
// and rep = blockDim / cg threads per channel (so reads of a row are coalesced across channels);
// the rep partials of a channel are added in a fixed order. part[chunk * C + ch] is then the
// layout channel_combine_kernel reads with n = chunks, per = 1.
constexpr int64_t kRowChunk = 1024;

template <class T, int kMode>
__global__ void rows_partials_kernel(BackIn<T> in, const double* __restrict__ mean, int64_t rows,
                                     int64_t c, int cg, Double2* __restrict__ part) {
  __shared__ Double2 smem[kThreads];
  const int rep = blockDim.x / cg;
  const int lane = threadIdx.x % cg, r0 = threadIdx.x / cg;
  const int64_t chunk = blockIdx.x;
  const int64_t ch = static_cast<int64_t>(blockIdx.y) * cg + lane;
  const int64_t lo = chunk * kRowChunk, hi = min(rows, lo + kRowChunk);
  Double2 acc{0.0, 0.0};
  if (ch < c && r0 < rep) {
    if constexpr (kMode == 0) {
      for (int64_t r = lo + r0; r < hi; r += rep) {
        const double v = static_cast<double>(in.x[r * c + ch]);
        acc.a += v;
        acc.b += v * v;
      }
    } else {
      const double m = mean[ch];
      for (int64_t r = lo + r0; r < hi; r += rep) {
        const double gv = static_cast<double>(in.gy(r * c + ch));
        acc.a += gv;
        acc.b += gv * in.centered(r * c + ch, ch, m);
      }
    }
  }
  smem[threadIdx.x] = acc;
  __syncthreads();
  if (r0 == 0 && ch < c) {
    Double2 sum = smem[lane];
    for (int j = 1; j < rep; ++j) {
      sum.a += smem[j * cg + lane].a;
      sum.b += smem[j * cg + lane].b;
    }
    part[chunk * c + ch] = sum;
  }
}

// Block ch reduces partials (i * c + ch) * per + k over i < n, k < per; out is [2, C]. With
// `scale_b`, the second row is multiplied by scale_b[ch] (invstd for the backward sums).
__global__ void channel_combine_kernel(const Double2* __restrict__ part, int64_t n, int64_t c,
                                       int64_t per, const double* __restrict__ scale_b,
                                       double* __restrict__ out) {
  __shared__ Double2 smem[32];
  const int64_t ch = blockIdx.x;
  Double2 acc{0.0, 0.0};
  const int64_t total = n * per;
  for (int64_t t = threadIdx.x; t < total; t += blockDim.x) {
    const int64_t i = t / per, k = t % per;
    const Double2 v = part[(i * c + ch) * per + k];
    acc.a += v.a;
    acc.b += v.b;
  }
  acc = block_reduce(acc, [](Double2 u, Double2 v) { return u + v; }, smem);
  if (threadIdx.x == 0) {
    out[ch] = acc.a;
    out[c + ch] = scale_b ? acc.b * scale_b[ch] : acc.b;
  }
}

template <class T, class Index>
__global__ void bn_apply_kernel(const T* __restrict__ x, Index total, Index c, Index s,
                                const double* __restrict__ mean, const double* __restrict__ invstd,
                                const double* __restrict__ gamma, const double* __restrict__ beta,
                                T* __restrict__ y, bool act, T slope) {
  const Index step = static_cast<Index>(blockDim.x) * gridDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const Index ch = (i / s) % c;
    // (x - mean) * a + beta, with a = invstd * gamma folded in float64, as on the CPU.
    const T m = static_cast<T>(mean[ch]), a = static_cast<T>(invstd[ch] * gamma[ch]);
    const T be = static_cast<T>(beta[ch]);
    const T v = (x[i] - m) * a + be;
    // The fused leaky_relu, as kernels/cuda/elementwise.cu's unary LeakyRelu computes it.
    y[i] = act && !(v > T(0)) ? slope * v : v;
  }
}

template <class T, class Index>
__global__ void bn_backward_apply_kernel(BackIn<T> in, Index total, Index c, Index s,
                                         const double* __restrict__ mean,
                                         const double* __restrict__ invstd,
                                         const double* __restrict__ gamma,
                                         const double* __restrict__ sums,
                                         const double* __restrict__ count_p,
                                         T* __restrict__ gx) {
  const double count = *count_p;  // on the device: a global count is not read by the host
  const Index step = static_cast<Index>(blockDim.x) * gridDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const Index ch = (i / s) % c;
    const double is = invstd[ch];
    const T k = static_cast<T>(gamma[ch] * is);
    const T mg = static_cast<T>(sums[ch] / count);
    const T q = static_cast<T>(is * sums[c + ch] / count);
    const T m = static_cast<T>(mean[ch]);
    gx[i] = k * (in.gy(i) - mg - in.centered_t(i, ch, m) * q);
  }
}

void check_all(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) check_cuda_tensor(*t, op, "operand");
}

// Sums of kMode over [n, c, s] into out [2, c].
// `like` fixes the shape and device (x, or the activation's output when x is rebuilt).
template <class T, int kMode>
void channel_reduce(const Tensor& like, const BackIn<T>& in, const Tensor* mean,
                    const Tensor* invstd, int64_t n, int64_t c, int64_t s, const Tensor& out,
                    const char* op) {
  const Tensor& x = like;
  if (c == 0) return;
  double* po = out.data<double>();
  const int64_t per = chunks_of(s);
  const int64_t items = n * c * per;
  const std::string name = ::dfx::detail::cat(op, "<", dtype_name(x.dtype()), ">");
  if (n == 0 || s == 0) {  // an empty batch gives zero sums (the rank still joins all-reduces)
    DFX_CUDA_CHECK(cudaMemsetAsync(po, 0, sizeof(double) * 2 * c, launch_stream()));
    return;
  }
  if (s == 1) {
    const int64_t chunks = (n + kRowChunk - 1) / kRowChunk;
    const int cg = static_cast<int>(std::min<int64_t>(c, kThreads));
    const int threads = (kThreads / cg) * cg;
    const int64_t groups = (c + cg - 1) / cg;
    DFX_CHECK(chunks <= 0x7fffffff && groups <= 65535, op, ": ", chunks, " x ", groups,
              " blocks exceed the grid limits for ", x.describe());
    Tensor part = scratch_bytes(sizeof(Double2) * chunks * c, x.device());
    Double2* pp = static_cast<Double2*>(part.raw_data());
    dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(groups));
    rows_partials_kernel<T, kMode><<<grid, threads, 0, launch_stream()>>>(
        in, mean ? mean->data<double>() : nullptr, n, c, cg, pp);
    DFX_CUDA_CHECK_LAUNCH(name + " (rows_partials_kernel)", x.shape());
    const int cthreads = chunks >= 256 ? 256 : 64;
    channel_combine_kernel<<<static_cast<unsigned>(c), cthreads, 0, launch_stream()>>>(
        pp, chunks, c, 1, invstd ? invstd->data<double>() : nullptr, po);
    DFX_CUDA_CHECK_LAUNCH(name + " (channel_combine_kernel)", x.shape());
    return;
  }
  DFX_CHECK(items <= 0x7fffffff, op, ": ", items, " chunks exceed the grid limit for ",
            x.describe());
  Tensor part = scratch_bytes(sizeof(Double2) * items, x.device());
  Double2* pp = static_cast<Double2*>(part.raw_data());
  const int threads = s >= 2048 ? 256 : (s >= 256 ? 128 : 64);
  plane_partials_kernel<T, kMode><<<static_cast<unsigned>(items), threads, 0, launch_stream()>>>(
      in, mean ? mean->data<double>() : nullptr, c, s, per, pp);
  DFX_CUDA_CHECK_LAUNCH(name + " (plane_partials_kernel)", x.shape());
  const int cthreads = n * per >= 256 ? 256 : 64;
  channel_combine_kernel<<<static_cast<unsigned>(c), cthreads, 0, launch_stream()>>>(
      pp, n, c, per, invstd ? invstd->data<double>() : nullptr, po);
  DFX_CUDA_CHECK_LAUNCH(name + " (channel_combine_kernel)", x.shape());
}

}  // namespace

void channel_sums(const Tensor& x, int64_t n, int64_t c, int64_t s, const Tensor& out) {
  check_all("channel_sums", {&x, &out});
  ::dfx::cuda::DeviceGuard guard(x.device().index);
  dispatch_float_cuda(x, "channel_sums", [&](auto z) {
    using T = decltype(z);
    channel_reduce<T, 0>(x, back_in<T>(&x, nullptr, nullptr), nullptr, nullptr, n, c, s, out,
                         "channel_sums");
  });
}

void bn_backward_reduce(const Tensor& g, const Tensor& x, int64_t n, int64_t c, int64_t s,
                        const Tensor& mean, const Tensor& invstd, const Tensor& out,
                        const BnActGrad& act) {
  check_all("bn_backward_reduce", {&g, &mean, &invstd, &out});
  if (x.defined()) check_all("bn_backward_reduce", {&x});
  if (act.on) check_all("bn_backward_reduce", {&act.z});
  ::dfx::cuda::DeviceGuard guard(g.device().index);
  dispatch_float_cuda(g, "bn_backward_reduce", [&](auto z) {
    using T = decltype(z);
    channel_reduce<T, 1>(g, back_in<T>(&x, &g, &act), &mean, &invstd, n, c, s, out,
                         "bn_backward_reduce");
  });
}

void bn_apply(const Tensor& x, int64_t n, int64_t c, int64_t s, const Tensor& mean,
              const Tensor& invstd, const Tensor& gamma, const Tensor& beta, const Tensor& y,
              FusedLeakyRelu act) {
  check_all("bn_apply", {&x, &mean, &invstd, &gamma, &beta, &y});
  const int64_t total = n * c * s;
  if (total == 0) return;
  ::dfx::cuda::DeviceGuard guard(x.device().index);
  dispatch_float_cuda(x, "bn_apply", [&](auto z) {
    using T = decltype(z);
    const double *pm = mean.data<double>(), *pi = invstd.data<double>();
    const double *pg = gamma.data<double>(), *pb = beta.data<double>();
    if (fits_u32(total)) {
      bn_apply_kernel<T, uint32_t><<<grid_for(total), kThreads, 0, launch_stream()>>>(
          x.data<T>(), uint32_t(total), uint32_t(c), uint32_t(s), pm, pi, pg, pb, y.data<T>(),
          act.on, static_cast<T>(act.slope));
    } else {
      bn_apply_kernel<T, uint64_t><<<grid_for(total), kThreads, 0, launch_stream()>>>(
          x.data<T>(), uint64_t(total), uint64_t(c), uint64_t(s), pm, pi, pg, pb, y.data<T>(),
          act.on, static_cast<T>(act.slope));
    }
    DFX_CUDA_CHECK_LAUNCH(::dfx::detail::cat("bn_apply_kernel<", dtype_name(x.dtype()), ">"),
                          x.shape());
  });
}

void bn_backward_apply(const Tensor& g, const Tensor& x, int64_t n, int64_t c, int64_t s,
                       const Tensor& mean, const Tensor& invstd, const Tensor& gamma,
                       const Tensor& sums, const Tensor& count_t, const Tensor& gx,
                       const BnActGrad& act) {
  check_all("bn_backward_apply", {&g, &mean, &invstd, &gamma, &sums, &count_t, &gx});
  if (x.defined()) check_all("bn_backward_apply", {&x});
  if (act.on) check_all("bn_backward_apply", {&act.z});
  const int64_t total = n * c * s;
  if (total == 0) return;
  ::dfx::cuda::DeviceGuard guard(g.device().index);
  dispatch_float_cuda(g, "bn_backward_apply", [&](auto z) {
    using T = decltype(z);
    const double *pm = mean.data<double>(), *pi = invstd.data<double>();
    const double *pg = gamma.data<double>(), *ps = sums.data<double>();
    const double* count = count_t.data<double>();
    const BackIn<T> in = back_in<T>(&x, &g, &act);
    if (fits_u32(total)) {
      bn_backward_apply_kernel<T, uint32_t><<<grid_for(total), kThreads, 0, launch_stream()>>>(
          in, uint32_t(total), uint32_t(c), uint32_t(s), pm, pi, pg, ps, count, gx.data<T>());
    } else {
      bn_backward_apply_kernel<T, uint64_t><<<grid_for(total), kThreads, 0, launch_stream()>>>(
          in, uint64_t(total), uint64_t(c), uint64_t(s), pm, pi, pg, ps, count, gx.data<T>());
    }
    DFX_CUDA_CHECK_LAUNCH(
        ::dfx::detail::cat("bn_backward_apply_kernel<", dtype_name(g.dtype()), ">"), g.shape());
  });
}

namespace {

// One thread per channel: the CPU's arithmetic (kernels/cpu/norm.cpp), with the products and
// sums rounded as written (no contraction into FMAs) so that both devices agree to the bit.
__global__ void bn_moments_kernel(const double* __restrict__ p, int64_t c, double* rm, double* rv,
                                  double momentum, double eps, double* __restrict__ out) {
  const double count = p[0];
  for (int64_t ch = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; ch < c;
       ch += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const double m = p[c + ch] / count;
    const double d = __dsub_rn(p[2 * c + ch] / count, __dmul_rn(m, m));  // E[x^2] - E[x]^2
    const double var = d < 0.0 ? 0.0 : d;  // std::max's NaN behaviour, as on the CPU
    out[ch] = m;
    out[c + ch] = 1.0 / sqrt(var + eps);
    if (rm) rm[ch] = __dadd_rn(__dmul_rn(1.0 - momentum, rm[ch]), __dmul_rn(momentum, m));
    if (rv)
      rv[ch] = __dadd_rn(__dmul_rn(1.0 - momentum, rv[ch]),
                         __dmul_rn(momentum, __dmul_rn(var, count) / (count - 1.0)));
  }
}

}  // namespace

void bn_moments(const Tensor& packed, int64_t c, const Tensor& running_mean,
                const Tensor& running_var, double momentum, double eps, const Tensor& out) {
  check_all("bn_moments", {&packed, &out});
  if (running_mean.defined()) check_all("bn_moments", {&running_mean});
  if (running_var.defined()) check_all("bn_moments", {&running_var});
  if (c == 0) return;
  ::dfx::cuda::DeviceGuard guard(packed.device().index);
  bn_moments_kernel<<<grid_for(c), kThreads, 0, launch_stream()>>>(
      packed.data<double>(), c, running_mean.defined() ? running_mean.data<double>() : nullptr,
      running_var.defined() ? running_var.data<double>() : nullptr, momentum, eps,
      out.data<double>());
  DFX_CUDA_CHECK_LAUNCH("bn_moments_kernel", packed.shape());
}

}  // namespace dfx::kernels::cuda
