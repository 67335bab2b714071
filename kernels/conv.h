// kernels/conv.h — convolutions with 1-3 spatial dims (NCW, NCHW, NCDHW), as three entry points
// closed under differentiation: conv, its adjoint in x (conv_transpose, also the forward of
// ConvTranspose layers) and its adjoint in w (conv_weight_grad). Each dispatches by device.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/conv_config.h"

namespace dfx::kernels {

// Stride, padding and dilation per spatial dim (first `nd` entries used). Padding is zeros on
// both sides of every spatial dim.
struct ConvGeometry {
  int nd = 2;  // spatial dims, 1..3
  std::array<int64_t, 3> stride{1, 1, 1};
  std::array<int64_t, 3> padding{0, 0, 0};
  std::array<int64_t, 3> dilation{1, 1, 1};
  // Which implementation runs this call on CUDA tensors (kernels/conv_config.h); unset: the
  // process default conv_backend(). It lives here, not in an extra argument, so a layer's choice
  // reaches its backward ops: the autodiff rules pass the same geometry to conv_transpose and
  // conv_weight_grad. Ignored for CPU tensors.
  std::optional<ConvBackend> backend;

  // From per-dim lists; a list with one value is broadcast to all `nd` dims. Throws naming `op`
  // on a wrong length, a stride or dilation < 1, or a negative padding.
  static ConvGeometry make(int nd, const std::vector<int64_t>& stride,
                           const std::vector<int64_t>& padding,
                           const std::vector<int64_t>& dilation, const char* op = "conv");
  bool operator==(const ConvGeometry& o) const = default;
  std::string str() const;  // "stride [2, 2], padding [1, 1], dilation [1, 1]" (no backend)
};

// Spatial output sizes of a convolution of spatial sizes `in` with kernel sizes `k`:
// (in + 2 padding - dilation (k - 1) - 1) / stride + 1, rounded down. Throws naming `op` when the
// dilated kernel is larger than the padded input.
Shape conv_output_size(const Shape& in, const Shape& k, const ConvGeometry& g,
                       const char* op = "conv");
// Shape of conv(x, w): [N, Cout, *S'] for x [N, Cin, *S], w [Cout, Cin, *K]; checks ranks and
// channels and names `op` in errors.
Shape conv_output_shape(const Shape& x, const Shape& w, const ConvGeometry& g,
                        const char* op = "conv");

// y [N, Cout, *S'] = conv(x [N, Cin, *S], w [Cout, Cin, *K]) (+ bias [Cout] when defined).
// Cross-correlation, as every deep-learning framework calls convolution.
Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvGeometry& g);

// The adjoint of conv in x: z [N, Cin, *S] with <conv(x, w), y> = <x, conv_transpose(y, w)>,
// (+ bias [Cin] when defined). `x_shape` is the shape of that x (conv of it must give y's spatial
// sizes); choosing it larger than the minimum expresses ConvTranspose's output_padding.
Tensor conv_transpose(const Tensor& y, const Tensor& w, const Tensor& bias, const Shape& x_shape,
                      const ConvGeometry& g);

// The adjoint of conv in w: dw [Cout, Cin, *K] = sum over the batch of the correlation of
// y [N, Cout, *S'] with x [N, Cin, *S], so <conv(x, w), y> = <w, conv_weight_grad(y, x)>.
// The batch is summed in a fixed order, so the result does not depend on the thread count.
Tensor conv_weight_grad(const Tensor& y, const Tensor& x, const Shape& w_shape,
                        const ConvGeometry& g);

// Sum of y [N, C, ...] over every dim but 1 -> [C] (the bias gradient), in a fixed order.
Tensor conv_bias_grad(const Tensor& y);

}  // namespace dfx::kernels
