// kernels/cuda/conv_cudnn.cuh — the cuDNN convolutions and the autotuner behind the Auto and
// Cudnn backends of kernels/conv.h (compiled only when DFX_HAVE_CUDNN). Same products and
// signatures as kernels/cuda/conv.cuh plus the mode; plain C++ declarations so that
// kernels/conv.cpp and tests can include it.
#pragma once
#include <vector>

#include "core/tensor.h"
#include "kernels/conv.h"
#include "kernels/conv_config.h"

namespace dfx::kernels::cuda::cudnn {

// mode Cudnn: the fastest allowed cuDNN algorithm. mode Auto: the fastest of those and dfx's own
// kernel (kernels/cuda/conv.cu). The choice is timed on the first call of each key (op, dtype,
// shapes and strides, geometry, allow_tf32(), conv_deterministic(), device, mode) and cached.
// Operands are validated CUDA tensors of any strides. A call runs in `fmt`, the memory format
// kernels/conv.cpp decides from both operands' exact strides (so a one-channel operand, packed in
// both layouts, follows the model): operands packed in it are read in place (others are copied to
// it) and the output is allocated in it. dfx's kernel (Auto's choice, or shapes with no work,
// where it fills zeros or the bias) gets and returns the same format.
Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias, const Shape& y_shape,
            const ConvGeometry& g, ConvBackend mode, MemoryFormat fmt);
Tensor conv_transpose(const Tensor& y, const Tensor& w, const Tensor& bias, const Shape& x_shape,
                      const ConvGeometry& g, ConvBackend mode, MemoryFormat fmt);
Tensor conv_weight_grad(const Tensor& y, const Tensor& x, const Shape& w_shape,
                        const ConvGeometry& g, ConvBackend mode, MemoryFormat fmt);

std::vector<ConvTuneRecord> tune_records();  // every decision so far, oldest first
void clear_tune_cache();

}  // namespace dfx::kernels::cuda::cudnn
