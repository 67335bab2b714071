// kernels/elementwise.cpp — device dispatch for the elementwise family.
#include "kernels/elementwise.h"

#include <vector>

#include "config.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/profile.h"
#if DFX_HAVE_CUDA
#include "kernels/cuda/elementwise.cuh"
#endif

namespace dfx::kernels {

const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Rsqrt: return "rsqrt";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::Sign: return "sign";
    case UnaryOp::Square: return "square";
    case UnaryOp::Reciprocal: return "reciprocal";
    case UnaryOp::LeakyRelu: return "leaky_relu";
    case UnaryOp::PowScalar: return "pow";
    case UnaryOp::ReluMask: return "relu_mask";
    case UnaryOp::LeakyReluSlope: return "leaky_relu_slope";
  }
  return "unary";
}

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Pow: return "pow";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
  }
  return "binary";
}

namespace {
// Channels-last operands (MemoryFormat in core/tensor.h): when an operand of the result's full
// shape is channels-last, the op runs on views in the physical N, *S, C order, where that operand
// is plain contiguous, so the backends take their dense fast paths and write a contiguous result;
// viewed back in logical NCHW order, that result is channels-last too.
class ChannelsLastViews {
 public:
  // out_shape() is only evaluated when an operand is channels-last (the rare case), so plain
  // NCHW calls pay no second broadcast.
  template <class OutShape>
  ChannelsLastViews(std::initializer_list<const Tensor*> operands, OutShape&& out_shape) {
    for (const Tensor* t : operands) {
      if (t->suggest_memory_format() != MemoryFormat::ChannelsLast) continue;
      const Shape shape = out_shape();
      if (t->shape() != shape) continue;
      nd_ = static_cast<int>(shape.size());
      on_ = true;
      return;
    }
  }
  Tensor in(const Tensor& t) const {
    if (!on_) return t;
    Tensor u = t;
    while (u.dim() < nd_) u = u.unsqueeze(0);  // broadcasting aligns trailing dims
    std::vector<int> perm{0};
    for (int d = 2; d < nd_; ++d) perm.push_back(d);
    perm.push_back(1);
    return u.permute(perm);
  }
  Tensor out(const Tensor& r) const {
    if (!on_) return r;
    std::vector<int> inverse{0, nd_ - 1};
    for (int d = 1; d < nd_ - 1; ++d) inverse.push_back(d);
    return r.permute(inverse);
  }

 private:
  bool on_ = false;
  int nd_ = 0;
};

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  DFX_CHECK(a.defined() && b.defined(), op, ": undefined operand (", a.describe(), ", ",
            b.describe(), ")");
  DFX_CHECK(a.device() == b.device(), op, ": operands on different devices: ", a.describe(),
            " and ", b.describe(), "; expected one device (move one with .to())");
}
#if !DFX_HAVE_CUDA
[[noreturn]] void no_cuda(const char* op, const Tensor& x) {
  DFX_FAIL(op, ": no CUDA kernel for ", x.describe(), " (dfx was built without CUDA)");
}
#endif
}  // namespace

Tensor unary(UnaryOp op, const Tensor& x, double alpha) {
  DFX_CHECK(x.defined(), unary_name(op), ": undefined input");
  KernelProfileScope prof(x, "unary", unary_name(op));
  const ChannelsLastViews cl({&x}, [&] { return x.shape(); });
  if (x.device().is_cuda()) {
#if DFX_HAVE_CUDA
    return cl.out(cuda::unary(op, cl.in(x), alpha));
#else
    no_cuda(unary_name(op), x);
#endif
  }
  return cl.out(cpu::unary(op, cl.in(x), alpha));
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  check_same_device(a, b, binary_name(op));
  KernelProfileScope prof(a, "binary", binary_name(op));
  const ChannelsLastViews cl(
      {&a, &b}, [&] { return broadcast_shapes(a.shape(), b.shape(), binary_name(op)); });
  if (a.device().is_cuda()) {
#if DFX_HAVE_CUDA
    return cl.out(cuda::binary(op, cl.in(a), cl.in(b)));
#else
    no_cuda(binary_name(op), a);
#endif
  }
  return cl.out(cpu::binary(op, cl.in(a), cl.in(b)));
}

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  check_same_device(a, b, "compare");
  KernelProfileScope prof(a, "compare");
  const ChannelsLastViews cl({&a, &b},
                             [&] { return broadcast_shapes(a.shape(), b.shape(), "compare"); });
  if (a.device().is_cuda()) {
#if DFX_HAVE_CUDA
    return cl.out(cuda::compare(op, cl.in(a), cl.in(b)));
#else
    no_cuda("compare", a);
#endif
  }
  return cl.out(cpu::compare(op, cl.in(a), cl.in(b)));
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_same_device(a, b, "where");
  check_same_device(cond, a, "where");
  KernelProfileScope prof(a, "where");
  const ChannelsLastViews cl({&cond, &a, &b}, [&] {
    return broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  });
  if (a.device().is_cuda()) {
#if DFX_HAVE_CUDA
    return cl.out(cuda::where(cl.in(cond), cl.in(a), cl.in(b)));
#else
    no_cuda("where", a);
#endif
  }
  return cl.out(cpu::where(cl.in(cond), cl.in(a), cl.in(b)));
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  DFX_CHECK(lo <= hi, "clamp: lo ", lo, " > hi ", hi);
  KernelProfileScope prof(x, "clamp");
  const ChannelsLastViews cl({&x}, [&] { return x.shape(); });
  if (x.device().is_cuda()) {
#if DFX_HAVE_CUDA
    return cl.out(cuda::clamp(cl.in(x), lo, hi, false));
#else
    no_cuda("clamp", x);
#endif
  }
  return cl.out(cpu::clamp(cl.in(x), lo, hi, false));
}

Tensor clamp_mask(const Tensor& x, double lo, double hi) {
  KernelProfileScope prof(x, "clamp_mask");
  const ChannelsLastViews cl({&x}, [&] { return x.shape(); });
  if (x.device().is_cuda()) {
#if DFX_HAVE_CUDA
    return cl.out(cuda::clamp(cl.in(x), lo, hi, true));
#else
    no_cuda("clamp_mask", x);
#endif
  }
  return cl.out(cpu::clamp(cl.in(x), lo, hi, true));
}

void axpy_(const Tensor& a, double alpha, const Tensor& b) {
  check_same_device(a, b, "axpy_");
  DFX_CHECK(a.is_contiguous() || a.is_contiguous(MemoryFormat::ChannelsLast),
            "axpy_: destination must be dense (contiguous or channels-last), got strides ",
            a.strides());
  if (a.device().is_cuda()) {
    copy_(a, binary(BinaryOp::Add, a, binary(BinaryOp::Mul, b, full({}, alpha, b.dtype(), b.device()))));
    return;
  }
  cpu::axpy_(a, alpha, b);
}

void adam_update_(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                  const AdamUpdate& u) {
  KernelProfileScope prof(p, "adam_update_");
  for (const Tensor* t : {&g, &m, &v}) {
    check_same_device(p, *t, "adam_update_");
    DFX_CHECK(t->shape() == p.shape() && t->dtype() == p.dtype(), "adam_update_: ",
              t->describe(), " does not match the parameter ", p.describe());
  }
  DFX_CHECK(p.dtype() == DType::Float32 || p.dtype() == DType::Float64,
            "adam_update_: expected float32 or float64, got ", p.describe());
  const MemoryFormat fmt = p.suggest_memory_format();
  DFX_CHECK(p.is_contiguous(fmt) && m.same_layout(p) && v.same_layout(p),
            "adam_update_: parameter ", p.describe(), " and its moments must be dense with the "
            "same strides (got ", p.strides(), ", ", m.strides(), ", ", v.strides(), ")");
  // The flat loop walks storage order, so g must lie like p.
  const Tensor gl = g.same_layout(p) ? g : g.contiguous(fmt);
  DFX_CHECK(gl.same_layout(p), "adam_update_: gradient ", g.describe(),
            " cannot take the parameter's strides ", p.strides());
  if (p.device().is_cuda()) {
#if DFX_HAVE_CUDA
    return cuda::adam_update_(p, gl, m, v, u);
#else
    no_cuda("adam_update_", p);
#endif
  }
  cpu::adam_update_(p, gl, m, v, u);
}

Tensor leaky_relu_backward(const Tensor& g, const Tensor& y, double slope) {
  KernelProfileScope prof(y, "leaky_relu_backward");
  check_same_device(y, g, "leaky_relu_backward");
  DFX_CHECK(g.shape() == y.shape() && g.dtype() == y.dtype(), "leaky_relu_backward: gradient ",
            g.describe(), " does not match the output ", y.describe());
  DFX_CHECK(y.dtype() == DType::Float32 || y.dtype() == DType::Float64,
            "leaky_relu_backward: expected float32 or float64, got ", y.describe());
  // The flat loop walks storage order: both operands dense in one layout.
  const MemoryFormat fmt = y.suggest_memory_format();
  const Tensor yd = y.contiguous(fmt);
  const Tensor gd = g.same_layout(yd) ? g : g.contiguous(fmt);
  Tensor out = Tensor::empty(y.shape(), y.dtype(), y.device(), fmt);
  if (y.device().is_cuda()) {
#if DFX_HAVE_CUDA
    cuda::leaky_relu_backward(gd, yd, slope, out);
    return out;
#else
    no_cuda("leaky_relu_backward", y);
#endif
  }
  cpu::leaky_relu_backward(gd, yd, slope, out);
  return out;
}

void scale_(const Tensor& x, double alpha) {
  copy_(x, binary(BinaryOp::Mul, x, full({}, alpha, x.dtype(), x.device())));
}

}  // namespace dfx::kernels
