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

}  // namespace dfx::kernels::cuda
