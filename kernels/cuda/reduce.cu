// kernels/cuda/reduce.cu — reductions on the GPU. The reduced dims are moved innermost (one
// contiguous row of R elements per output element), except when they are the leading dims of a
// contiguous tensor, where each thread walks one column (the bias-style sum over the batch).
// Long rows/columns are cut into a number of chunks that depends only on the shape; each chunk is
// reduced by one block (warp shuffles, fixed tree) or one thread, the partials are combined in
// chunk order by a second kernel. No atomics: results are bitwise reproducible run to run.
// Float32 sums accumulate in float64, as on the CPU.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/reduce_rows.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/reduce.cuh"

namespace dfx::kernels::cuda {
namespace {

template <class T> struct AccOf { using type = T; };
template <> struct AccOf<float> { using type = double; };

template <class T>
__device__ __forceinline__ T lowest_of() {
  if constexpr (std::is_floating_point_v<T>) return -INFINITY;
  else return std::numeric_limits<T>::min();
}
template <class T>
__device__ __forceinline__ T highest_of() {
  if constexpr (std::is_floating_point_v<T>) return INFINITY;
  else return std::numeric_limits<T>::max();
}

// ---- reduction ops: identity, load (value, row m, position r in the row), combine, finalize ----
template <class T, bool kMean>
struct SumOp {
  using In = T;
  using Acc = typename AccOf<T>::type;
  using Out = T;
  int64_t R;
  __device__ Acc identity() const { return Acc(0); }
  __device__ Acc load(T v, int64_t, int64_t) const { return static_cast<Acc>(v); }
  __device__ Acc combine(Acc a, Acc b) const { return a + b; }
  __device__ Out finalize(Acc a) const {
    // Divide in double, as the CPU does (an int64 mean is the truncated double quotient).
    if constexpr (kMean) return static_cast<T>(static_cast<double>(a) / static_cast<double>(R));
    else return static_cast<T>(a);
  }
};

// NaN wins (propagates), as in the CPU's `row[r] > v || row[r] != row[r]`.
template <class T, bool kMax>
struct ExtremeOp {
  using In = T;
  using Acc = T;
  using Out = T;
  __device__ Acc identity() const { return kMax ? lowest_of<T>() : highest_of<T>(); }
  __device__ Acc load(T v, int64_t, int64_t) const { return v; }
  __device__ Acc combine(Acc a, Acc b) const {
    const bool take = kMax ? (b > a || b != b) : (b < a || b != b);
    return (take && !(a != a)) ? b : a;
  }
  __device__ Out finalize(Acc a) const { return a; }
};

// Row means in float64 (var's first pass).
template <class T>
struct MeanF64Op {
  using In = T;
  using Acc = double;
  using Out = double;
  int64_t R;
  __device__ Acc identity() const { return 0.0; }
  __device__ Acc load(T v, int64_t, int64_t) const { return static_cast<double>(v); }
  __device__ Acc combine(Acc a, Acc b) const { return a + b; }
  __device__ Out finalize(Acc a) const { return a / static_cast<double>(R); }
};

// Sum of squared deviations from the row mean, divided by R - correction (var's second pass).
template <class T>
struct VarOp {
  using In = T;
  using Acc = double;
  using Out = T;
  const double* mean;
  double denom;
  __device__ Acc identity() const { return 0.0; }
  __device__ Acc load(T v, int64_t m, int64_t) const {
    const double d = static_cast<double>(v) - mean[m];
    return d * d;
  }
  __device__ Acc combine(Acc a, Acc b) const { return a + b; }
  __device__ Out finalize(Acc a) const {
    return static_cast<T>(denom > 0 ? a / denom : NAN);
  }
};

template <class T>
struct ArgPair {
  T v;
  int64_t i;
};
template <class T>
__device__ __forceinline__ ArgPair<T> shfl_down(ArgPair<T> p, int off) {
  return ArgPair<T>{::dfx::kernels::cuda::shfl_down(p.v, off),
                    ::dfx::kernels::cuda::shfl_down(p.i, off)};
}

// First index of the maximum. The CPU scans `row[r] > row[best]`: a NaN at r = 0 is never beaten
// (loaded here as +inf at index 0, which nothing exceeds and no smaller index ties), a NaN
// elsewhere never wins (loaded as the identity). Max with smallest-index ties is associative, so
// any tree gives the CPU's answer.
template <class T>
struct ArgmaxOp {
  using In = T;
  using Acc = ArgPair<T>;
  using Out = int64_t;
  __device__ Acc identity() const { return Acc{lowest_of<T>(), std::numeric_limits<int64_t>::max()}; }
  __device__ Acc load(T v, int64_t, int64_t r) const {
    if (v != v) return r == 0 ? Acc{highest_of<T>(), 0} : identity();
    return Acc{v, r};
  }
  __device__ Acc combine(Acc a, Acc b) const {
    return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
  }
  __device__ Out finalize(Acc a) const { return a.i; }
};

// ---- kernels ----
// Block (m, g) reduces elements [g * chunk, min(R, (g + 1) * chunk)) of row m of x [M, R]. With
// one chunk per row it writes the final value, else partial[m * G + g].
template <class Op>
__global__ void reduce_rows_kernel(const typename Op::In* __restrict__ x, int64_t R, int64_t G,
                                   int64_t chunk, Op op, typename Op::Out* __restrict__ out,
                                   typename Op::Acc* __restrict__ partial) {
  using Acc = typename Op::Acc;
  __shared__ Acc smem[32];
  const int64_t b = blockIdx.x;
  const int64_t m = b / G, g = b % G;
  const int64_t lo = g * chunk, hi = min(R, lo + chunk);
  const typename Op::In* row = x + m * R;
  Acc acc = op.identity();
  for (int64_t r = lo + threadIdx.x; r < hi; r += blockDim.x) acc = op.combine(acc, op.load(row[r], m, r));
  acc = block_reduce(acc, [&](Acc a, Acc c) { return op.combine(a, c); }, smem);
  if (threadIdx.x == 0) {
    if (G == 1) out[m] = op.finalize(acc);
    else partial[b] = acc;
  }
}

// Thread m combines partial[m * G .. m * G + G) in order (row layout) or partial[g * M + m]
// (column layout, stride M).
template <class Op>
__global__ void combine_partials_kernel(const typename Op::Acc* __restrict__ partial, int64_t M,
                                        int64_t G, int64_t step_m, int64_t step_g, Op op,
                                        typename Op::Out* __restrict__ out) {
  for (int64_t m = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; m < M;
       m += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    typename Op::Acc a = partial[m * step_m];
    for (int64_t g = 1; g < G; ++g) a = op.combine(a, partial[m * step_m + g * step_g]);
    out[m] = op.finalize(a);
  }
}

// x [R, M] contiguous: thread (column m, chunk g) sums rows [g * chunk, ...) of column m in order.
template <class Op>
__global__ void reduce_cols_kernel(const typename Op::In* __restrict__ x, int64_t R, int64_t M,
                                   int64_t G, int64_t chunk, Op op,
                                   typename Op::Out* __restrict__ out,
                                   typename Op::Acc* __restrict__ partial) {
  const int64_t m = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t g = blockIdx.y;
  if (m >= M) return;
  const int64_t lo = g * chunk, hi = min(R, lo + chunk);
  typename Op::Acc acc = op.identity();
  for (int64_t r = lo; r < hi; ++r) acc = op.combine(acc, op.load(x[r * M + m], m, r));
  if (G == 1) out[m] = op.finalize(acc);
  else partial[g * M + m] = acc;
}

// ---- launchers ----
constexpr int64_t kRowChunkMin = 2048;   // elements a block reduces at least per chunk
constexpr int64_t kTargetBlocks = 1024;  // enough blocks to fill an H100 (132 SMs) several times

template <class Op>
void reduce_rows(const typename Op::In* x, int64_t M, int64_t R, Op op, typename Op::Out* out,
                 Device dev, const std::string& name, const Shape& shape) {
  if (M == 0) return;
  // Chunks per row: from the shape alone, so a given shape always reduces in the same order.
  int64_t G = 1;
  if (M < kTargetBlocks && R > kRowChunkMin) {
    G = std::min<int64_t>((kTargetBlocks + M - 1) / M, (R + kRowChunkMin - 1) / kRowChunkMin);
    G = std::min<int64_t>(G, 1024);
  }
  const int64_t chunk = G > 1 ? (R + G - 1) / G : R;
  const int threads = R >= 1024 ? 256 : (R >= 256 ? 128 : 64);
  Tensor part;
  typename Op::Acc* pp = nullptr;
  if (G > 1) {
    part = scratch_bytes(static_cast<size_t>(M * G) * sizeof(typename Op::Acc), dev);
    pp = static_cast<typename Op::Acc*>(part.raw_data());
  }
  DFX_CHECK(M * G <= std::numeric_limits<int32_t>::max(), name, ": ", M * G,
            " blocks exceed the grid limit for shape ", shape);
  reduce_rows_kernel<Op><<<static_cast<unsigned>(M * G), threads, 0, launch_stream()>>>(
      x, R, G, chunk, op, out, pp);
  DFX_CUDA_CHECK_LAUNCH(name + " (reduce_rows_kernel)", shape);
  if (G > 1) {
    combine_partials_kernel<Op><<<blocks_for(M), kThreads, 0, launch_stream()>>>(
        pp, M, G, G, 1, op, out);
    DFX_CUDA_CHECK_LAUNCH(name + " (combine_partials_kernel)", shape);
  }
}

template <class Op>
void reduce_cols(const typename Op::In* x, int64_t R, int64_t M, Op op, typename Op::Out* out,
                 Device dev, const std::string& name, const Shape& shape) {
  if (M == 0) return;
  constexpr int64_t kTargetThreads = 1 << 17;
  int64_t G = 1;
  if (M < kTargetThreads && R > 64) {
    G = std::min<int64_t>((kTargetThreads + M - 1) / M, (R + 63) / 64);
    G = std::min<int64_t>(G, 4096);
  }
  const int64_t chunk = G > 1 ? (R + G - 1) / G : R;
  Tensor part;
  typename Op::Acc* pp = nullptr;
  if (G > 1) {
    part = scratch_bytes(static_cast<size_t>(M * G) * sizeof(typename Op::Acc), dev);
    pp = static_cast<typename Op::Acc*>(part.raw_data());
  }
  const int64_t bx = (M + kThreads - 1) / kThreads;
  DFX_CHECK(bx <= std::numeric_limits<int32_t>::max(), name, ": too many columns in ", shape);
  dim3 grid(static_cast<unsigned>(bx), static_cast<unsigned>(G));
  reduce_cols_kernel<Op><<<grid, kThreads, 0, launch_stream()>>>(x, R, M, G, chunk, op, out, pp);
  DFX_CUDA_CHECK_LAUNCH(name + " (reduce_cols_kernel)", shape);
  if (G > 1) {
    combine_partials_kernel<Op><<<blocks_for(M), kThreads, 0, launch_stream()>>>(
        pp, M, G, 1, M, op, out);
    DFX_CUDA_CHECK_LAUNCH(name + " (combine_partials_kernel)", shape);
  }
}

const char* reduce_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Mean: return "mean";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
  }
  return "reduce";
}

template <class Op>
void run(const Tensor& x, const std::vector<int>& dims, Op op, bool allow_cols,
         typename Op::Out* out, const std::string& name) {
  int64_t M, R;
  if (allow_cols && leading_dims(x, dims)) {
    R = 1;
    for (int d : dims) R *= x.shape()[d];
    M = 1;
    for (int d = static_cast<int>(dims.size()); d < x.dim(); ++d) M *= x.shape()[d];
    if constexpr (requires { op.R; }) op.R = R;
    reduce_cols<Op>(static_cast<const typename Op::In*>(x.raw_data()), R, M, op, out, x.device(),
                    name, x.shape());
    return;
  }
  Tensor rows = rows_view(x, dims, M, R);
  if constexpr (requires { op.R; }) op.R = R;
  reduce_rows<Op>(static_cast<const typename Op::In*>(rows.raw_data()), M, R, op, out, x.device(),
                  name, x.shape());
}

}  // namespace

void reduce(ReduceOp op, const Tensor& x, const std::vector<int>& dims, const Tensor& out) {
  const char* name = reduce_name(op);
  check_cuda_tensor(x, name, "input");
  check_cuda_tensor(out, name, "output");
  ::dfx::cuda::DeviceGuard guard(x.device().index);
  dispatch_numeric_cuda(x, name, [&](auto z) {
    using T = decltype(z);
    T* po = out.data<T>();
    const std::string kname = ::dfx::detail::cat(name, "<", dtype_name(x.dtype()), ">");
    switch (op) {
      case ReduceOp::Sum: return run(x, dims, SumOp<T, false>{0}, true, po, kname);
      case ReduceOp::Mean: return run(x, dims, SumOp<T, true>{0}, true, po, kname);
      case ReduceOp::Max:
      case ReduceOp::Min: {
        int64_t R = 1;
        for (int d : dims) R *= x.shape()[d];
        DFX_CHECK(R > 0, "reduce: max/min over an empty dimension of ", x.describe());
        if (op == ReduceOp::Max) return run(x, dims, ExtremeOp<T, true>{}, false, po, kname);
        return run(x, dims, ExtremeOp<T, false>{}, false, po, kname);
      }
    }
  });
}

void var(const Tensor& x, const std::vector<int>& dims, int64_t correction, const Tensor& out) {
  check_cuda_tensor(x, "var", "input");
  check_cuda_tensor(out, "var", "output");
  ::dfx::cuda::DeviceGuard guard(x.device().index);
  dispatch_float_cuda(x, "var", [&](auto z) {
    using T = decltype(z);
    int64_t M, R;
    Tensor rows = rows_view(x, dims, M, R);
    if (M == 0) return;
    const std::string kname = ::dfx::detail::cat("var<", dtype_name(x.dtype()), ">");
    Tensor mean = Tensor::empty({M}, DType::Float64, x.device());
    const T* px = rows.data<T>();
    reduce_rows<MeanF64Op<T>>(px, M, R, MeanF64Op<T>{R}, mean.data<double>(), x.device(),
                              kname + " mean", x.shape());
    VarOp<T> op{mean.data<double>(), static_cast<double>(R - correction)};
    reduce_rows<VarOp<T>>(px, M, R, op, out.data<T>(), x.device(), kname, x.shape());
  });
}

void argmax(const Tensor& x, int dim, const Tensor& out) {
  check_cuda_tensor(x, "argmax", "input");
  check_cuda_tensor(out, "argmax", "output");
  ::dfx::cuda::DeviceGuard guard(x.device().index);
  dispatch_numeric_cuda(x, "argmax", [&](auto z) {
    using T = decltype(z);
    int64_t M, R;
    Tensor rows = rows_view(x, {dim}, M, R);
    DFX_CHECK(R > 0, "argmax: empty dim ", dim, " of ", x.describe());
    reduce_rows<ArgmaxOp<T>>(rows.data<T>(), M, R, ArgmaxOp<T>{}, out.data<int64_t>(), x.device(),
                             ::dfx::detail::cat("argmax<", dtype_name(x.dtype()), ">"),
                             x.shape());
  });
}

}  // namespace dfx::kernels::cuda
