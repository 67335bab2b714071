// kernels/cuda/conv.cuh — the CUDA convolutions behind kernels/conv.h, with the signatures of
// kernels/cpu/conv.h (validated CUDA operands, dense in the call's memory format `fmt`, which
// the kernels read and write in place; output shapes computed by kernels/conv.cpp). Plain C++
// declarations so kernels/conv.cpp can include it.
#pragma once
#include "core/tensor.h"
#include "kernels/conv.h"

namespace dfx::kernels::cuda {

Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias, const Shape& y_shape,
            const ConvGeometry& g, MemoryFormat fmt);
Tensor conv_transpose(const Tensor& y, const Tensor& w, const Tensor& bias, const Shape& x_shape,
                      const ConvGeometry& g, MemoryFormat fmt);
Tensor conv_weight_grad(const Tensor& y, const Tensor& x, const Shape& w_shape,
                        const ConvGeometry& g, MemoryFormat fmt);
Tensor conv_bias_grad(const Tensor& y);

}  // namespace dfx::kernels::cuda
