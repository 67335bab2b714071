// kernels/norm.h — the fused per-channel pieces of batch normalisation, in the shape of PyTorch's
// native SyncBatchNorm kernels: one pass for the channel sums, one for normalise-and-affine, one
// for the backward sums and one for the input gradient. Channel = dim 1 of x [N, C, *S] (S may be
// empty); per-channel statistics are float64 [C]; autodiff/nn_norm.cpp composes them.
#pragma once
#include "core/tensor.h"

namespace dfx::kernels {

// [2, C] float64: (sum x, sum x*x) over every dim but 1, accumulated in float64 in one pass.
// An empty batch (N = 0) gives zeros, so a rank with no samples still joins the all-reduce.
Tensor channel_sums(const Tensor& x);

// A leaky ReLU applied to bn_apply's result in the same pass (`on`; slope 0 is a ReLU), with the
// arithmetic of kernels::unary(LeakyRelu) on the same device, so fusing changes no bit.
struct FusedLeakyRelu {
  bool on = false;
  double slope = 0.0;
};

// y = (x - mean) * invstd * gamma + beta in one pass, in x's dtype. mean and invstd are [C]
// (any floating dtype, used in float64); gamma and beta are [C] or undefined (1 and 0).
// With act.on, y = leaky_relu(y, act.slope) in the same pass.
Tensor bn_apply(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& gamma,
                const Tensor& beta, FusedLeakyRelu act = {});

// The backward of a fused batch norm + leaky ReLU (bn_apply with FusedLeakyRelu) for the two
// kernels below: g is then the gradient of the activation's output z, and they multiply it by
// the leaky ReLU's derivative (read off z; slope >= 0) as they read it, with
// kernels::leaky_relu_backward's arithmetic, so the results equal the unfused pair's bit for bit.
// With rebuild_x (slope > 0) x is not read and may be undefined: x - mean is rebuilt from z as
// (leaky_relu(z, 1 / slope) - beta) / (gamma invstd) (InPlace-ABN), equal to rounding.
struct LeakyReluOutput {
  Tensor z;  // undefined: plain batch norm, g is the gradient of its own output
  double slope = 0.0;
  bool rebuild_x = false;
  Tensor gamma, beta;  // [C] or undefined (1 and 0); read with rebuild_x
};

// [2, C] float64: (sum g, sum g * xhat) with xhat = (x - mean) * invstd, in one pass over g and x.
// These are the gradients of beta and gamma, and (all-reduced) the inputs of bn_backward_apply.
Tensor bn_backward_reduce(const Tensor& g, const Tensor& x, const Tensor& mean,
                          const Tensor& invstd, const LeakyReluOutput& act = {});

// Training mode's batch moments from packed = [3, C] float64 rows (count, sum x, sum x*x): the
// count row on top of channel_sums, all-reduced for global moments. Returns [2, C] float64
// (mean, invstd) with var = max(E[x^2] - mean^2, 0) and invstd = 1 / sqrt(var + eps), and blends
// the running statistics in place: running = (1 - momentum) running + momentum batch, the
// variance unbiased by count / (count - 1); either may be undefined. Everything stays on packed's
// device (the count is read there, from packed[0][0]), so a GPU step does not wait for the host.
Tensor bn_moments(const Tensor& packed, const Tensor& running_mean, const Tensor& running_var,
                  double momentum, double eps);

// gx = gamma * invstd * (g - sum_g / count - xhat * sum_gxhat / count) in one pass, where
// sums = [2, C] (sum_g, sum_gxhat) over the whole (possibly global) batch of `count` per channel.
// The count is a float64 tensor of one element on x's device (the global count of a SyncBatchNorm
// stays there) or a host number.
Tensor bn_backward_apply(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                         const Tensor& gamma, const Tensor& sums, const Tensor& count,
                         const LeakyReluOutput& act = {});
Tensor bn_backward_apply(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                         const Tensor& gamma, const Tensor& sums, double count,
                         const LeakyReluOutput& act = {});

// What the backends get for a LeakyReluOutput (kernels/norm.cpp builds it): z in the kernels'
// layout, and with rebuild_x the per-channel beta and 1 / (gamma invstd) as float64 [C].
struct BnActGrad {
  bool on = false;
  Tensor z;
  double slope = 0.0;
  bool rebuild_x = false;
  Tensor beta, inv_scale;
};

}  // namespace dfx::kernels
