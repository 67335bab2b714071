// kernels/cuda/reduce.cuh — the CUDA reductions behind kernels/reduce.h, with the signatures of
// kernels/cpu/reduce.h. Plain C++ declarations so kernels/reduce.cpp can include it.
#pragma once
#include <vector>

#include "core/tensor.h"
#include "kernels/reduce.h"

namespace dfx::kernels::cuda {

// Reduces x over `dims` (sorted, unique, non-empty) into `out` (contiguous, the kept dims' shape).
// float32, float64 and int64 (var: float32 and float64), like the CPU kernels.
void reduce(ReduceOp op, const Tensor& x, const std::vector<int>& dims, const Tensor& out);
void var(const Tensor& x, const std::vector<int>& dims, int64_t correction, const Tensor& out);
void argmax(const Tensor& x, int dim, const Tensor& out);

}  // namespace dfx::kernels::cuda
