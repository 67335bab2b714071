// kernels/cpu/elementwise.h — CPU implementations behind kernels/elementwise.h.
#pragma once
#include "kernels/elementwise.h"

namespace dfx::kernels::cpu {

Tensor unary(UnaryOp op, const Tensor& x, double alpha);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor compare(CompareOp op, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor clamp(const Tensor& x, double lo, double hi, bool mask);
void axpy_(const Tensor& a, double alpha, const Tensor& b);
// p, g, m, v dense with identical strides (checked by the entry point): a flat loop.
// out = g * (y > 0 ? 1 : slope); g, y and out dense with identical strides.
void leaky_relu_backward(const Tensor& g, const Tensor& y, double slope, const Tensor& out);
void adam_update_(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                  const AdamUpdate& u);

}  // namespace dfx::kernels::cpu
