// kernels/cuda/pool.cuh — the CUDA pooling and upsampling kernels behind kernels/pool.h, with
// the signatures of kernels/cpu/pool.h (dense CUDA operands in the layout PoolPlanes names,
// geometry resolved and validated by kernels/pool.cpp). Plain C++ declarations so
// kernels/pool.cpp can include it.
#pragma once
#include "core/tensor.h"
#include "kernels/pool.h"

namespace dfx::kernels::cuda {

void max_pool(const Tensor& x, const PoolGeometry& g, const Tensor& values, const Tensor& indices);
bool pool_gather(const Tensor& x, const Tensor& indices, const PoolPlanes& planes,
                 int64_t in_numel, const Tensor& out, bool check = true);
bool pool_scatter(const Tensor& g, const Tensor& indices, const PoolPlanes& planes,
                  int64_t in_numel, bool disjoint, const Tensor& out, bool check = true);
// Without `check` the kernels still skip an out-of-range index, but its flag is not read back
// (a host wait) and the call returns true.
void separable(const Tensor& x, const AxisMap (&maps)[3], double scale, const PoolPlanes& planes,
               const Tensor& out);

}  // namespace dfx::kernels::cuda
