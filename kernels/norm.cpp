// kernels/norm.cpp — shape checks and device dispatch for the batch-norm kernels. Per-channel
// operands are O(C), so they are brought to contiguous float64 here once and the device kernels
// see a single layout.
#include "kernels/norm.h"

#include "config.h"
#include "core/copy.h"
#include "kernels/backend.h"
#include "kernels/elementwise.h"
#include "kernels/cpu/norm.h"
#if DFX_HAVE_CUDA
#include "kernels/cuda/norm.cuh"
#endif

namespace dfx::kernels {

namespace {

[[noreturn]] void no_cuda(const char* op, const Tensor& x) {
  DFX_FAIL(op, ": no CUDA kernel for ", x.describe(), " (dfx was built without CUDA)");
}

// x as [N, C, S] (S = 1 without spatial dims).
void split_dims(const Tensor& x, const char* op, int64_t& n, int64_t& c, int64_t& s) {
  DFX_CHECK(x.defined(), op, ": undefined input");
  DFX_CHECK(x.dim() >= 2, op, ": expected [N, C, *S], got ", x.describe());
  DFX_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, op,
            ": expected float32 or float64, got ", x.describe());
  if (x.device().is_cuda() && !DFX_HAVE_CUDA) no_cuda(op, x);
  n = x.shape()[0];
  c = x.shape()[1];
  s = 1;
  for (int d = 2; d < x.dim(); ++d) s *= x.shape()[d];
}

// A [C] per-channel operand as contiguous float64 on x's device; `fill` when undefined.
Tensor per_channel(const Tensor& t, const Tensor& x, int64_t c, double fill, const char* op,
                   const char* what) {
  if (!t.defined()) return full({c}, fill, DType::Float64, x.device());
  DFX_CHECK(t.dim() == 1 && t.shape()[0] == c, op, ": ", what, " is ", t.describe(),
            "; expected [", c, "] for input ", x.describe());
  DFX_CHECK(t.device() == x.device(), op, ": ", what, " ", t.describe(), " is not on ",
            x.device(), " like the input");
  DFX_CHECK(is_floating(t.dtype()), op, ": ", what, " must be floating, got ", t.describe());
  return t.to(DType::Float64).contiguous();
}

void check_like(const Tensor& g, const Tensor& x, const char* op) {
  DFX_CHECK(g.defined() && g.shape() == x.shape() && g.dtype() == x.dtype() &&
                g.device() == x.device(),
            op, ": gradient ", g.describe(), " does not match input ", x.describe());
}

// A channels-last x (core/tensor.h) is [N, *S, C] in memory, i.e. [N * S, C, 1] to the kernels,
// which have a dense path for S = 1 (a column reduction over rows of C): no layout copies.
bool as_rows(const Tensor& x, int64_t& n, int64_t& s) {
  if (x.dim() < 3 || x.suggest_memory_format() != MemoryFormat::ChannelsLast) return false;
  n *= s;
  s = 1;
  return true;
}

// x in the layout the kernels will read (see as_rows), and an output like it.
Tensor kernel_layout(const Tensor& t, bool rows) {
  return rows ? t.contiguous(MemoryFormat::ChannelsLast) : t.contiguous();
}
Tensor empty_like_layout(const Tensor& x, bool rows) {
  return Tensor::empty(x.shape(), x.dtype(), x.device(),
                       rows ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous);
}

}  // namespace

Tensor channel_sums(const Tensor& x) {
  int64_t n, c, s;
  split_dims(x, "channel_sums", n, c, s);
  const bool rows = as_rows(x, n, s);
  Tensor out = Tensor::empty({2, c}, DType::Float64, x.device());
  DFX_BACKEND(x, channel_sums(kernel_layout(x, rows), n, c, s, out));
  return out;
}

Tensor bn_apply(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& gamma,
                const Tensor& beta, FusedLeakyRelu act) {
  int64_t n, c, s;
  split_dims(x, "bn_apply", n, c, s);
  DFX_CHECK(mean.defined() && invstd.defined(), "bn_apply: mean and invstd are required");
  Tensor m = per_channel(mean, x, c, 0, "bn_apply", "mean");
  Tensor is = per_channel(invstd, x, c, 1, "bn_apply", "invstd");
  Tensor ga = per_channel(gamma, x, c, 1, "bn_apply", "gamma");
  Tensor be = per_channel(beta, x, c, 0, "bn_apply", "beta");
  const bool rows = as_rows(x, n, s);
  Tensor y = empty_like_layout(x, rows);
  DFX_BACKEND(x, bn_apply(kernel_layout(x, rows), n, c, s, m, is, ga, be, y, act));
  return y;
}

namespace {

// The backward kernels' view of g, x and the fused activation: `like` is the tensor that fixes
// the shape and layout (x, or z when x is rebuilt from it).
struct BackwardArgs {
  Tensor like;
  BnActGrad act;
};
BackwardArgs backward_args(const Tensor& g, const Tensor& x, const Tensor& invstd,
                           const LeakyReluOutput& a, const char* op) {
  BackwardArgs r;
  r.like = a.rebuild_x ? a.z : x;
  DFX_CHECK(!a.rebuild_x || a.z.defined(), op, ": rebuild_x needs the activation's output z");
  if (!a.z.defined()) return r;
  DFX_CHECK(a.slope >= 0 && (!a.rebuild_x || a.slope > 0), op, ": leaky ReLU slope ", a.slope,
            a.rebuild_x ? "; rebuilding x needs a slope > 0" : "; expected >= 0");
  check_like(a.z, g, op);
  if (!a.rebuild_x) check_like(a.z, x, op);
  r.act.on = true;
  r.act.z = a.z;
  r.act.slope = a.slope;
  r.act.rebuild_x = a.rebuild_x;
  if (a.rebuild_x) {
    const int64_t c = a.z.shape()[1];
    r.act.beta = per_channel(a.beta, a.z, c, 0, op, "beta");
    Tensor ga = per_channel(a.gamma, a.z, c, 1, op, "gamma");
    Tensor is = per_channel(invstd, a.z, c, 1, op, "invstd");
    r.act.inv_scale = kernels::div(ones({c}, DType::Float64, a.z.device()), kernels::mul(ga, is));
  }
  return r;
}

}  // namespace

Tensor bn_backward_reduce(const Tensor& g, const Tensor& x, const Tensor& mean,
                          const Tensor& invstd, const LeakyReluOutput& act) {
  BackwardArgs a = backward_args(g, x, invstd, act, "bn_backward_reduce");
  int64_t n, c, s;
  split_dims(a.like, "bn_backward_reduce", n, c, s);
  check_like(g, a.like, "bn_backward_reduce");
  DFX_CHECK(mean.defined() && invstd.defined(), "bn_backward_reduce: mean and invstd are required");
  Tensor m = per_channel(mean, a.like, c, 0, "bn_backward_reduce", "mean");
  Tensor is = per_channel(invstd, a.like, c, 1, "bn_backward_reduce", "invstd");
  const bool rows = as_rows(a.like, n, s);
  Tensor out = Tensor::empty({2, c}, DType::Float64, a.like.device());
  if (a.act.on) a.act.z = kernel_layout(a.act.z, rows);
  const Tensor xk = act.rebuild_x ? Tensor() : kernel_layout(x, rows);
  DFX_BACKEND(a.like, bn_backward_reduce(kernel_layout(g, rows), xk, n, c, s, m, is, out, a.act));
  return out;
}

Tensor bn_moments(const Tensor& packed, const Tensor& running_mean, const Tensor& running_var,
                  double momentum, double eps) {
  DFX_CHECK(packed.defined() && packed.dim() == 2 && packed.shape()[0] == 3 &&
                packed.dtype() == DType::Float64,
            "bn_moments: packed is ", packed.describe(), "; expected float64 [3, C] (count, sum, "
            "sum of squares)");
  if (packed.device().is_cuda() && !DFX_HAVE_CUDA) no_cuda("bn_moments", packed);
  const int64_t c = packed.shape()[1];
  // The running statistics in float64, in place when they already are contiguous float64.
  auto slot = [&](const Tensor& r, const char* what) -> Tensor {
    if (!r.defined()) return Tensor();
    DFX_CHECK(r.dim() == 1 && r.shape()[0] == c && r.device() == packed.device() &&
                  is_floating(r.dtype()),
              "bn_moments: ", what, " is ", r.describe(), "; expected a floating [", c, "] on ",
              packed.device());
    return r.to(DType::Float64).contiguous();
  };
  Tensor rm = slot(running_mean, "running_mean"), rv = slot(running_var, "running_var");
  const Tensor p = packed.contiguous();
  Tensor out = Tensor::empty({2, c}, DType::Float64, p.device());
  DFX_BACKEND(p, bn_moments(p, c, rm, rv, momentum, eps, out));
  if (rm.defined() && !rm.shares_storage(running_mean)) copy_(running_mean, rm);
  if (rv.defined() && !rv.shares_storage(running_var)) copy_(running_var, rv);
  return out;
}

Tensor bn_backward_apply(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                         const Tensor& gamma, const Tensor& sums, double count,
                         const LeakyReluOutput& act) {
  DFX_CHECK(count > 0, "bn_backward_apply: count ", count, " must be positive");
  DFX_CHECK(g.defined(), "bn_backward_apply: undefined gradient");
  return bn_backward_apply(g, x, mean, invstd, gamma, sums,
                           full({1}, count, DType::Float64, g.device()), act);
}

Tensor bn_backward_apply(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                         const Tensor& gamma, const Tensor& sums, const Tensor& count,
                         const LeakyReluOutput& act) {
  BackwardArgs a = backward_args(g, x, invstd, act, "bn_backward_apply");
  int64_t n, c, s;
  split_dims(a.like, "bn_backward_apply", n, c, s);
  check_like(g, a.like, "bn_backward_apply");
  DFX_CHECK(mean.defined() && invstd.defined(), "bn_backward_apply: mean and invstd are required");
  DFX_CHECK(sums.defined() && sums.shape() == Shape({2, c}), "bn_backward_apply: sums ",
            sums.describe(), " must be [2, ", c, "] (sum g, sum g * xhat)");
  DFX_CHECK(count.defined() && count.numel() == 1 && count.dtype() == DType::Float64 &&
                count.device() == a.like.device(),
            "bn_backward_apply: count is ", count.describe(), "; expected one float64 value on ",
            a.like.device());
  Tensor m = per_channel(mean, a.like, c, 0, "bn_backward_apply", "mean");
  Tensor is = per_channel(invstd, a.like, c, 1, "bn_backward_apply", "invstd");
  Tensor ga = per_channel(gamma, a.like, c, 1, "bn_backward_apply", "gamma");
  Tensor sm = sums.to(DType::Float64).contiguous();
  const bool rows = as_rows(a.like, n, s);
  Tensor gx = empty_like_layout(a.like, rows);
  if (a.act.on) a.act.z = kernel_layout(a.act.z, rows);
  const Tensor xk = act.rebuild_x ? Tensor() : kernel_layout(x, rows);
  DFX_BACKEND(a.like, bn_backward_apply(kernel_layout(g, rows), xk, n, c, s, m, is, ga, sm,
                                         count.contiguous().reshape({1}), gx, a.act));
  return gx;
}

}  // namespace dfx::kernels
