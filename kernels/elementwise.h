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

// One Adam step fused into one pass (PyTorch's formula; the optimiser folds the bias
// corrections into step and inv_sqrt_bc2):
//   g' = g + weight_decay * p   (L2; 0 for none)
//   m  = beta1 m + (1 - beta1) g'        v = beta2 v + (1 - beta2) g'^2
//   p -= step * m / (sqrt(v) * inv_sqrt_bc2 + eps)
// p, m and v are updated in place and must be dense with identical strides (contiguous or
// channels-last); g is brought to their layout when it differs. Each element in float32/float64
// with the constants rounded to that dtype, as the unfused ops do.
struct AdamUpdate {
  double beta1 = 0.9, beta2 = 0.999, step = 1e-3, inv_sqrt_bc2 = 1.0, eps = 1e-8;
  double weight_decay = 0.0;
};
void adam_update_(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                  const AdamUpdate& u);

// g * (y > 0 ? 1 : slope): leaky_relu's backward read off its output y (for slope >= 0, y > 0
// exactly where the input is), in one pass. g and y have one shape and dtype; the result takes
// y's layout (contiguous or channels-last).
Tensor leaky_relu_backward(const Tensor& g, const Tensor& y, double slope);

inline Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Add, a, b); }
inline Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Sub, a, b); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }
inline Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Div, a, b); }

}  // namespace dfx::kernels
