// kernels/shape_ops.h — joining and splitting along a dim. Copies and fills between layouts are
// core's copy_/fill_ (core/copy.h), shared by every layer.
#pragma once
#include <vector>

#include "core/copy.h"
#include "core/tensor.h"

namespace dfx::kernels {

Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
// Views of consecutive pieces of the given sizes along `dim` (sizes must add up to the dim).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
// Zeros of `shape` with x copied into [start, start + x.size(dim)) along `dim` (narrow's adjoint).
Tensor unnarrow(const Tensor& x, const Shape& shape, int64_t dim, int64_t start);

}  // namespace dfx::kernels
