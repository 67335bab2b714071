// kernels/elementwise.cpp — device dispatch for the elementwise family.
#include "kernels/elementwise.h"
#include "kernels/profile.h"

#include "config.h"
#include "kernels/cpu/elementwise.h"
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
  if (x.device().is_cuda()) {
#if DFX_HAVE_CUDA
    return cuda::unary(op, x, alpha);
#else
    no_cuda(unary_name(op), x);
#endif
  }
  return cpu::unary(op, x, alpha);
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  check_same_device(a, b, binary_name(op));
  KernelProfileScope prof(a, "binary", binary_name(op));
  if (a.device().is_cuda()) {
#if DFX_HAVE_CUDA
    return cuda::binary(op, a, b);
#else
    no_cuda(binary_name(op), a);
#endif
  }
  return cpu::binary(op, a, b);
}

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  check_same_device(a, b, "compare");
  KernelProfileScope prof(a, "compare");
  if (a.device().is_cuda()) {
#if DFX_HAVE_CUDA
    return cuda::compare(op, a, b);
#else
    no_cuda("compare", a);
#endif
  }
  return cpu::compare(op, a, b);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_same_device(a, b, "where");
  check_same_device(cond, a, "where");
  KernelProfileScope prof(a, "where");
  if (a.device().is_cuda()) {
#if DFX_HAVE_CUDA
    return cuda::where(cond, a, b);
#else
    no_cuda("where", a);
#endif
  }
  return cpu::where(cond, a, b);
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  DFX_CHECK(lo <= hi, "clamp: lo ", lo, " > hi ", hi);
  KernelProfileScope prof(x, "clamp");
  if (x.device().is_cuda()) {
#if DFX_HAVE_CUDA
    return cuda::clamp(x, lo, hi, false);
#else
    no_cuda("clamp", x);
#endif
  }
  return cpu::clamp(x, lo, hi, false);
}

Tensor clamp_mask(const Tensor& x, double lo, double hi) {
  KernelProfileScope prof(x, "clamp_mask");
  if (x.device().is_cuda()) {
#if DFX_HAVE_CUDA
    return cuda::clamp(x, lo, hi, true);
#else
    no_cuda("clamp_mask", x);
#endif
  }
  return cpu::clamp(x, lo, hi, true);
}

void axpy_(const Tensor& a, double alpha, const Tensor& b) {
  check_same_device(a, b, "axpy_");
  DFX_CHECK(a.is_contiguous(), "axpy_: destination must be contiguous, got strides ", a.strides());
  if (a.device().is_cuda()) {
    copy_(a, binary(BinaryOp::Add, a, binary(BinaryOp::Mul, b, full({}, alpha, b.dtype(), b.device()))));
    return;
  }
  cpu::axpy_(a, alpha, b);
}

void scale_(const Tensor& x, double alpha) {
  copy_(x, binary(BinaryOp::Mul, x, full({}, alpha, x.dtype(), x.device())));
}

}  // namespace dfx::kernels
