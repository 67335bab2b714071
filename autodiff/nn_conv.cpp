// autodiff/nn_conv.cpp — convolutions on Vars. Four recorded primitives close under
// differentiation: conv, conv_transpose (its adjoint in x), conv_weight_grad (its adjoint in w) and
// conv_bias_grad (the adjoint of adding a per-channel bias); each rule is written in the others.
#include "autodiff/nn_conv.h"

#include "autodiff/nn_ops.h"
#include "autodiff/ops.h"

namespace dfx::ad {
namespace k = dfx::kernels;
using VarList = std::vector<Var>;

namespace {
Var keep(const Var& v, bool needed) { return needed ? v : Var(); }
Tensor data_or_none(const Var& v) { return v.defined() ? v.data() : Tensor(); }
VarList with_bias(VarList inputs, const Var& bias) {
  if (bias.defined()) inputs.push_back(bias);
  return inputs;
}
bool needs(const Var& v) { return v.defined() && v.requires_grad(); }

// Spatial dims of an [N, C, *S] operand, or an error naming the op and the expected layout.
int spatial_dims(const char* op, const Var& x, const Var& w, const char* w_layout) {
  DFX_CHECK(x.defined() && w.defined(), op, ": undefined input or weight");
  DFX_CHECK(x.dim() >= 3 && x.dim() <= 5, op, ": input ", x.data().describe(), " has rank ",
            x.dim(), "; expected [N, C, *S] with 1, 2 or 3 spatial dims");
  DFX_CHECK(w.dim() == x.dim(), op, ": weight ", w.data().describe(), " has rank ", w.dim(),
            " but input ", x.data().describe(), " has rank ", x.dim(), "; expected weight ",
            w_layout);
  return x.dim() - 2;
}
}  // namespace

namespace prim {

Var conv(const Var& x, const Var& w, const Var& bias, const k::ConvGeometry& g) {
  Tensor y = k::conv(x.data(), w.data(), data_or_none(bias), g);
  const Shape xs = x.shape(), ws = w.shape();
  const bool nx = needs(x), nw = needs(w), nb = needs(bias), has_bias = bias.defined();
  const Var cx = keep(x, nw), cw = keep(w, nx);
  return record("conv", std::move(y), with_bias({x, w}, bias), [=](const Var&, const Var& gy) {
    VarList out{nx ? conv_transpose(gy, cw, Var(), xs, g) : Var(),
                nw ? conv_weight_grad(gy, cx, ws, g) : Var()};
    if (has_bias) out.push_back(nb ? conv_bias_grad(gy) : Var());
    return out;
  });
}

Var conv_transpose(const Var& y, const Var& w, const Var& bias, const Shape& x_shape,
                   const k::ConvGeometry& g) {
  Tensor z = k::conv_transpose(y.data(), w.data(), data_or_none(bias), x_shape, g);
  const Shape ws = w.shape();
  const bool ny = needs(y), nw = needs(w), nb = needs(bias), has_bias = bias.defined();
  const Var cy = keep(y, nw), cw = keep(w, ny);
  // <conv_transpose(y, w), gz> = <y, conv(gz, w)> = <w, conv_weight_grad(y, gz)>.
  return record("conv_transpose", std::move(z), with_bias({y, w}, bias),
                [=](const Var&, const Var& gz) {
                  VarList out{ny ? conv(gz, cw, Var(), g) : Var(),
                              nw ? conv_weight_grad(cy, gz, ws, g) : Var()};
                  if (has_bias) out.push_back(nb ? conv_bias_grad(gz) : Var());
                  return out;
                });
}

Var conv_weight_grad(const Var& y, const Var& x, const Shape& w_shape, const k::ConvGeometry& g) {
  Tensor dw = k::conv_weight_grad(y.data(), x.data(), w_shape, g);
  const Shape xs = x.shape();
  const bool ny = needs(y), nx = needs(x);
  const Var cy = keep(y, nx), cx = keep(x, ny);
  // <conv_weight_grad(y, x), gw> = <y, conv(x, gw)> = <x, conv_transpose(y, gw)>.
  return record("conv_weight_grad", std::move(dw), {y, x}, [=](const Var&, const Var& gw) {
    return VarList{ny ? conv(cx, gw, Var(), g) : Var(),
                   nx ? conv_transpose(cy, gw, Var(), xs, g) : Var()};
  });
}

Var conv_bias_grad(const Var& y) {
  const Shape ys = y.shape();
  Shape bs(ys.size(), 1);
  if (ys.size() >= 2) bs[1] = ys[1];
  return record("conv_bias_grad", k::conv_bias_grad(y.data()), {y},
                [=](const Var&, const Var& gb) { return VarList{expand(reshape(gb, bs), ys)}; });
}

}  // namespace prim

Var conv(const Var& x, const Var& w, const Var& bias, const ConvParams& p) {
  const int nd = spatial_dims("conv", x, w, "[Cout, Cin, *K]");
  return prim::conv(x, w, bias,
                    k::ConvGeometry::make(nd, p.stride, p.padding, p.dilation, "conv"));
}

Var conv_transpose(const Var& x, const Var& w, const Var& bias, const ConvParams& p,
                   const std::vector<int64_t>& output_padding) {
  const char* op = "conv_transpose";
  const int nd = spatial_dims(op, x, w, "[Cin, Cout, *K]");
  const k::ConvGeometry g = k::ConvGeometry::make(nd, p.stride, p.padding, p.dilation, op);
  DFX_CHECK(output_padding.size() == 1 || static_cast<int>(output_padding.size()) == nd, op,
            ": output_padding ", output_padding, " has ", output_padding.size(),
            " values; expected 1 or ", nd);
  DFX_CHECK(x.size(1) == w.size(0), op, ": input ", x.data().describe(), " has ", x.size(1),
            " channels but weight ", w.shape(), " expects ", w.size(0),
            " (weight is [Cin, Cout, *K])");
  Shape out{x.size(0), w.size(1)};
  for (int d = 0; d < nd; ++d) {
    const int64_t op_d = output_padding.size() == 1 ? output_padding[0] : output_padding[d];
    // Larger values would add output positions no input reaches; PyTorch's limit is the same
    // when dilation is 1.
    DFX_CHECK(op_d >= 0 && op_d < g.stride[d], op, ": output_padding ", output_padding,
              " with ", g.str(), "; expected 0 <= output_padding < stride in every dim");
    const int64_t size = (x.size(2 + d) - 1) * g.stride[d] - 2 * g.padding[d] +
                         g.dilation[d] * (w.size(2 + d) - 1) + op_d + 1;
    DFX_CHECK(size >= 1, op, ": input ", x.shape(), " with kernel ", w.shape(), " and ",
              g.str(), " gives an output size ", size, " in spatial dim ", d,
              "; expected padding small enough for a non-empty output");
    out.push_back(size);
  }
  return prim::conv_transpose(x, w, bias, out, g);
}

}  // namespace dfx::ad
