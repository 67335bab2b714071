// kernels/elementwise.h — elementwise unary, binary (NumPy broadcasting), comparison, where and
// clamp. One entry point per family; each dispatches by device to kernels/cpu/elementwise.cpp or
// kernels/cuda/elementwise.cu. Outputs are new contiguous tensors; inputs may have any strides.
#pragma once
#include "core/copy.h"
#include "core/tensor.h"

namespace dfx::kernels {

enum class UnaryOp {
  Neg, Exp, Log, Sqrt, Rsqrt, Abs, Tanh, Sigmoid, Relu, Sign, Square, Reciprocal,
  LeakyRelu,      // alpha = negative slope
  PowScalar,      // x ^ alpha
  ReluMask,       // 1 where x > 0 else 0 (the derivative of relu)
  LeakyReluSlope, // 1 where x > 0 else alpha (the derivative of leaky_relu)
};
enum class BinaryOp { Add, Sub, Mul, Div, Pow, Maximum, Minimum };
enum class CompareOp { Eq, Ne, Lt, Le, Gt, Ge };

const char* unary_name(UnaryOp op);
const char* binary_name(BinaryOp op);

Tensor unary(UnaryOp op, const Tensor& x, double alpha = 0.0);
// Result dtype: both operands' dtype (they must match; scalars are 0-d tensors of that dtype).
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor compare(CompareOp op, const Tensor& a, const Tensor& b);  // -> Bool
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor clamp(const Tensor& x, double lo, double hi);
// 1 where lo <= x <= hi, else 0, in x's dtype (the derivative of clamp).
Tensor clamp_mask(const Tensor& x, double lo, double hi);

// a += alpha * b in place (a contiguous, b broadcast to a): the accumulate used by optimisers and
// gradient buffers.
void axpy_(const Tensor& a, double alpha, const Tensor& b);
// x *= alpha in place.
void scale_(const Tensor& x, double alpha);

inline Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Add, a, b); }
inline Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Sub, a, b); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }
inline Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Div, a, b); }

}  // namespace dfx::kernels
