// kernels/cuda/pool.cu — pooling and upsampling on the GPU, one thread per output element and
// the CPU kernels' arithmetic in the CPU's order, so float64 results match kernels/cpu/pool.cpp
// to rounding. Max pooling scans its window in row-major order with the CPU's update rule (first
// of ties, NaN propagates). Average pooling, upsampling and their adjoints run the one separable
// kernel over AxisMaps built by kernels/pool.cpp (a gather: no atomics). max-pool's adjoint
// (pool_scatter) is made a gather too: (target, output) pairs are stably radix-sorted by target,
// so each target adds its contributions in output order, exactly as the CPU does. Where the
// windows are disjoint (the U-Net's 2x2 pooling) every target has at most one contribution and is
// written directly: no sort, no scratch.
// Every kernel is compiled for both layouts of PoolPlanes (template flag CL). A thread's flat index
// is the memory offset of its output element, so consecutive threads take consecutive positions
// of one plane in NCHW and consecutive channels of one position in channels-last (NHWC): the
// reads of x and the writes of values and indices are coalesced in both. The per-element
// arithmetic is the same code for both layouts.
#include <cub/device/device_radix_sort.cuh>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pool.cuh"

namespace dfx::kernels::cuda {
namespace {

// Calls f(std::bool_constant<channels-last>{}), to launch a kernel's instance for the layout.
template <class F>
void dispatch_layout(const PoolPlanes& planes, F&& f) {
  if (planes.channels_last()) f(std::true_type{});
  else f(std::false_type{});
}

// For q, the memory offset of an element of a dense operand with out_n positions per plane:
// its position o within its plane, and where that plane lies in a dense operand of the same
// layout with in_n positions per plane (element s at base + s * step; see PoolPlanes).
template <bool CL>
__device__ __forceinline__ void locate(int64_t q, int64_t channels, int64_t out_n, int64_t in_n,
                                       int64_t& o, int64_t& base, int64_t& step) {
  if (CL) {
    const int64_t c = q % channels, r = q / channels;
    o = r % out_n;
    base = (r / out_n) * in_n * channels + c;
    step = channels;
  } else {
    o = q % out_n;
    base = (q / out_n) * in_n;
    step = 1;
  }
}

struct Geo {
  int64_t planes, channels, in[3], out[3], k[3], s[3], p[3];
};

template <class T, bool CL>
__global__ void max_pool_kernel(const T* __restrict__ x, Geo g, T* __restrict__ vals,
                                int64_t* __restrict__ idx) {
  const int64_t out_n = g.out[0] * g.out[1] * g.out[2], in_n = g.in[0] * g.in[1] * g.in[2];
  const int64_t total = g.planes * out_n;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < total;
       q += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t o, base, step;
    locate<CL>(q, g.channels, out_n, in_n, o, base, step);
    const int64_t o2 = o % g.out[2], o1 = (o / g.out[2]) % g.out[1];
    const int64_t o0 = o / (g.out[2] * g.out[1]);
    const T* xp = x + base;
    const int64_t a0 = max(o0 * g.s[0] - g.p[0], int64_t(0));
    const int64_t b0 = min(o0 * g.s[0] - g.p[0] + g.k[0], g.in[0]);
    const int64_t a1 = max(o1 * g.s[1] - g.p[1], int64_t(0));
    const int64_t b1 = min(o1 * g.s[1] - g.p[1] + g.k[1], g.in[1]);
    const int64_t a2 = max(o2 * g.s[2] - g.p[2], int64_t(0));
    const int64_t b2 = min(o2 * g.s[2] - g.p[2] + g.k[2], g.in[2]);
    // Padding is -inf: it never wins, and the first real element is the default index.
    T best = -INFINITY;
    int64_t bi = (a0 * g.in[1] + a1) * g.in[2] + a2;
    for (int64_t i0 = a0; i0 < b0; ++i0)
      for (int64_t i1 = a1; i1 < b1; ++i1) {
        const int64_t row = (i0 * g.in[1] + i1) * g.in[2];
        for (int64_t i2 = a2; i2 < b2; ++i2) {
          const T v = xp[(row + i2) * step];
          const bool u = v > best || v != v;
          best = u ? v : best;
          bi = u ? row + i2 : bi;
        }
      }
    vals[q] = best;
    idx[q] = bi;
  }
}

template <class T, bool CL>
__global__ void gather_kernel(const T* __restrict__ x, const int64_t* __restrict__ idx,
                              int64_t total, int64_t channels, int64_t out_n, int64_t in_n,
                              T* __restrict__ out, int64_t* __restrict__ bad) {
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total;
       o += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t i = idx[o];
    if (i < 0 || i >= in_n) {
      *bad = 1;  // every writer stores the same value
      out[o] = T(0);
    } else {
      int64_t pos, base, step;
      locate<CL>(o, channels, out_n, in_n, pos, base, step);
      out[o] = x[base + i * step];
    }
  }
}

// key[o] = the memory offset in out of the target of g[o] (plane's base + idx[o] * step), val[o]
// = o; flags out-of-range indices. Within a plane, o grows with the output position in both
// layouts, so sorting by key keeps each target's contributions in output-position order.
template <bool CL>
__global__ void scatter_keys_kernel(const int64_t* __restrict__ idx, int64_t total,
                                    int64_t channels, int64_t out_n, int64_t in_n,
                                    unsigned long long* __restrict__ keys,
                                    int64_t* __restrict__ vals, int64_t* __restrict__ bad) {
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total;
       o += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t i = idx[o];
    if (i < 0 || i >= in_n) {
      *bad = 1;
      keys[o] = 0;
    } else {
      int64_t pos, base, step;
      locate<CL>(o, channels, out_n, in_n, pos, base, step);
      keys[o] = static_cast<unsigned long long>(base + i * step);
    }
    vals[o] = o;
  }
}

// Disjoint windows: each target has at most one contribution, so one plain store (0 + g, the
// CPU's sum of one term, so -0 becomes +0 alike) with no ordering question.
template <class T, bool CL>
__global__ void scatter_direct_kernel(const T* __restrict__ g, const int64_t* __restrict__ idx,
                                      int64_t total, int64_t channels, int64_t out_n,
                                      int64_t in_n, T* __restrict__ out, int64_t* __restrict__ bad) {
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total;
       o += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t i = idx[o];
    if (i < 0 || i >= in_n) {
      *bad = 1;
      continue;
    }
    int64_t pos, base, step;
    locate<CL>(o, channels, out_n, in_n, pos, base, step);
    out[base + i * step] = T(0) + g[o];
  }
}

// Thread j that starts a run of equal keys adds the run's values in order (ascending output
// index, the stable sort keeps it) and writes the target once.
template <class T>
__global__ void scatter_runs_kernel(const unsigned long long* __restrict__ keys,
                                    const int64_t* __restrict__ vals, int64_t total,
                                    const T* __restrict__ g, T* __restrict__ out) {
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < total;
       j += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const unsigned long long key = keys[j];
    if (j > 0 && keys[j - 1] == key) continue;
    T s = T(0);
    for (int64_t e = j; e < total && keys[e] == key; ++e) s += g[vals[e]];
    out[key] = s;
  }
}

struct Maps {
  const int64_t* ptr[3];
  const int64_t* col[3];
  const double* w[3];
  int64_t rows[3], cols[3];
};

template <class T, bool CL>
__global__ void separable_kernel(const T* __restrict__ x, Maps m, double scale, int64_t planes,
                                 int64_t channels, T* __restrict__ out) {
  const int64_t in_n = m.cols[0] * m.cols[1] * m.cols[2];
  const int64_t out_n = m.rows[0] * m.rows[1] * m.rows[2];
  const int64_t total = planes * out_n;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < total;
       q += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t o, base, step;
    locate<CL>(q, channels, out_n, in_n, o, base, step);
    const int64_t r2 = o % m.rows[2], r1 = (o / m.rows[2]) % m.rows[1];
    const int64_t r0 = o / (m.rows[2] * m.rows[1]);
    const T* xp = x + base;
    // The CPU's order: (e0, e1) pairs, each an inner sum over e2, all in float64.
    double acc = 0;
    for (int64_t e0 = m.ptr[0][r0]; e0 < m.ptr[0][r0 + 1]; ++e0) {
      for (int64_t e1 = m.ptr[1][r1]; e1 < m.ptr[1][r1 + 1]; ++e1) {
        const T* xrow = xp + (m.col[0][e0] * m.cols[1] + m.col[1][e1]) * m.cols[2] * step;
        const double c = m.w[0][e0] * m.w[1][e1];
        double s = 0;
        for (int64_t e2 = m.ptr[2][r2]; e2 < m.ptr[2][r2 + 1]; ++e2)
          s += m.w[2][e2] * static_cast<double>(xrow[m.col[2][e2] * step]);
        acc += c * s;
      }
    }
    out[q] = static_cast<T>(acc * scale);
  }
}

bool read_flag(const Tensor& flag) { return flag.to_vector()[0] != 0.0; }

Tensor zero_flag(Device dev) { return zeros({1}, DType::Int64, dev); }

}  // namespace

void max_pool(const Tensor& x, const PoolGeometry& pg, const Tensor& values,
              const Tensor& indices) {
  check_cuda_tensor(x, "max_pool", "input");
  const int64_t total = values.numel();
  if (total == 0) return;
  ::dfx::cuda::DeviceGuard guard(x.device().index);
  Geo g{pg.planes.count(), pg.planes.c, {}, {}, {}, {}, {}};
  for (int d = 0; d < 3; ++d) {
    g.in[d] = pg.in[d];
    g.out[d] = pg.out[d];
    g.k[d] = pg.k[d];
    g.s[d] = pg.s[d];
    g.p[d] = pg.p[d];
  }
  dispatch_float_cuda(x, "max_pool", [&](auto z) {
    using T = decltype(z);
    dispatch_layout(pg.planes, [&](auto cl) {
      max_pool_kernel<T, decltype(cl)::value><<<grid_for(total), kThreads, 0, launch_stream()>>>(
          x.data<T>(), g, values.data<T>(), indices.data<int64_t>());
      DFX_CUDA_CHECK_LAUNCH(::dfx::detail::cat("max_pool_kernel<", dtype_name(x.dtype()), ">"),
                            x.shape());
    });
  });
}

bool pool_gather(const Tensor& x, const Tensor& indices, const PoolPlanes& pl, int64_t in_numel,
                 const Tensor& out, bool check) {
  check_cuda_tensor(x, "pool_gather", "input");
  check_cuda_tensor(indices, "pool_gather", "indices");
  const int64_t total = indices.numel(), planes = pl.count();
  if (total == 0 || planes == 0) return true;
  ::dfx::cuda::DeviceGuard guard(x.device().index);
  Tensor flag = zero_flag(x.device());
  dispatch_float_cuda(x, "pool_gather", [&](auto z) {
    using T = decltype(z);
    dispatch_layout(pl, [&](auto cl) {
      gather_kernel<T, decltype(cl)::value><<<grid_for(total), kThreads, 0, launch_stream()>>>(
          x.data<T>(), indices.data<int64_t>(), total, pl.c, total / planes, in_numel,
          out.data<T>(), flag.data<int64_t>());
      DFX_CUDA_CHECK_LAUNCH(::dfx::detail::cat("pool gather_kernel<", dtype_name(x.dtype()), ">"),
                            indices.shape());
    });
  });
  return !check || !read_flag(flag);
}

bool pool_scatter(const Tensor& g, const Tensor& indices, const PoolPlanes& pl, int64_t in_numel,
                  bool disjoint, const Tensor& out, bool check) {
  check_cuda_tensor(g, "pool_scatter", "input");
  check_cuda_tensor(indices, "pool_scatter", "indices");
  check_cuda_tensor(out, "pool_scatter", "output");
  ::dfx::cuda::DeviceGuard guard(g.device().index);
  if (out.numel() > 0)
    DFX_CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0, out.nbytes(), launch_stream()));
  const int64_t total = indices.numel(), planes = pl.count();
  if (total == 0 || planes == 0) return true;
  DFX_CHECK(total <= 0x7fffffff, "pool_scatter: ", indices.describe(),
            " has more elements than one radix sort takes (2^31 - 1)");
  const Device dev = g.device();
  Tensor flag = zero_flag(dev);
  if (disjoint) {
    dispatch_float_cuda(g, "pool_scatter", [&](auto z) {
      using T = decltype(z);
      dispatch_layout(pl, [&](auto cl) {
        constexpr bool kCL = decltype(cl)::value;
        scatter_direct_kernel<T, kCL><<<grid_for(total), kThreads, 0, launch_stream()>>>(
            g.data<T>(), indices.data<int64_t>(), total, pl.c, total / planes, in_numel,
            out.data<T>(), flag.data<int64_t>());
        DFX_CUDA_CHECK_LAUNCH(
            ::dfx::detail::cat("pool scatter_direct_kernel<", dtype_name(g.dtype()), ">"),
            indices.shape());
      });
    });
    return !check || !read_flag(flag);
  }
  Tensor keys_in = scratch_bytes(sizeof(unsigned long long) * total, dev);
  Tensor keys_out = scratch_bytes(sizeof(unsigned long long) * total, dev);
  Tensor vals_in = Tensor::empty(Shape{total}, DType::Int64, dev);
  Tensor vals_out = Tensor::empty(Shape{total}, DType::Int64, dev);
  auto* kin = static_cast<unsigned long long*>(keys_in.raw_data());
  auto* kout = static_cast<unsigned long long*>(keys_out.raw_data());
  dispatch_layout(pl, [&](auto cl) {
    scatter_keys_kernel<decltype(cl)::value><<<grid_for(total), kThreads, 0, launch_stream()>>>(
        indices.data<int64_t>(), total, pl.c, total / planes, in_numel, kin,
        vals_in.data<int64_t>(), flag.data<int64_t>());
    DFX_CUDA_CHECK_LAUNCH("pool scatter_keys_kernel", indices.shape());
  });
  if (check && read_flag(flag)) return false;
  // Only the bits the largest target needs take part in the sort (the same in both layouts).
  const unsigned long long max_key = static_cast<unsigned long long>(planes * in_numel);
  int end_bit = 1;
  while (end_bit < 64 && (max_key >> end_bit) != 0) ++end_bit;
  size_t temp_bytes = 0;
  DFX_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, kin, kout,
                                                 vals_in.data<int64_t>(),
                                                 vals_out.data<int64_t>(),
                                                 static_cast<int>(total), 0, end_bit,
                                                 launch_stream()));
  Tensor temp = scratch_bytes(temp_bytes, dev);
  DFX_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.raw_data(), temp_bytes, kin, kout,
                                                 vals_in.data<int64_t>(),
                                                 vals_out.data<int64_t>(),
                                                 static_cast<int>(total), 0, end_bit,
                                                 launch_stream()));
  dispatch_float_cuda(g, "pool_scatter", [&](auto z) {
    using T = decltype(z);
    scatter_runs_kernel<T><<<grid_for(total), kThreads, 0, launch_stream()>>>(
        kout, vals_out.data<int64_t>(), total, g.data<T>(), out.data<T>());
    DFX_CUDA_CHECK_LAUNCH(
        ::dfx::detail::cat("pool scatter_runs_kernel<", dtype_name(g.dtype()), ">"),
        indices.shape());
  });
  return true;
}

void separable(const Tensor& x, const AxisMap (&maps)[3], double scale, const PoolPlanes& planes,
               const Tensor& out) {
  check_cuda_tensor(x, "separable", "input");
  const int64_t total = out.numel();
  if (total == 0) return;
  ::dfx::cuda::DeviceGuard guard(x.device().index);
  const Device dev = x.device();
  // The maps are O(size of one dim): uploaded per call, kept alive until the end of the call.
  std::vector<Tensor> keep;
  Maps m{};
  for (int d = 0; d < 3; ++d) {
    keep.push_back(from_vector<int64_t>(maps[d].ptr, {static_cast<int64_t>(maps[d].ptr.size())})
                       .to(dev));
    m.ptr[d] = keep.back().data<int64_t>();
    const int64_t nnz = static_cast<int64_t>(maps[d].col.size());
    keep.push_back(nnz ? from_vector<int64_t>(maps[d].col, {nnz}).to(dev)
                       : Tensor::empty({1}, DType::Int64, dev));
    m.col[d] = keep.back().data<int64_t>();
    keep.push_back(nnz ? from_vector<double>(maps[d].w, {nnz}).to(dev)
                       : Tensor::empty({1}, DType::Float64, dev));
    m.w[d] = keep.back().data<double>();
    m.rows[d] = maps[d].rows;
    m.cols[d] = maps[d].cols;
  }
  dispatch_float_cuda(x, "separable", [&](auto z) {
    using T = decltype(z);
    dispatch_layout(planes, [&](auto cl) {
      separable_kernel<T, decltype(cl)::value><<<grid_for(total), kThreads, 0, launch_stream()>>>(
          x.data<T>(), m, scale, planes.count(), planes.c, out.data<T>());
      DFX_CUDA_CHECK_LAUNCH(
          ::dfx::detail::cat("pool separable_kernel<", dtype_name(x.dtype()), ">"), x.shape());
    });
  });
  // from_vector(...).to(dev) copies synchronously, and the kernel is ordered after the copies;
  // the temporaries go back to the caching allocator, which orders any reuse on the stream.
}

}  // namespace dfx::kernels::cuda
