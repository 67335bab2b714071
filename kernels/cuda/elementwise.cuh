// kernels/cuda/elementwise.cuh — the CUDA elementwise unary and binary kernels behind
// kernels/elementwise.h. Plain C++ declarations (no CUDA syntax) so that kernels/elementwise.cpp
// can include it when DFX_HAVE_CUDA is 1.
#pragma once
#include "core/tensor.h"
#include "kernels/elementwise.h"

namespace dfx::kernels::cuda {

// float32 and float64 on one GPU; any strides; returns a new contiguous tensor on x's device.
Tensor unary(UnaryOp op, const Tensor& x, double alpha);
// NumPy broadcasting of a and b (same dtype, same device); returns a new contiguous tensor.
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
// float32, float64, int64 and bool; broadcasting; -> bool / a's dtype, new and contiguous.
Tensor compare(CompareOp op, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// clamp to [lo, hi], or (mask) 1 where lo <= x <= hi else 0; float32, float64 and int64.
Tensor clamp(const Tensor& x, double lo, double hi, bool mask);
// out = g * (y > 0 ? 1 : slope); g, y and out dense with identical strides.
void leaky_relu_backward(const Tensor& g, const Tensor& y, double slope, const Tensor& out);
// p, g, m, v dense with identical strides (checked by the entry point): one flat pass.
void adam_update_(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                  const AdamUpdate& u);

}  // namespace dfx::kernels::cuda
