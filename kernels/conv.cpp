// kernels/conv.cpp — shape rules and checks of the convolution family, then device dispatch to
// kernels/cpu/conv.cpp or kernels/cuda/conv.cu, or for CUDA tensors in the Auto and Cudnn
// backends (kernels/conv_config.h) to kernels/cuda/conv_cudnn.cu. Backends receive validated,
// contiguous operands.
#include "kernels/conv.h"

#include <sstream>

#include "config.h"
#include "kernels/backend.h"
#include "kernels/cpu/conv.h"
#if DFX_HAVE_CUDA
#include "kernels/cuda/conv.cuh"
#endif
#if DFX_HAVE_CUDNN
#include "kernels/cuda/conv_cudnn.cuh"
#endif

namespace dfx::kernels {
namespace {

Shape spatial(const Shape& s) { return Shape(s.begin() + 2, s.end()); }

void check_operands(const char* op, const Tensor& a, const char* an, const Tensor& b,
                    const char* bn) {
  DFX_CHECK(a.defined() && b.defined(), op, ": undefined operand (", an, " ", a.describe(), ", ",
            bn, " ", b.describe(), ")");
  DFX_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ: ", an, " ", a.describe(), ", ", bn, " ",
            b.describe(), "; expected one float dtype");
  DFX_CHECK(a.dtype() == DType::Float32 || a.dtype() == DType::Float64, op,
            ": expected float32 or float64, got ", an, " ", a.describe());
  DFX_CHECK(a.device() == b.device(), op, ": operands on different devices: ", an, " ",
            a.describe(), ", ", bn, " ", b.describe());
}

void check_bias(const char* op, const Tensor& bias, const Tensor& like, int64_t channels) {
  if (!bias.defined()) return;
  check_operands(op, like, "input", bias, "bias");
  DFX_CHECK(bias.dim() == 1 && bias.size(0) == channels, op, ": bias ", bias.describe(),
            " does not match the ", channels, " output channels; expected [", channels, "]");
}

void check_rank(const char* op, const Shape& s, const char* what, const ConvGeometry& g,
                const char* layout) {
  DFX_CHECK(static_cast<int>(s.size()) == g.nd + 2, op, ": ", what, " ", s, " has rank ",
            s.size(), "; expected ", g.nd + 2, " dims ", layout, " for ", g.nd,
            " spatial dim(s)");
}

MemoryFormat result_format(const Tensor& x, const Tensor& w) {
  return x.suggest_memory_format() == MemoryFormat::ChannelsLast ||
                 w.suggest_memory_format() == MemoryFormat::ChannelsLast
             ? MemoryFormat::ChannelsLast
             : MemoryFormat::Contiguous;
}

void check_device(const char* op, const Tensor& t) {
  DFX_CHECK(t.device().is_cpu() || DFX_HAVE_CUDA, op, ": no CUDA kernel for ", t.describe(),
            " (dfx was built without CUDA)");
}

// Who runs a call on `t`'s device: the call's backend, else the process default, for CUDA
// tensors; Native stands for "DFX_BACKEND" (the CPU kernel for CPU tensors). Without cuDNN, Auto
// is Native and Cudnn an error naming the op.
ConvBackend backend_for(const Tensor& t, const ConvGeometry& g, const char* op) {
  if (!t.device().is_cuda()) return ConvBackend::Native;
  const ConvBackend b = g.backend ? *g.backend : conv_backend();
  DFX_CHECK(b != ConvBackend::Cudnn || cudnn_available(), op, ": the cudnn convolution backend "
            "was requested for ", t.describe(), ", but dfx was built without cuDNN; rebuild with "
            "-Dcudnn=enabled (and -Dcudnn_root=PREFIX), or use the native or auto backend");
  return cudnn_available() ? b : ConvBackend::Native;
}

}  // namespace

ConvGeometry ConvGeometry::make(int nd, const std::vector<int64_t>& stride,
                                const std::vector<int64_t>& padding,
                                const std::vector<int64_t>& dilation, const char* op) {
  DFX_CHECK(nd >= 1 && nd <= 3, op, ": ", nd, " spatial dims; expected 1, 2 or 3");
  ConvGeometry g;
  g.nd = nd;
  auto fill = [&](const std::vector<int64_t>& v, std::array<int64_t, 3>& out, const char* name,
                  int64_t min) {
    DFX_CHECK(v.size() == 1 || static_cast<int>(v.size()) == nd, op, ": ", name, " ", v,
              " has ", v.size(), " values; expected 1 or ", nd, " (one per spatial dim)");
    for (int d = 0; d < nd; ++d) {
      out[d] = v.size() == 1 ? v[0] : v[d];
      DFX_CHECK(out[d] >= min, op, ": ", name, " ", v, "; expected every value >= ", min);
    }
  };
  fill(stride, g.stride, "stride", 1);
  fill(padding, g.padding, "padding", 0);
  fill(dilation, g.dilation, "dilation", 1);
  return g;
}

std::string ConvGeometry::str() const {
  auto part = [&](const std::array<int64_t, 3>& v) { return Shape(v.begin(), v.begin() + nd); };
  std::ostringstream os;
  os << "stride " << part(stride) << ", padding " << part(padding) << ", dilation "
     << part(dilation);
  return os.str();
}

Shape conv_output_size(const Shape& in, const Shape& k, const ConvGeometry& g, const char* op) {
  DFX_CHECK(static_cast<int>(in.size()) == g.nd && static_cast<int>(k.size()) == g.nd, op,
            ": spatial sizes ", in, " and kernel ", k, " do not have ", g.nd, " dims");
  Shape out(g.nd);
  for (int d = 0; d < g.nd; ++d) {
    const int64_t span = g.dilation[d] * (k[d] - 1) + 1;
    const int64_t padded = in[d] + 2 * g.padding[d];
    DFX_CHECK(k[d] >= 1 && span <= padded, op, ": kernel ", k, " (dilated extent ", span,
              " in spatial dim ", d, ") is larger than the padded input ", in, " (", padded,
              " with ", g.str(), "); expected a kernel that fits");
    out[d] = (padded - span) / g.stride[d] + 1;
  }
  return out;
}

Shape conv_output_shape(const Shape& x, const Shape& w, const ConvGeometry& g, const char* op) {
  check_rank(op, x, "input", g, "[N, Cin, *S]");
  check_rank(op, w, "weight", g, "[Cout, Cin, *K]");
  DFX_CHECK(x[1] == w[1], op, ": input ", x, " has ", x[1], " channels but weight ", w,
            " expects ", w[1], " (weight is [Cout, Cin, *K])");
  Shape out{x[0], w[0]};
  for (int64_t s : conv_output_size(spatial(x), spatial(w), g, op)) out.push_back(s);
  return out;
}

Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvGeometry& g) {
  check_operands("conv", x, "input", w, "weight");
  Shape ys = conv_output_shape(x.shape(), w.shape(), g, "conv");
  check_bias("conv", bias, x, w.size(0));
  check_device("conv", x);
  // The result is channels-last when the input or the weight is (PyTorch's rule, so a model
  // converted with Module::to(ChannelsLast) stays so). cuDNN and the native CUDA kernels read
  // either layout in place; the CPU kernels convert channels-last operands.
  const MemoryFormat fmt = result_format(x, w);
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  const ConvBackend mode = backend_for(x, g, "conv");
#if DFX_HAVE_CUDNN
  if (mode != ConvBackend::Native) {
    // Profiled as "conv:auto" or "conv:cudnn" (DFX_BACKEND's calls are plain "conv").
    KernelProfileScope profile(x, "conv", conv_backend_name(mode));
    return cuda::cudnn::conv(x.contiguous(fmt), w.contiguous(fmt), bc, ys, g, mode, fmt)
        .contiguous(fmt);
  }
#endif
  (void)mode;
  return DFX_BACKEND(x, conv(x.contiguous(fmt), w.contiguous(fmt), bc, ys, g, fmt));
}

Tensor conv_transpose(const Tensor& y, const Tensor& w, const Tensor& bias, const Shape& x_shape,
                      const ConvGeometry& g) {
  check_operands("conv_transpose", y, "input", w, "weight");
  check_rank("conv_transpose", y.shape(), "input", g, "[N, Cout, *S']");
  check_rank("conv_transpose", x_shape, "output shape", g, "[N, Cin, *S]");
  check_rank("conv_transpose", w.shape(), "weight", g, "[Cout, Cin, *K]");
  DFX_CHECK(y.size(1) == w.size(0), "conv_transpose: input ", y.describe(), " has ", y.size(1),
            " channels but weight ", w.shape(), " expects ", w.size(0),
            " (weight is [Cout, Cin, *K], the layout of the conv it transposes)");
  DFX_CHECK(x_shape[0] == y.size(0) && x_shape[1] == w.size(1), "conv_transpose: output shape ",
            x_shape, " does not match batch ", y.size(0), " and ", w.size(1),
            " weight input channels; expected [", y.size(0), ", ", w.size(1), ", ...]");
  Shape back = conv_output_size(spatial(x_shape), spatial(w.shape()), g, "conv_transpose");
  DFX_CHECK(back == spatial(y.shape()), "conv_transpose: output shape ", x_shape,
            " convolved with kernel ", spatial(w.shape()), " (", g.str(), ") gives spatial ",
            back, ", not the input's ", spatial(y.shape()),
            "; expected an output size whose convolution is the input size "
            "(output_padding must be < stride)");
  check_bias("conv_transpose", bias, y, w.size(1));
  check_device("conv_transpose", y);
  const MemoryFormat fmt = result_format(y, w);
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  const ConvBackend mode = backend_for(y, g, "conv_transpose");
#if DFX_HAVE_CUDNN
  if (mode != ConvBackend::Native) {
    KernelProfileScope profile(y, "conv_transpose", conv_backend_name(mode));
    return cuda::cudnn::conv_transpose(y.contiguous(fmt), w.contiguous(fmt), bc, x_shape, g, mode,
                                       fmt)
        .contiguous(fmt);
  }
#endif
  (void)mode;
  return DFX_BACKEND(y, conv_transpose(y.contiguous(fmt), w.contiguous(fmt), bc, x_shape, g, fmt));
}

Tensor conv_weight_grad(const Tensor& y, const Tensor& x, const Shape& w_shape,
                        const ConvGeometry& g) {
  check_operands("conv_weight_grad", y, "output gradient", x, "input");
  Shape ys = conv_output_shape(x.shape(), w_shape, g, "conv_weight_grad");
  DFX_CHECK(ys == y.shape(), "conv_weight_grad: output gradient ", y.describe(),
            " does not match the conv of input ", x.shape(), " with weight ", w_shape, " (",
            g.str(), "), which gives ", ys);
  check_device("conv_weight_grad", y);
  const ConvBackend mode = backend_for(y, g, "conv_weight_grad");
  // Channels-last activations are read in place (both in one layout); dW comes out in it too.
  const MemoryFormat fmt = result_format(x, y);
#if DFX_HAVE_CUDNN
  if (mode != ConvBackend::Native) {
    KernelProfileScope profile(y, "conv_weight_grad", conv_backend_name(mode));
    return cuda::cudnn::conv_weight_grad(y.contiguous(fmt), x.contiguous(fmt), w_shape, g, mode,
                                         fmt);
  }
#endif
  (void)mode;
  return DFX_BACKEND(y, conv_weight_grad(y.contiguous(fmt), x.contiguous(fmt), w_shape, g, fmt));
}

Tensor conv_bias_grad(const Tensor& y) {
  DFX_CHECK(y.defined() && y.dim() >= 2, "conv_bias_grad: expected [N, C, ...], got ",
            y.describe());
  DFX_CHECK(y.dtype() == DType::Float32 || y.dtype() == DType::Float64,
            "conv_bias_grad: expected float32 or float64, got ", y.describe());
  check_device("conv_bias_grad", y);
  // A channels-last gradient is read in place as [N * S, C, 1], whose sum over dims (0, 2) is
  // the same per-channel sum.
  if (y.dim() >= 3 && y.suggest_memory_format() == MemoryFormat::ChannelsLast &&
      y.is_contiguous(MemoryFormat::ChannelsLast)) {
    std::vector<int> nhwc{0};
    for (int d = 2; d < y.dim(); ++d) nhwc.push_back(d);
    nhwc.push_back(1);
    const Tensor rows = y.permute(nhwc).view(Shape{y.numel() / y.size(1), y.size(1), 1});
    return DFX_BACKEND(rows, conv_bias_grad(rows));
  }
  return DFX_BACKEND(y, conv_bias_grad(y.contiguous()));
}

}  // namespace dfx::kernels
