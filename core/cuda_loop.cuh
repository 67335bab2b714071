// core/cuda_loop.cuh — the strided n-d indexing shared by the CUDA copy/fill kernels in core and
// the elementwise kernels in kernels/cuda: a merged loop plan passed to a kernel by value, and the
// linear-index -> per-operand offset decomposition. Include only from .cu files.
#pragma once
#include <array>
#include <cstdint>
#include <limits>

#include "core/strided_loop.h"
#include "core/tensor.h"

namespace dfx::cuda {

constexpr int kThreads = 256;
// Grid-stride loops cover the rest; more blocks than this only adds scheduling overhead.
constexpr int64_t kMaxBlocks = 65536;

inline unsigned grid_for(int64_t n) {
  int64_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks < 1) blocks = 1;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  return static_cast<unsigned>(blocks);
}

// Shape and strides (in elements) of K operands over one common row-major iteration space,
// with dims merged the way the CPU loops merge them (core/strided_loop.h). Small and trivially
// copyable so that it travels as a kernel argument.
template <int K>
struct StridedPlan {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[K][kMaxDims] = {};
};

// Merging contiguous dims and dropping size-1 dims keeps the row-major order of `shape`, so the
// linear index over the plan is also the linear index into a contiguous tensor of `shape`.
template <int K>
StridedPlan<K> make_strided_plan(const Shape& shape, const std::array<const Shape*, K>& strides) {
  std::array<const std::vector<int64_t>*, K> s;
  for (int k = 0; k < K; ++k) s[k] = strides[k];
  ::dfx::detail::LoopPlan<K> lp = ::dfx::detail::make_loop_plan<K>(shape, s);
  StridedPlan<K> p;
  p.ndim = static_cast<int>(lp.shape.size());
  for (int d = 0; d < p.ndim; ++d) {
    p.shape[d] = lp.shape[d];
    for (int k = 0; k < K; ++k) p.strides[k][d] = lp.strides[k][d];
  }
  return p;
}

// 32-bit index arithmetic is several times cheaper than 64-bit division on the GPU; kernels are
// instantiated for both and the launcher picks 32 bits when the element count allows. The margin
// keeps the last grid-stride step (i + blocks * threads) from wrapping around in 32 bits.
inline bool fits_u32(int64_t n) {
  constexpr int64_t max_step = kMaxBlocks * kThreads;
  return n >= 0 && n <= static_cast<int64_t>(std::numeric_limits<uint32_t>::max()) - max_step;
}

template <class Index, int K>
__device__ __forceinline__ void strided_offsets(const StridedPlan<K>& p, Index linear,
                                                int64_t (&off)[K]) {
#pragma unroll
  for (int k = 0; k < K; ++k) off[k] = 0;
  Index rem = linear;
#pragma unroll
  for (int d = kMaxDims - 1; d >= 0; --d) {
    if (d < p.ndim) {
      const Index size = static_cast<Index>(p.shape[d]);
      const Index i = rem % size;
      rem /= size;
#pragma unroll
      for (int k = 0; k < K; ++k) off[k] += static_cast<int64_t>(i) * p.strides[k][d];
    }
  }
}

}  // namespace dfx::cuda
