// kernels/cpu/norm.h — CPU implementations behind kernels/norm.h. x and g arrive contiguous and
// viewed as [N, C, S]; per-channel tensors arrive as contiguous float64 [C] (gamma, beta: 1 and 0
// when undefined), so the kernels only loop.
#pragma once
#include "kernels/norm.h"

namespace dfx::kernels::cpu {

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

}  // namespace dfx::kernels::cpu
