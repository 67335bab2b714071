// kernels/cpu/conv.h — CPU implementations behind kernels/conv.h. Operands arrive validated and
// dense in the call's memory format `fmt`, with the output shape already computed by the
// dispatcher; the result is in `fmt` too. The CPU kernels compute in NCHW (channels-last
// operands are converted on the way in and out).
#pragma once
#include "kernels/conv.h"

namespace dfx::kernels::cpu {

Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias, const Shape& y_shape,
            const ConvGeometry& g, MemoryFormat fmt);
Tensor conv_transpose(const Tensor& y, const Tensor& w, const Tensor& bias, const Shape& x_shape,
                      const ConvGeometry& g, MemoryFormat fmt);
Tensor conv_weight_grad(const Tensor& y, const Tensor& x, const Shape& w_shape,
                        const ConvGeometry& g, MemoryFormat fmt);
Tensor conv_bias_grad(const Tensor& y);

}  // namespace dfx::kernels::cpu
