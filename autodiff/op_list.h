// autodiff/op_list.h — every primitive op with its own backward rule, by the name it records on
// the tape. Composite ops (mean, var, dot, square, ...) are built from these and need no rule.
// tests/autodiff/test_ops_grad.cpp fails if any name here lacks a first- and second-order check,
// and later layers (nn, pde) append their primitives here. "checkpoint" (autodiff/checkpoint.h)
// is not listed: it replays listed ops, is first-order only, and
// tests/autodiff/test_activation_checkpoint.cpp checks it against the plain run bit for bit.
#pragma once
#include <string_view>
#include <vector>

namespace dfx::ad {

inline const std::vector<std::string_view>& primitive_ops() {
  static const std::vector<std::string_view> ops = {
      "add", "sub", "mul", "div", "neg", "exp", "log", "sqrt", "rsqrt", "pow", "pow_tensor",
      "abs", "tanh", "sigmoid", "relu", "leaky_relu", "leaky_relu_backward", "where", "clamp",
      "maximum", "minimum",
      "sum", "amax", "amin", "sum_to", "matmul", "reshape", "permute", "narrow", "unnarrow",
      "expand", "contiguous", "concat",
      // convolutions (autodiff/nn_conv.cpp)
      "conv", "conv_transpose", "conv_weight_grad", "conv_bias_grad",
      // pooling and upsampling (autodiff/nn_pool.cpp)
      "max_pool", "pool_gather", "pool_scatter", "avg_pool", "avg_pool_adjoint", "upsample", "upsample_adjoint",
      // normalisation (autodiff/nn_norm.cpp)
      "batch_norm", "batch_norm_leaky_relu", "batch_norm_backward", "batch_norm_gamma_grad",
      "channel_sum", "channel_bcast",
      // finite-element stencils (autodiff/fem_ops.cpp)
      "fem_energy", "fem_apply", "fem_bilinear",
  };
  return ops;
}

}  // namespace dfx::ad
