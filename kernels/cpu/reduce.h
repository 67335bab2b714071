// kernels/cpu/reduce.h — CPU implementations behind kernels/reduce.h.
#pragma once
#include "kernels/reduce.h"

namespace dfx::kernels::cpu {

// Reduces x over `dims` (sorted, unique, non-empty) into `out` (contiguous, the kept dims' shape).
void reduce(ReduceOp op, const Tensor& x, const std::vector<int>& dims, const Tensor& out);
void var(const Tensor& x, const std::vector<int>& dims, int64_t correction, const Tensor& out);
void argmax(const Tensor& x, int dim, const Tensor& out);

}  // namespace dfx::kernels::cpu
