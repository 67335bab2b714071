// core/copy.h — copies between layouts, dtypes and devices, and fills. They live in core (not
// kernels) because Tensor::contiguous()/to() and the factories need them and core sits below
// kernels. kernels/ and everything above use these same functions.
#pragma once
#include "core/tensor.h"

namespace dfx {

// dst[...] = src[...] with src broadcast to dst's shape; converts dtype; any strides; CPU<->CUDA.
void copy_(const Tensor& dst, const Tensor& src);
// Every element of dst (any strides) set to value, converted to dst's dtype.
void fill_(const Tensor& dst, double value);

}  // namespace dfx
