// autodiff/nn_conv.h — the recorded primitives behind ad::conv and ad::conv_transpose
// (autodiff/nn_ops.h). Each one's backward is written in the others, so convolutions are
// differentiable to any order; they are public for rules and tests that need them directly.
#pragma once
#include "autodiff/var.h"
#include "kernels/conv.h"

namespace dfx::ad::prim {

// "conv": conv(x [N, Cin, *S], w [Cout, Cin, *K]) + bias [Cout] (bias may be undefined).
Var conv(const Var& x, const Var& w, const Var& bias, const kernels::ConvGeometry& g);
// "conv_transpose": the adjoint of conv in x, of shape x_shape [N, Cin, *S], from
// y [N, Cout, *S'] and w [Cout, Cin, *K], + bias [Cin] (bias may be undefined).
Var conv_transpose(const Var& y, const Var& w, const Var& bias, const Shape& x_shape,
                   const kernels::ConvGeometry& g);
// "conv_weight_grad": the adjoint of conv in w, of shape w_shape, from y [N, Cout, *S'] and x.
Var conv_weight_grad(const Var& y, const Var& x, const Shape& w_shape,
                     const kernels::ConvGeometry& g);
// "conv_bias_grad": y [N, C, ...] summed over every dim but 1 -> [C].
Var conv_bias_grad(const Var& y);

}  // namespace dfx::ad::prim
