// kernels/cuda/elementwise.cu — elementwise unary and binary ops on the GPU (float32, float64),
// and compare / where / clamp (every dtype the CPU kernels take).
// Each op is a template parameter, so a launch runs one specialised loop: contiguous aligned inputs
// take 16-byte vector loads (float4/double2), anything else goes through the strided indexer of
// core/cuda_loop.cuh with NumPy broadcasting as stride-0 dims. Semantics follow the CPU kernels.
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "core/cuda_check.h"
#include "core/cuda_loop.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace dfx::kernels::cuda {
namespace {

using ::dfx::cuda::fits_u32;
using ::dfx::cuda::grid_for;
using ::dfx::cuda::kThreads;
using ::dfx::cuda::launch_stream;
using ::dfx::cuda::make_strided_plan;
using ::dfx::cuda::strided_offsets;
using ::dfx::cuda::StridedPlan;

// ---- the math, one overload per precision (no silent float -> double promotion) ----
__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ double m_exp(double x) { return exp(x); }
__device__ __forceinline__ float m_log(float x) { return logf(x); }
__device__ __forceinline__ double m_log(double x) { return log(x); }
__device__ __forceinline__ float m_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double m_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float m_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double m_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float m_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double m_pow(double x, double y) { return pow(x, y); }

template <UnaryOp OP, class T>
__device__ __forceinline__ T apply_unary(T x, T alpha) {
  if constexpr (OP == UnaryOp::Neg) return -x;
  else if constexpr (OP == UnaryOp::Exp) return m_exp(x);
  else if constexpr (OP == UnaryOp::Log) return m_log(x);
  else if constexpr (OP == UnaryOp::Sqrt) return m_sqrt(x);
  // 1/sqrt rather than the rsqrt intrinsic: matches the CPU kernel's rounding.
  else if constexpr (OP == UnaryOp::Rsqrt) return T(1) / m_sqrt(x);
  else if constexpr (OP == UnaryOp::Abs) return x < T(0) ? -x : x;
  else if constexpr (OP == UnaryOp::Tanh) return m_tanh(x);
  else if constexpr (OP == UnaryOp::Sigmoid) return T(1) / (T(1) + m_exp(-x));
  else if constexpr (OP == UnaryOp::Relu) return x > T(0) ? x : T(0);
  else if constexpr (OP == UnaryOp::Sign) return T((x > T(0)) - (x < T(0)));  // NaN -> 0
  else if constexpr (OP == UnaryOp::Square) return x * x;
  else if constexpr (OP == UnaryOp::Reciprocal) return T(1) / x;
  else if constexpr (OP == UnaryOp::LeakyRelu) return x > T(0) ? x : alpha * x;
  else if constexpr (OP == UnaryOp::PowScalar) return alpha == T(2) ? x * x : m_pow(x, alpha);
  else if constexpr (OP == UnaryOp::ReluMask) return x > T(0) ? T(1) : T(0);
  else if constexpr (OP == UnaryOp::LeakyReluSlope) return x > T(0) ? T(1) : alpha;
  else static_assert(OP == UnaryOp::Neg, "apply_unary: unhandled UnaryOp");
}

template <BinaryOp OP, class T>
__device__ __forceinline__ T apply_binary(T a, T b) {
  if constexpr (OP == BinaryOp::Add) return a + b;
  else if constexpr (OP == BinaryOp::Sub) return a - b;
  else if constexpr (OP == BinaryOp::Mul) return a * b;
  else if constexpr (OP == BinaryOp::Div) return a / b;
  // The CPU kernel computes pow in double for every dtype; so does this one.
  else if constexpr (OP == BinaryOp::Pow)
    return static_cast<T>(pow(static_cast<double>(a), static_cast<double>(b)));
  // Same comparison (and so the same NaN behaviour) as the CPU kernel.
  else if constexpr (OP == BinaryOp::Maximum) return a > b ? a : b;
  else if constexpr (OP == BinaryOp::Minimum) return a < b ? a : b;
  else static_assert(OP == BinaryOp::Add, "apply_binary: unhandled BinaryOp");
}

template <UnaryOp OP, class T>
struct UnaryFn {
  T alpha;
  __device__ __forceinline__ T operator()(T x) const { return apply_unary<OP, T>(x, alpha); }
};

template <BinaryOp OP, class T>
struct BinaryFn {
  __device__ __forceinline__ T operator()(T a, T b) const { return apply_binary<OP, T>(a, b); }
};

// ---- 16-byte vectors ----
template <class T> struct Vec;
template <> struct Vec<float> {
  using type = float4;
  static constexpr int lanes = 4;
};
template <> struct Vec<double> {
  using type = double2;
  static constexpr int lanes = 2;
};
template <> struct Vec<int64_t> {
  using type = longlong2;
  static constexpr int lanes = 2;
};

template <class F>
__device__ __forceinline__ float4 vmap(F f, float4 a) {
  return make_float4(f(a.x), f(a.y), f(a.z), f(a.w));
}
template <class F>
__device__ __forceinline__ double2 vmap(F f, double2 a) {
  return make_double2(f(a.x), f(a.y));
}
template <class F>
__device__ __forceinline__ float4 vmap(F f, float4 a, float4 b) {
  return make_float4(f(a.x, b.x), f(a.y, b.y), f(a.z, b.z), f(a.w, b.w));
}
template <class F>
__device__ __forceinline__ double2 vmap(F f, double2 a, double2 b) {
  return make_double2(f(a.x, b.x), f(a.y, b.y));
}
template <class F>
__device__ __forceinline__ longlong2 vmap(F f, longlong2 a, longlong2 b) {
  return make_longlong2(f(a.x, b.x), f(a.y, b.y));
}
__device__ __forceinline__ float4 splat(float v) { return make_float4(v, v, v, v); }
__device__ __forceinline__ double2 splat(double v) { return make_double2(v, v); }
__device__ __forceinline__ longlong2 splat(int64_t v) { return make_longlong2(v, v); }

// Which operand of a vectorised binary op is a single broadcast value (x * 0.5, grad * lr).
enum class Scalar { None, A, B };

// ---- kernels ----
// n elements; out and x contiguous and 16-byte aligned. Whole vectors first, then the < lanes
// leftover elements one per thread.
template <UnaryOp OP, class T>
__global__ void unary_vec_kernel(T* __restrict__ out, const T* __restrict__ x, T alpha,
                                 int64_t n) {
  using V = typename Vec<T>::type;
  constexpr int L = Vec<T>::lanes;
  const UnaryFn<OP, T> f{alpha};
  const int64_t nv = n / L;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  const V* xv = reinterpret_cast<const V*>(x);
  V* ov = reinterpret_cast<V*>(out);
  for (int64_t i = tid; i < nv; i += step) ov[i] = vmap(f, xv[i]);
  for (int64_t i = nv * L + tid; i < n; i += step) out[i] = f(x[i]);
}

template <UnaryOp OP, class T, class Index>
__global__ void unary_strided_kernel(T* __restrict__ out, const T* __restrict__ x, T alpha,
                                     StridedPlan<1> plan, Index n) {
  const UnaryFn<OP, T> f{alpha};
  const Index step = static_cast<Index>(blockDim.x) * gridDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[1];
    strided_offsets<Index, 1>(plan, i, off);
    out[i] = f(x[off[0]]);
  }
}

// A scalar operand (S != None) is read once per thread from element 0 of its pointer.
template <BinaryOp OP, class T, Scalar S>
__global__ void binary_vec_kernel(T* __restrict__ out, const T* __restrict__ a,
                                  const T* __restrict__ b, int64_t n) {
  using V = typename Vec<T>::type;
  constexpr int L = Vec<T>::lanes;
  const BinaryFn<OP, T> f{};
  const int64_t nv = n / L;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  const V* av = reinterpret_cast<const V*>(a);
  const V* bv = reinterpret_cast<const V*>(b);
  V* ov = reinterpret_cast<V*>(out);
  if constexpr (S == Scalar::A) {
    const T sa = a[0];
    const V sav = splat(sa);
    for (int64_t i = tid; i < nv; i += step) ov[i] = vmap(f, sav, bv[i]);
    for (int64_t i = nv * L + tid; i < n; i += step) out[i] = f(sa, b[i]);
  } else if constexpr (S == Scalar::B) {
    const T sb = b[0];
    const V sbv = splat(sb);
    for (int64_t i = tid; i < nv; i += step) ov[i] = vmap(f, av[i], sbv);
    for (int64_t i = nv * L + tid; i < n; i += step) out[i] = f(a[i], sb);
  } else {
    for (int64_t i = tid; i < nv; i += step) ov[i] = vmap(f, av[i], bv[i]);
    for (int64_t i = nv * L + tid; i < n; i += step) out[i] = f(a[i], b[i]);
  }
}

template <BinaryOp OP, class T, class Index>
__global__ void binary_strided_kernel(T* __restrict__ out, const T* __restrict__ a,
                                      const T* __restrict__ b, StridedPlan<2> plan, Index n) {
  const BinaryFn<OP, T> f{};
  const Index step = static_cast<Index>(blockDim.x) * gridDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[2];
    strided_offsets<Index, 2>(plan, i, off);
    out[i] = f(a[off[0]], b[off[1]]);
  }
}

// ---- launchers ----
bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

int64_t vec_count(int64_t n, int lanes) { return (n + lanes - 1) / lanes; }

template <UnaryOp OP, class T>
void launch_unary(const Tensor& out, const Tensor& x, double alpha) {
  const int64_t n = out.numel();
  T* po = static_cast<T*>(out.raw_data());
  const T* px = static_cast<const T*>(x.raw_data());
  const T a = static_cast<T>(alpha);
  if (x.is_contiguous() && aligned16(px) && aligned16(po)) {
    const unsigned grid = grid_for(vec_count(n, Vec<T>::lanes));
    unary_vec_kernel<OP, T><<<grid, kThreads, 0, launch_stream()>>>(po, px, a, n);
    DFX_CUDA_CHECK_LAUNCH(::dfx::detail::cat("unary_vec_kernel<", unary_name(OP), ", ",
                                             dtype_name(x.dtype()), ">"),
                          x.shape());
    return;
  }
  StridedPlan<1> plan = make_strided_plan<1>(x.shape(), {&x.strides()});
  if (fits_u32(n)) {
    unary_strided_kernel<OP, T, uint32_t><<<grid_for(n), kThreads, 0, launch_stream()>>>(
        po, px, a, plan, uint32_t(n));
  } else {
    unary_strided_kernel<OP, T, uint64_t><<<grid_for(n), kThreads, 0, launch_stream()>>>(
        po, px, a, plan, uint64_t(n));
  }
  DFX_CUDA_CHECK_LAUNCH(::dfx::detail::cat("unary_strided_kernel<", unary_name(OP), ", ",
                                           dtype_name(x.dtype()), ">"),
                        x.shape());
}

template <BinaryOp OP, class T>
void launch_binary(const Tensor& out, const Tensor& a, const Tensor& b) {
  const Shape& shape = out.shape();
  const int64_t n = out.numel();
  T* po = static_cast<T*>(out.raw_data());
  const T* pa = static_cast<const T*>(a.raw_data());
  const T* pb = static_cast<const T*>(b.raw_data());
  auto dense = [&](const Tensor& t, const T* p) {
    return t.shape() == shape && t.is_contiguous() && aligned16(p);
  };
  const unsigned grid = grid_for(vec_count(n, Vec<T>::lanes));
  auto vec_name = [&] {
    return ::dfx::detail::cat("binary_vec_kernel<", binary_name(OP), ", ", dtype_name(a.dtype()),
                              ">");
  };
  if (aligned16(po)) {
    if (dense(a, pa) && dense(b, pb)) {
      binary_vec_kernel<OP, T, Scalar::None><<<grid, kThreads, 0, launch_stream()>>>(po, pa, pb, n);
      DFX_CUDA_CHECK_LAUNCH(vec_name(), shape);
      return;
    }
    if (a.numel() == 1 && dense(b, pb)) {
      binary_vec_kernel<OP, T, Scalar::A><<<grid, kThreads, 0, launch_stream()>>>(po, pa, pb, n);
      DFX_CUDA_CHECK_LAUNCH(vec_name(), shape);
      return;
    }
    if (b.numel() == 1 && dense(a, pa)) {
      binary_vec_kernel<OP, T, Scalar::B><<<grid, kThreads, 0, launch_stream()>>>(po, pa, pb, n);
      DFX_CUDA_CHECK_LAUNCH(vec_name(), shape);
      return;
    }
  }
  // General case: broadcast both operands to the output shape as stride-0 views.
  Tensor ea = a.expand(shape), eb = b.expand(shape);
  StridedPlan<2> plan = make_strided_plan<2>(shape, {&ea.strides(), &eb.strides()});
  if (fits_u32(n)) {
    binary_strided_kernel<OP, T, uint32_t><<<grid_for(n), kThreads, 0, launch_stream()>>>(
        po, pa, pb, plan, uint32_t(n));
  } else {
    binary_strided_kernel<OP, T, uint64_t><<<grid_for(n), kThreads, 0, launch_stream()>>>(
        po, pa, pb, plan, uint64_t(n));
  }
  DFX_CUDA_CHECK_LAUNCH(::dfx::detail::cat("binary_strided_kernel<", binary_name(OP), ", ",
                                           dtype_name(a.dtype()), ">"),
                        shape);
}

template <class F>
void dispatch_float(const Tensor& t, const char* op, F&& f) {
  switch (t.dtype()) {
    case DType::Float32: f(float{}); break;
    case DType::Float64: f(double{}); break;
    default:
      DFX_FAIL(op, ": the CUDA kernel supports float32 and float64, got ", t.describe());
  }
}

template <class T>
void dispatch_unary(UnaryOp op, const Tensor& out, const Tensor& x, double alpha) {
  switch (op) {
#define DFX_UNARY_CASE(name) \
  case UnaryOp::name: return launch_unary<UnaryOp::name, T>(out, x, alpha);
    DFX_UNARY_CASE(Neg)
    DFX_UNARY_CASE(Exp)
    DFX_UNARY_CASE(Log)
    DFX_UNARY_CASE(Sqrt)
    DFX_UNARY_CASE(Rsqrt)
    DFX_UNARY_CASE(Abs)
    DFX_UNARY_CASE(Tanh)
    DFX_UNARY_CASE(Sigmoid)
    DFX_UNARY_CASE(Relu)
    DFX_UNARY_CASE(Sign)
    DFX_UNARY_CASE(Square)
    DFX_UNARY_CASE(Reciprocal)
    DFX_UNARY_CASE(LeakyRelu)
    DFX_UNARY_CASE(PowScalar)
    DFX_UNARY_CASE(ReluMask)
    DFX_UNARY_CASE(LeakyReluSlope)
#undef DFX_UNARY_CASE
  }
  DFX_FAIL("unary: unknown UnaryOp ", static_cast<int>(op), " for ", x.describe());
}

template <class T>
void dispatch_binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  switch (op) {
#define DFX_BINARY_CASE(name) \
  case BinaryOp::name: return launch_binary<BinaryOp::name, T>(out, a, b);
    DFX_BINARY_CASE(Add)
    DFX_BINARY_CASE(Sub)
    DFX_BINARY_CASE(Mul)
    DFX_BINARY_CASE(Div)
    DFX_BINARY_CASE(Pow)
    DFX_BINARY_CASE(Maximum)
    DFX_BINARY_CASE(Minimum)
#undef DFX_BINARY_CASE
  }
  DFX_FAIL("binary: unknown BinaryOp ", static_cast<int>(op), " for ", a.describe(), " and ",
           b.describe());
}

// Integer tensors (counters such as BatchNorm's num_batches_tracked): the ops that cannot trap.
// Division would need the CPU kernel's zero-divisor check, a device-to-host read on every call.
void dispatch_binary_int64(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  switch (op) {
    case BinaryOp::Add: return launch_binary<BinaryOp::Add, int64_t>(out, a, b);
    case BinaryOp::Sub: return launch_binary<BinaryOp::Sub, int64_t>(out, a, b);
    case BinaryOp::Mul: return launch_binary<BinaryOp::Mul, int64_t>(out, a, b);
    case BinaryOp::Maximum: return launch_binary<BinaryOp::Maximum, int64_t>(out, a, b);
    case BinaryOp::Minimum: return launch_binary<BinaryOp::Minimum, int64_t>(out, a, b);
    default: break;
  }
  DFX_FAIL(binary_name(op), ": the CUDA kernel supports int64 for add, sub, mul, maximum and "
           "minimum only, got ", a.describe(), " and ", b.describe(),
           "; expected float32 or float64 (or compute on the CPU)");
}

void check_cuda_operand(const Tensor& t, const char* op) {
  DFX_CHECK(t.defined(), op, ": undefined operand");
  DFX_CHECK(t.device().is_cuda(), op, ": the CUDA kernel got ", t.describe(),
            "; expected a CUDA tensor");
}

}  // namespace

Tensor unary(UnaryOp op, const Tensor& x, double alpha) {
  const char* name = unary_name(op);
  check_cuda_operand(x, name);
  Tensor out;
  dispatch_float(x, name, [&](auto z) {
    using T = decltype(z);
    out = Tensor::empty(x.shape(), x.dtype(), x.device());
    if (out.numel() == 0) return;
    ::dfx::cuda::DeviceGuard guard(x.device().index);
    dispatch_unary<T>(op, out, x, alpha);
  });
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_cuda_operand(a, name);
  check_cuda_operand(b, name);
  DFX_CHECK(a.device() == b.device(), name, ": operands on different devices: ", a.describe(),
            " and ", b.describe(), "; expected one device");
  DFX_CHECK(a.dtype() == b.dtype(), name, ": operands differ in dtype: ", a.describe(), " and ",
            b.describe(), "; expected the same dtype");
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  if (a.dtype() == DType::Int64) {
    Tensor out = Tensor::empty(shape, a.dtype(), a.device());
    if (out.numel() == 0) return out;
    ::dfx::cuda::DeviceGuard guard(a.device().index);
    dispatch_binary_int64(op, out, a, b);
    return out;
  }
  Tensor out;
  dispatch_float(a, name, [&](auto z) {
    using T = decltype(z);
    out = Tensor::empty(shape, a.dtype(), a.device());
    if (out.numel() == 0) return;
    ::dfx::cuda::DeviceGuard guard(a.device().index);
    dispatch_binary<T>(op, out, a, b);
  });
  return out;
}


// ---- compare, where, clamp: one strided kernel each over the broadcast output shape ----
namespace {

template <CompareOp OP, class T>
__device__ __forceinline__ bool apply_compare(T x, T y) {
  if constexpr (OP == CompareOp::Eq) return x == y;
  else if constexpr (OP == CompareOp::Ne) return x != y;
  else if constexpr (OP == CompareOp::Lt) return x < y;
  else if constexpr (OP == CompareOp::Le) return x <= y;
  else if constexpr (OP == CompareOp::Gt) return x > y;
  else return x >= y;
}

template <CompareOp OP, class T, class Index>
__global__ void compare_kernel(bool* __restrict__ out, const T* __restrict__ a,
                               const T* __restrict__ b, StridedPlan<2> plan, Index n) {
  const Index step = static_cast<Index>(blockDim.x) * gridDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[2];
    strided_offsets<Index, 2>(plan, i, off);
    out[i] = apply_compare<OP, T>(a[off[0]], b[off[1]]);
  }
}

template <class T, class Index>
__global__ void where_kernel(T* __restrict__ out, const bool* __restrict__ c,
                             const T* __restrict__ a, const T* __restrict__ b, StridedPlan<3> plan,
                             Index n) {
  const Index step = static_cast<Index>(blockDim.x) * gridDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[3];
    strided_offsets<Index, 3>(plan, i, off);
    out[i] = c[off[0]] ? a[off[1]] : b[off[2]];
  }
}

// The CPU's expressions: v < lo ? lo : (v > hi ? hi : v), and the mask lo <= v <= hi.
template <bool kMask, class T, class Index>
__global__ void clamp_kernel(T* __restrict__ out, const T* __restrict__ x, T lo, T hi,
                             StridedPlan<1> plan, Index n) {
  const Index step = static_cast<Index>(blockDim.x) * gridDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[1];
    strided_offsets<Index, 1>(plan, i, off);
    const T v = x[off[0]];
    if constexpr (kMask) out[i] = (v >= lo && v <= hi) ? T(1) : T(0);
    else out[i] = v < lo ? lo : (v > hi ? hi : v);
  }
}

template <class F>
void dispatch_all_cuda(const Tensor& t, const char* op, F&& f) {
  switch (t.dtype()) {
    case DType::Float32: f(float{}); break;
    case DType::Float64: f(double{}); break;
    case DType::Int64: f(int64_t{}); break;
    case DType::Bool: f(bool{}); break;
    default:
      DFX_FAIL(op, ": the CUDA kernel supports float32, float64, int64 and bool, got ",
               t.describe());
  }
}

// Launches kernel<Index> over n elements with 32-bit indices when they suffice.
template <class Launch>
void launch_indexed(int64_t n, Launch&& launch) {
  if (fits_u32(n)) launch(uint32_t{});
  else launch(uint64_t{});
}

const char* compare_name(CompareOp op) {
  switch (op) {
    case CompareOp::Eq: return "eq";
    case CompareOp::Ne: return "ne";
    case CompareOp::Lt: return "lt";
    case CompareOp::Le: return "le";
    case CompareOp::Gt: return "gt";
    case CompareOp::Ge: return "ge";
  }
  return "compare";
}

template <CompareOp OP, class T>
void launch_compare(const Tensor& out, const Tensor& ea, const Tensor& eb) {
  const int64_t n = out.numel();
  StridedPlan<2> plan = make_strided_plan<2>(out.shape(), {&ea.strides(), &eb.strides()});
  launch_indexed(n, [&](auto idx) {
    using Index = decltype(idx);
    compare_kernel<OP, T, Index><<<grid_for(n), kThreads, 0, launch_stream()>>>(
        out.data<bool>(), static_cast<const T*>(ea.raw_data()),
        static_cast<const T*>(eb.raw_data()), plan, static_cast<Index>(n));
  });
  DFX_CUDA_CHECK_LAUNCH(::dfx::detail::cat("compare_kernel<", compare_name(OP), ", ",
                                           dtype_name(ea.dtype()), ">"),
                        out.shape());
}

}  // namespace

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  check_cuda_operand(a, "compare");
  check_cuda_operand(b, "compare");
  DFX_CHECK(a.device() == b.device() && a.dtype() == b.dtype(), "compare: operands ",
            a.describe(), " and ", b.describe(), " differ; expected one dtype on one device");
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "compare");
  Tensor out = Tensor::empty(shape, DType::Bool, a.device());
  if (out.numel() == 0) return out;
  ::dfx::cuda::DeviceGuard guard(a.device().index);
  const Tensor ea = a.expand(shape), eb = b.expand(shape);
  dispatch_all_cuda(a, "compare", [&](auto z) {
    using T = decltype(z);
    switch (op) {
      case CompareOp::Eq: return launch_compare<CompareOp::Eq, T>(out, ea, eb);
      case CompareOp::Ne: return launch_compare<CompareOp::Ne, T>(out, ea, eb);
      case CompareOp::Lt: return launch_compare<CompareOp::Lt, T>(out, ea, eb);
      case CompareOp::Le: return launch_compare<CompareOp::Le, T>(out, ea, eb);
      case CompareOp::Gt: return launch_compare<CompareOp::Gt, T>(out, ea, eb);
      case CompareOp::Ge: return launch_compare<CompareOp::Ge, T>(out, ea, eb);
    }
  });
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_cuda_operand(cond, "where");
  check_cuda_operand(a, "where");
  check_cuda_operand(b, "where");
  DFX_CHECK(cond.dtype() == DType::Bool, "where: condition must be bool, got ", cond.describe());
  DFX_CHECK(a.dtype() == b.dtype(), "where: operands ", a.describe(), " and ", b.describe(),
            " differ in dtype; expected the same dtype");
  const Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  ::dfx::cuda::DeviceGuard guard(a.device().index);
  const Tensor ec = cond.expand(shape), ea = a.expand(shape), eb = b.expand(shape);
  const StridedPlan<3> plan =
      make_strided_plan<3>(shape, {&ec.strides(), &ea.strides(), &eb.strides()});
  dispatch_all_cuda(a, "where", [&](auto z) {
    using T = decltype(z);
    launch_indexed(n, [&](auto idx) {
      using Index = decltype(idx);
      where_kernel<T, Index><<<grid_for(n), kThreads, 0, launch_stream()>>>(
          out.data<T>(), static_cast<const bool*>(ec.raw_data()),
          static_cast<const T*>(ea.raw_data()), static_cast<const T*>(eb.raw_data()), plan,
          static_cast<Index>(n));
    });
    DFX_CUDA_CHECK_LAUNCH(::dfx::detail::cat("where_kernel<", dtype_name(a.dtype()), ">"), shape);
  });
  return out;
}

namespace {

template <class T>
__global__ void adam_update_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m,
                                   T* __restrict__ v, int64_t n, T b1, T ob1, T b2, T ob2, T isb,
                                   T eps, T neg_step, T wd, bool decay) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const T pi = p[i];
    const T gv = decay ? g[i] + pi * wd : g[i];
    const T mi = m[i] * b1 + gv * ob1;
    const T vi = v[i] * b2 + (gv * gv) * ob2;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + neg_step * (mi / (sqrt(vi) * isb + eps));
  }
}

template <class T>
__global__ void leaky_relu_backward_kernel(const T* __restrict__ g, const T* __restrict__ y,
                                           T* __restrict__ out, int64_t n, T slope) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    out[i] = y[i] > T(0) ? g[i] : g[i] * slope;
}

}  // namespace

void leaky_relu_backward(const Tensor& g, const Tensor& y, double slope, const Tensor& out) {
  for (const Tensor* t : {&g, &y, &out}) check_cuda_operand(*t, "leaky_relu_backward");
  const int64_t n = y.numel();
  if (n == 0) return;
  ::dfx::cuda::DeviceGuard guard(y.device().index);
  auto run = [&](auto z) {
    using T = decltype(z);
    leaky_relu_backward_kernel<T><<<grid_for(n), kThreads, 0, launch_stream()>>>(
        g.data<T>(), y.data<T>(), out.data<T>(), n, static_cast<T>(slope));
    DFX_CUDA_CHECK_LAUNCH(
        ::dfx::detail::cat("leaky_relu_backward_kernel<", dtype_name(y.dtype()), ">"), y.shape());
  };
  switch (y.dtype()) {
    case DType::Float32: run(float{}); break;
    case DType::Float64: run(double{}); break;
    default:
      DFX_FAIL("leaky_relu_backward: the CUDA kernel supports float32 and float64, got ",
               y.describe());
  }
}

void adam_update_(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                  const AdamUpdate& u) {
  for (const Tensor* t : {&p, &g, &m, &v}) check_cuda_operand(*t, "adam_update_");
  const int64_t n = p.numel();
  if (n == 0) return;
  ::dfx::cuda::DeviceGuard guard(p.device().index);
  auto run = [&](auto z) {
    using T = decltype(z);
    adam_update_kernel<T><<<grid_for(n), kThreads, 0, launch_stream()>>>(
        p.data<T>(), g.data<T>(), m.data<T>(), v.data<T>(), n, static_cast<T>(u.beta1),
        static_cast<T>(1.0 - u.beta1), static_cast<T>(u.beta2), static_cast<T>(1.0 - u.beta2),
        static_cast<T>(u.inv_sqrt_bc2), static_cast<T>(u.eps), static_cast<T>(-u.step),
        static_cast<T>(u.weight_decay), u.weight_decay != 0.0);
    DFX_CUDA_CHECK_LAUNCH(::dfx::detail::cat("adam_update_kernel<", dtype_name(p.dtype()), ">"),
                          p.shape());
  };
  switch (p.dtype()) {
    case DType::Float32: run(float{}); break;
    case DType::Float64: run(double{}); break;
    default: DFX_FAIL("adam_update_: the CUDA kernel supports float32 and float64, got ", p.describe());
  }
}

Tensor clamp(const Tensor& x, double lo, double hi, bool mask) {
  const char* name = mask ? "clamp_mask" : "clamp";
  check_cuda_operand(x, name);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  ::dfx::cuda::DeviceGuard guard(x.device().index);
  const StridedPlan<1> plan = make_strided_plan<1>(x.shape(), {&x.strides()});
  auto run = [&](auto z) {
    using T = decltype(z);
    const T l = static_cast<T>(lo), h = static_cast<T>(hi);
    launch_indexed(n, [&](auto idx) {
      using Index = decltype(idx);
      if (mask)
        clamp_kernel<true, T, Index><<<grid_for(n), kThreads, 0, launch_stream()>>>(
            out.data<T>(), static_cast<const T*>(x.raw_data()), l, h, plan, static_cast<Index>(n));
      else
        clamp_kernel<false, T, Index><<<grid_for(n), kThreads, 0, launch_stream()>>>(
            out.data<T>(), static_cast<const T*>(x.raw_data()), l, h, plan, static_cast<Index>(n));
    });
    DFX_CUDA_CHECK_LAUNCH(::dfx::detail::cat(name, "_kernel<", dtype_name(x.dtype()), ">"),
                          x.shape());
  };
  switch (x.dtype()) {
    case DType::Float32: run(float{}); break;
    case DType::Float64: run(double{}); break;
    case DType::Int64: run(int64_t{}); break;
    default:
      DFX_FAIL(name, ": the CUDA kernel supports float32, float64 and int64, got ", x.describe());
  }
  return out;
}

}  // namespace dfx::kernels::cuda
