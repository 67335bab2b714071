// kernels/cuda/common.cuh — pieces shared by the CUDA kernel families: dtype dispatch with the
// CUDA kernels' error message, operand checks, scratch buffers from the caching allocator, and
// deterministic warp-shuffle block reductions (fixed tree order, no atomics). Include only from
// .cu files.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda_check.h"
#include "core/cuda_loop.cuh"
#include "core/error.h"
#include "core/tensor.h"

namespace dfx::kernels::cuda {

using ::dfx::cuda::fits_u32;
using ::dfx::cuda::grid_for;
using ::dfx::cuda::kMaxBlocks;
using ::dfx::cuda::kThreads;
using ::dfx::cuda::launch_stream;

// Calls f(T{}) for float32 / float64 tensors, else throws naming the op and the tensor.
template <class F>
void dispatch_float_cuda(const Tensor& t, const char* op, F&& f) {
  switch (t.dtype()) {
    case DType::Float32: f(float{}); break;
    case DType::Float64: f(double{}); break;
    default:
      DFX_FAIL(op, ": the CUDA kernel supports float32 and float64, got ", t.describe());
  }
}

// As above with int64 too (reductions and argmax take integer tensors like the CPU kernels).
template <class F>
void dispatch_numeric_cuda(const Tensor& t, const char* op, F&& f) {
  switch (t.dtype()) {
    case DType::Float32: f(float{}); break;
    case DType::Float64: f(double{}); break;
    case DType::Int64: f(int64_t{}); break;
    default:
      DFX_FAIL(op, ": the CUDA kernel supports float32, float64 and int64, got ", t.describe());
  }
}

inline void check_cuda_tensor(const Tensor& t, const char* op, const char* what) {
  DFX_CHECK(t.defined(), op, ": undefined ", what);
  DFX_CHECK(t.device().is_cuda(), op, ": the CUDA kernel got ", what, " ", t.describe(),
            "; expected a CUDA tensor");
}

// Uninitialised device memory for `nbytes` (8-byte aligned, at least 8 bytes), owned by the
// returned tensor; freed through the caching allocator, which orders reuse on the stream.
inline Tensor scratch_bytes(size_t nbytes, Device device) {
  const int64_t words = static_cast<int64_t>((nbytes + 7) / 8);
  return Tensor::empty({words > 0 ? words : 1}, DType::Float64, device);
}

// Number of blocks for a grid-stride loop over n items, as a dim3 x extent.
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > kMaxBlocks) b = kMaxBlocks;
  return static_cast<unsigned>(b);
}

// ---- warp shuffles for the value types the reductions carry ----
__device__ __forceinline__ float shfl_down(float v, int off) {
  return __shfl_down_sync(0xffffffffu, v, off);
}
__device__ __forceinline__ double shfl_down(double v, int off) {
  return __shfl_down_sync(0xffffffffu, v, off);
}
__device__ __forceinline__ int64_t shfl_down(int64_t v, int off) {
  return static_cast<int64_t>(__shfl_down_sync(0xffffffffu, static_cast<long long>(v), off));
}

// Two float64 sums carried together (channel sums, BN backward sums).
struct Double2 {
  double a, b;
};
__device__ __forceinline__ Double2 shfl_down(Double2 v, int off) {
  return Double2{shfl_down(v.a, off), shfl_down(v.b, off)};
}
__device__ __forceinline__ Double2 operator+(Double2 x, Double2 y) {
  return Double2{x.a + y.a, x.b + y.b};
}

// Reduces one value per thread over the block with `combine`; the result is valid in thread 0.
// The tree is fixed by blockDim (a multiple of 32, at most 1024), so the result is bitwise
// reproducible for a given launch shape. `smem` holds 32 values. Every thread must call it.
template <class V, class F>
__device__ __forceinline__ V block_reduce(V v, F combine, V* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwarps = blockDim.x >> 5;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = combine(v, shfl_down(v, off));
  __syncthreads();  // smem may still be read by a previous call
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = smem[lane < nwarps ? lane : 0];
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      const V o = shfl_down(v, off);
      if (lane + off < nwarps) v = combine(v, o);
    }
  }
  return v;
}

}  // namespace dfx::kernels::cuda
