// kernels/reduce.h — reductions over chosen dims (empty list = all dims). Float32 sums accumulate
// in float64 per output element, so results do not depend on the thread count.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace dfx::kernels {

enum class ReduceOp { Sum, Mean, Max, Min };

Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims = {},
              bool keepdim = false);
inline Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false) {
  return reduce(ReduceOp::Sum, x, dims, keepdim);
}
inline Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false) {
  return reduce(ReduceOp::Mean, x, dims, keepdim);
}
inline Tensor amax(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false) {
  return reduce(ReduceOp::Max, x, dims, keepdim);
}
inline Tensor amin(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false) {
  return reduce(ReduceOp::Min, x, dims, keepdim);
}
// Variance with `correction` (1 = unbiased, 0 = population).
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1,
           bool keepdim = false);
// Index (int64) of the first maximum along `dim`.
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);

// Sums x down to `shape` (the reverse of broadcasting `shape` to x's shape).
Tensor sum_to(const Tensor& x, const Shape& shape);

// Sorted, wrapped dims; all dims when `dims` is empty.
std::vector<int> normalize_dims(const std::vector<int64_t>& dims, int ndim, const char* op);
// The output shape of a reduction.
Shape reduced_shape(const Shape& in, const std::vector<int>& dims, bool keepdim);

}  // namespace dfx::kernels
