// core/copy.h — copies between layouts, dtypes and devices, and fills. They live in core (not
// kernels) because Tensor::contiguous()/to() and the factories need them and core sits below
// kernels. kernels/ and everything above use these same functions.
#pragma once
#include "core/tensor.h"

namespace dfx {

// dst[...] = src[...] with src broadcast to dst's shape; converts dtype; any strides; CPU<->CUDA.
void copy_(const Tensor& dst, const Tensor& src);
// As above; with non_blocking, a CPU<->GPU copy is queued on the current CUDA stream and not
// waited for when the host side is pinned (Tensor::to(device, true) documents the contract).
// A pageable host source is staged into pinned memory first; a pageable host destination makes
// the copy blocking. Copies within one GPU are always queued only.
void copy_(const Tensor& dst, const Tensor& src, bool non_blocking);
// Every element of dst (any strides) set to value, converted to dst's dtype.
void fill_(const Tensor& dst, double value);

}  // namespace dfx
