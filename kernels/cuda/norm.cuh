// kernels/cuda/norm.cuh — the CUDA batch-norm kernels behind kernels/norm.h, with the signatures
// of kernels/cpu/norm.h: x and g contiguous [N, C, S]; per-channel operands contiguous float64 [C]
// on the same device. Plain C++ declarations so kernels/norm.cpp can include it.
#pragma once
#include "core/tensor.h"
#include "kernels/norm.h"

namespace dfx::kernels::cuda {

void channel_sums(const Tensor& x, int64_t n, int64_t c, int64_t s, const Tensor& out);
void bn_apply(const Tensor& x, int64_t n, int64_t c, int64_t s, const Tensor& mean,
              const Tensor& invstd, const Tensor& gamma, const Tensor& beta, const Tensor& y,
              FusedLeakyRelu act);
// With act.on, g is the gradient of the fused leaky ReLU's output act.z, and with
// act.rebuild_x, x is undefined and rebuilt from act.z (kernels/norm.h, LeakyReluOutput).
void bn_backward_reduce(const Tensor& g, const Tensor& x, int64_t n, int64_t c, int64_t s,
                        const Tensor& mean, const Tensor& invstd, const Tensor& out,
                        const BnActGrad& act);
void bn_backward_apply(const Tensor& g, const Tensor& x, int64_t n, int64_t c, int64_t s,
                       const Tensor& mean, const Tensor& invstd, const Tensor& gamma,
                       const Tensor& sums, const Tensor& count, const Tensor& gx,
                       const BnActGrad& act);
// packed [3, C] and out [2, C] contiguous float64; running_mean/var contiguous float64 [C] or
// undefined, blended in place (kernels/norm.h, bn_moments).
void bn_moments(const Tensor& packed, int64_t c, const Tensor& running_mean,
                const Tensor& running_var, double momentum, double eps, const Tensor& out);

}  // namespace dfx::kernels::cuda
