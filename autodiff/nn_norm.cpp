// autodiff/nn_norm.cpp — batch normalisation (and SyncBatchNorm through `all_reduce`) on Vars.
// Training mode is one recorded op on fused kernels: ONE all-reduce of packed float64 (count,
// sum, sumsq) in the forward, ONE of (sum g, sum g*xhat) in the backward. A backward run with
// create_graph instead composes the same formulas from differentiable ops (channel_sum reduces
// across ranks), so second-order derivatives are exact, also across ranks.
#include "autodiff/nn_norm.h"

#include <cmath>

#include "autodiff/ops.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"
#include "kernels/reduce.h"
#include "kernels/shape_ops.h"

namespace dfx::ad {
namespace k = dfx::kernels;
using VarList = std::vector<Var>;

namespace {

// Every dim but 1: the dims batch norm reduces over.
std::vector<int64_t> reduced_dims(int ndim) {
  std::vector<int64_t> d{0};
  for (int i = 2; i < ndim; ++i) d.push_back(i);
  return d;
}

// [1, C, 1, ...]: a [C] vector viewed to broadcast against [N, C, *S].
Shape channel_view(const Shape& xs) {
  Shape s(xs.size(), 1);
  s[1] = xs[1];
  return s;
}

// Sums a per-channel tensor over ranks in float64 (the contract of ChannelAllReduce) and returns
// it in t's dtype; t itself is never modified.
Tensor reduce_over_ranks(const Tensor& t, const ChannelAllReduce& all_reduce, const char* op) {
  if (!all_reduce) return t;
  Tensor buf = t.dtype() == DType::Float64 ? t.clone() : t.to(DType::Float64).contiguous();
  const Shape shape = buf.shape();
  all_reduce(buf);
  DFX_CHECK(buf.defined() && buf.shape() == shape && buf.dtype() == DType::Float64, op,
            ": all_reduce changed the per-channel sums to ", buf.describe(), "; expected float64 ",
            shape);
  return buf.dtype() == t.dtype() ? buf : buf.to(t.dtype());
}

void check_channel(const Tensor& t, const Tensor& x, const char* what) {
  if (!t.defined()) return;
  DFX_CHECK(t.dim() == 1 && t.shape()[0] == x.shape()[1] && t.device() == x.device() &&
                is_floating(t.dtype()),
            "batch_norm: ", what, " is ", t.describe(), "; expected a floating [", x.shape()[1],
            "] tensor on ", x.device(), " for input ", x.describe());
}

Var eval_batch_norm(const Var& x, const Var& gamma, const Var& beta, const Tensor& running_mean,
                    const Tensor& running_var, double eps) {
  DFX_CHECK(running_mean.defined() && running_var.defined(), "batch_norm: evaluation mode needs "
            "running_mean and running_var (got ", running_mean.describe(), ", ",
            running_var.describe(), ")");
  // invstd = 1 / sqrt(running_var + eps) in float64, on the device.
  const Tensor v = k::add(running_var.to(DType::Float64),
                          full({}, eps, DType::Float64, running_var.device()));
  Tensor invstd = k::unary(k::UnaryOp::Reciprocal, k::unary(k::UnaryOp::Sqrt, v));
  bool any = x.requires_grad() || gamma.requires_grad() || beta.requires_grad();
  if (!grad_enabled() || !any)
    return Var(k::bn_apply(x.data(), running_mean, invstd, gamma.data(), beta.data()));
  // A plain affine map of x per channel, written in Var ops so it is differentiable to any order.
  const Shape cv = channel_view(x.shape());
  Var scale(invstd.to(x.dtype()));
  if (gamma.defined()) scale = mul(gamma, scale);
  Var y = mul(sub(x, Var(running_mean.to(x.dtype()).reshape(cv))), reshape(scale, cv));
  return beta.defined() ? add(y, reshape(beta, cv)) : y;
}

// What the recorded backward of training-mode batch norm keeps for its own derivatives.
struct BnSaved {
  Var x, gamma;
  Tensor mean, invstd;  // float64 [C], the forward's global moments
  double count = 0;     // values per channel over all ranks
  ChannelAllReduce all_reduce;
  double eps = 0;
  Tensor sums;          // float64 [2, C]: global (sum g, sum g * xhat)
};

// The input gradient of batch norm from differentiable ops, for a constant x (m, is given) or,
// with m and is undefined, recomputing the moments from x so that every order is exact.
VarList composite_batch_norm_backward(const BnSaved& sv, const Var& g, Var m, Var is, bool nx,
                                      bool ng, bool nb) {
  const Var& x = sv.x;
  const Shape xs = x.shape(), cv = channel_view(xs);
  const std::vector<int64_t> dims = reduced_dims(x.dim());
  const double inv_n = 1.0 / sv.count;
  if (!m.defined()) {
    m = mul(channel_sum(x, sv.all_reduce), inv_n);
    Var d = sub(x, reshape(m, cv));
    is = rsqrt(add(mul(channel_sum(mul(d, d), sv.all_reduce), inv_n), sv.eps));
  }
  Var xhat = mul(sub(x, reshape(m, cv)), reshape(is, cv));
  Var gxhat = mul(g, xhat);
  Var gx, gg, gb;
  if (ng) gg = sum(gxhat, dims);
  if (nb) gb = sum(g, dims);
  if (nx) {
    Var sg = mul(channel_sum(g, sv.all_reduce), inv_n);
    Var sgx = mul(channel_sum(gxhat, sv.all_reduce), inv_n);
    Var kk = sv.gamma.defined() ? mul(sv.gamma, is) : is;
    gx = mul(reshape(kk, cv), sub(sub(g, reshape(sg, cv)), mul(xhat, reshape(sgx, cv))));
  }
  return {gx, gg, gb};
}

// Third and higher orders: d<out, seed>/d inputs from the composite form `out` (exact, slower).
VarList differentiate_composite(const std::vector<Var>& inputs, const Var& out, const Var& seed) {
  std::vector<Var> live;
  for (const Var& v : inputs)
    if (v.defined() && v.requires_grad()) live.push_back(v);
  VarList res(inputs.size());
  if (live.empty() || !out.requires_grad()) return res;
  VarList gl = grad({out}, live, {seed}, true, true);
  for (size_t i = 0, j = 0; i < inputs.size(); ++i)
    if (inputs[i].defined() && inputs[i].requires_grad()) res[i] = gl[j++];
  return res;
}

// [C] float64 values as a [1, C, 1, ...] tensor of x's dtype and device.
Tensor channel_tensor(const std::vector<double>& v, const Tensor& x) {
  return from_vector<double>(v, {static_cast<int64_t>(v.size())})
      .to(x.dtype())
      .to(x.device())
      .reshape(channel_view(x.shape()));
}

// Rule of gx = gamma * is * (g - S(g)/n - xhat * S(g xhat)/n) (S: channel sums over all ranks)
// for the seed a = dL/dgx. With sa = S(a)/n, sax = S(a xhat)/n, sg, sgx as above and
// A = S(a g)/n - sg sa, differentiating through xhat and is (both depend on x via the moments):
//   dL/dg     = gamma * is * (a - sa - xhat * sax)              (the same projection)
//   dL/dx     = gamma * is^2 * (-sgx a - sax g + sgx sa + sax sg + xhat (3 sgx sax - A))
//   dL/dgamma = is * (S_loc(a g) - sg S_loc(a) - sgx S_loc(a xhat))   (local; reduced later)
// One fused reduction and one all-reduce of the three sums; the rest is elementwise.
VarList batch_norm_backward_rule(const BnSaved& sv, const Var& g, const Var& a) {
  if (grad_enabled()) {
    Var gx = composite_batch_norm_backward(sv, g, Var(), Var(), true, false, false)[0];
    return differentiate_composite({g, sv.x, sv.gamma}, gx, a);
  }
  const Tensor& xt = sv.x.data();
  const Tensor& at = a.data();
  const Tensor& gt = g.data();
  const int64_t C = xt.shape()[1];
  const double n = sv.count;
  Tensor loc = k::concat({k::bn_backward_reduce(at, xt, sv.mean, sv.invstd),
                          k::sum(k::mul(at, gt), reduced_dims(xt.dim())).to(DType::Float64).reshape({1, C})},
                         0);
  const std::vector<double> lv = loc.to_vector(), sv_sums = sv.sums.to_vector(),
                            is = sv.invstd.to_vector();
  Tensor glob = reduce_over_ranks(loc, sv.all_reduce, "batch_norm double backward");
  const std::vector<double> gv = glob.to_vector();
  std::vector<double> gam(C, 1.0);
  if (sv.gamma.defined()) gam = sv.gamma.data().to_vector();
  std::vector<double> c_a(C), c_g(C), c_0(C), c_xhat(C), dgamma(C);
  for (int64_t c = 0; c < C; ++c) {
    const double sg = sv_sums[c] / n, sgx = sv_sums[C + c] / n;
    const double sa = gv[c] / n, sax = gv[C + c] / n, A = gv[2 * C + c] / n - sg * sa;
    const double k2 = gam[c] * is[c] * is[c];
    c_a[c] = -k2 * sgx;
    c_g[c] = -k2 * sax;
    c_0[c] = k2 * (sgx * sa + sax * sg);
    c_xhat[c] = k2 * (3 * sgx * sax - A);
    dgamma[c] = is[c] * (lv[2 * C + c] - sg * lv[c] - sgx * lv[C + c]);
  }
  Var dg, dx, dgam;
  if (g.requires_grad())
    dg = Var(k::bn_backward_apply(at, xt, sv.mean, sv.invstd, sv.gamma.data(),
                                  glob.narrow(0, 0, 2).contiguous(), n));
  if (sv.x.requires_grad()) {
    Tensor xhat = k::bn_apply(xt, sv.mean, sv.invstd, channel_tensor(c_xhat, xt).reshape({C}),
                              channel_tensor(c_0, xt).reshape({C}));
    dx = Var(k::add(k::add(xhat, k::mul(at, channel_tensor(c_a, xt))),
                    k::mul(gt, channel_tensor(c_g, xt))));
  }
  if (sv.gamma.defined() && sv.gamma.requires_grad())
    dgam = Var(from_vector<double>(dgamma, {C}).to(xt.dtype()).to(xt.device()));
  return {dg, dx, dgam};
}

// Rule of gg = S_loc(g * xhat) (this rank's gamma gradient) for the seed b = dL/dgg [C]:
//   dL/dg = b * xhat,   dL/dx = is * (b g - S(b g)/n - xhat * S(b g xhat)/n)
// where S_loc(b g) = b * S_loc(g) and S_loc(b g xhat) = b * S_loc(g xhat) are the saved local sums.
VarList batch_norm_gamma_grad_rule(const BnSaved& sv, const Var& g, const Tensor& local_sums,
                                   const Var& b) {
  if (grad_enabled()) {
    const Shape cv = channel_view(sv.x.shape());
    Var m = mul(channel_sum(sv.x, sv.all_reduce), 1.0 / sv.count);
    Var d = sub(sv.x, reshape(m, cv));
    Var is = rsqrt(add(mul(channel_sum(mul(d, d), sv.all_reduce), 1.0 / sv.count), sv.eps));
    Var gg = sum(mul(g, mul(d, reshape(is, cv))), reduced_dims(sv.x.dim()));
    return differentiate_composite({g, sv.x}, gg, b);
  }
  const Tensor& xt = sv.x.data();
  const int64_t C = xt.shape()[1];
  Tensor bt = b.data().to(xt.dtype());
  Var dg, dx;
  if (g.requires_grad()) dg = Var(k::bn_apply(xt, sv.mean, sv.invstd, bt, Tensor()));
  if (sv.x.requires_grad()) {
    Tensor scaled = k::mul(local_sums, b.data().to(DType::Float64).reshape({1, C}));
    Tensor glob = reduce_over_ranks(scaled.contiguous(), sv.all_reduce, "batch_norm double backward");
    dx = Var(k::bn_backward_apply(k::mul(g.data(), bt.reshape(channel_view(xt.shape()))), xt, sv.mean,
                                  sv.invstd, Tensor(), glob, sv.count));
  }
  return {dg, dx};
}

}  // namespace

Var channel_sum(const Var& x, const ChannelAllReduce& all_reduce) {
  DFX_CHECK(x.dim() >= 2, "channel_sum: expected [N, C, *S], got ", x.data().describe());
  Shape xs = x.shape();
  Tensor s = reduce_over_ranks(k::sum(x.data(), reduced_dims(x.dim())), all_reduce, "channel_sum");
  return record("channel_sum", s, {x}, [xs, all_reduce](const Var&, const Var& g) {
    return VarList{channel_bcast(g, xs, all_reduce)};
  });
}

Var channel_bcast(const Var& g, const Shape& shape, const ChannelAllReduce& all_reduce) {
  DFX_CHECK(shape.size() >= 2 && g.dim() == 1 && g.shape()[0] == shape[1], "channel_bcast: ",
            g.data().describe(), " does not broadcast along dim 1 of ", shape);
  Tensor s = reduce_over_ranks(g.data(), all_reduce, "channel_bcast");
  return record("channel_bcast", s.reshape(channel_view(shape)).expand(shape), {g},
                [all_reduce](const Var&, const Var& gg) {
                  return VarList{channel_sum(gg, all_reduce)};
                });
}

namespace {

void check_batch_norm_args(const Var& x, const Var& gamma, const Var& beta,
                           const Tensor& running_mean, const Tensor& running_var) {
  DFX_CHECK(x.defined() && x.dim() >= 2, "batch_norm: expected x [N, C, *S], got ",
            x.data().describe());
  check_channel(gamma.data(), x.data(), "gamma");
  check_channel(beta.data(), x.data(), "beta");
  check_channel(running_mean, x.data(), "running_mean");
  check_channel(running_var, x.data(), "running_var");
  for (const Var* p : {&gamma, &beta})
    DFX_CHECK(!p->defined() || p->dtype() == x.dtype(), "batch_norm: gamma/beta ",
              p->data().describe(), " differ in dtype from x ", x.data().describe());
}

// Training mode's batch moments, global over ranks: mean and invstd as float64 [C] on x's
// device, and the count per channel: float64 [1] on the device, and as a number where the host
// knows it without reading the device (no all-reduce). A training step reads nothing here.
struct BatchMoments {
  Tensor mean, invstd;
  Tensor count;
  double known_count = 0;
  // For the create_graph paths, whose host arithmetic needs it (one read with SyncBatchNorm).
  double host_count() const { return known_count > 0 ? known_count : count.item(); }
};
BatchMoments batch_moments(const Var& x, const Tensor& running_mean, const Tensor& running_var,
                           double momentum, double eps, const ChannelAllReduce& all_reduce) {
  // Local (count, sum, sumsq) in one float64 tensor, one all-reduce, global moments; the
  // running statistics are updated on the device (kernels::bn_moments).
  const int64_t C = x.shape()[1];
  const double local = C ? static_cast<double>(x.numel() / C) : 0.0;
  Tensor packed = k::concat({full({1, C}, local, DType::Float64, x.device()),
                             k::channel_sums(x.data())}, 0);
  packed = reduce_over_ranks(packed, all_reduce, "batch_norm");
  const Tensor count = packed.select(0, 0).narrow(0, 0, 1);
  // The global count is at least this rank's, so only a rank with at most one value per channel
  // has to read it to know the batch is valid.
  const double global = local > 1 || !all_reduce || C == 0 ? local : count.item();
  DFX_CHECK(global > 1, "batch_norm: training needs more than one value per channel, got ",
            global, " over all ranks for input ", x.data().describe());
  const Tensor mom = k::bn_moments(packed, running_mean, running_var, momentum, eps);
  return {mom.select(0, 0), mom.select(0, 1), count, all_reduce ? 0.0 : local};
}

// Training-mode batch norm's first-order rule from tensors alone: two fused passes; only
// (sum g, sum g*xhat) cross ranks. The parameter gradients stay local: the data-parallel reducer
// sums them like every other gradient. With act.z, g is the gradient of a fused leaky ReLU's
// output, whose derivative the two passes apply as they read g (and with act.rebuild_x, x is
// undefined and rebuilt from act.z inside them: kernels/norm.h, LeakyReluOutput).
VarList batch_norm_first_order(const Tensor& x, const Tensor& gamma, const BatchMoments& bm,
                               const ChannelAllReduce& all_reduce, bool nx, bool ng, bool nb,
                               const Tensor& g, const k::LeakyReluOutput& act = {}) {
  Tensor red = k::bn_backward_reduce(g, x, bm.mean, bm.invstd, act);
  Var gx, gg, gb;
  if (ng) gg = Var(red.select(0, 1).to(g.dtype()).contiguous());
  if (nb) gb = Var(red.select(0, 0).to(g.dtype()).contiguous());
  if (nx) {
    Tensor global = reduce_over_ranks(red, all_reduce, "batch_norm backward");
    gx = Var(k::bn_backward_apply(g, x, bm.mean, bm.invstd, gamma, global, bm.count, act));
  }
  return {gx, gg, gb};
}

// Whether batch_norm_leaky_relu may rebuild x from its output (see nn_ops.h).
bool can_recompute_input(const Var& gamma, double slope) {
  if (!(slope > 0)) return false;
  if (!gamma.defined()) return true;
  for (double v : gamma.data().to_vector())
    if (!(std::fabs(v) >= 1e-3)) return false;
  return true;
}

// The rule of training-mode batch norm for the gradient g of its output.
VarList batch_norm_rule(const Var& x, const Var& gamma, const Var& beta, const BatchMoments& bm,
                        double eps, const ChannelAllReduce& all_reduce, const Var& g) {
  const Tensor& mean_t = bm.mean;
  const Tensor& invstd_t = bm.invstd;
  const bool nx = x.requires_grad(), ng = gamma.requires_grad(), nb = beta.requires_grad();
  if (!grad_enabled())
    return batch_norm_first_order(x.data(), gamma.data(), bm, all_reduce, nx, ng, nb, g.data());
  const double count = bm.host_count();
  if (nx) {
    // create_graph with x variable: the same values from the fused kernels, recorded as two
    // ops whose own rules are the hand-derived second derivatives (batch_norm_backward_rule).
    BnSaved sv{x, gamma, mean_t, invstd_t, count, all_reduce, eps, Tensor()};
    Tensor red = k::bn_backward_reduce(g.data(), x.data(), mean_t, invstd_t);  // local sums
    sv.sums = reduce_over_ranks(red, all_reduce, "batch_norm backward");
    Var gx = record("batch_norm_backward",
                    k::bn_backward_apply(g.data(), x.data(), mean_t, invstd_t, gamma.data(),
                                         sv.sums, count),
                    {g, x, gamma}, [sv, g](const Var&, const Var& a) {
                      return batch_norm_backward_rule(sv, g, a);
                    });
    Var gg, gb;
    if (ng) {
      gg = record("batch_norm_gamma_grad", red.select(0, 1).to(x.dtype()).contiguous(), {g, x},
                  [sv, g, red](const Var&, const Var& b) {
                    return batch_norm_gamma_grad_rule(sv, g, red, b);
                  });
    }
    if (nb) gb = sum(g, reduced_dims(x.dim()));
    return {gx, gg, gb};
  }
  // create_graph with x constant: the moments are constants; compose from differentiable ops.
  BnSaved sv{x, gamma, mean_t, invstd_t, count, all_reduce, eps, Tensor()};
  return composite_batch_norm_backward(sv, g, Var(mean_t.to(x.dtype())),
                                       Var(invstd_t.to(x.dtype())), false, ng, nb);
}

}  // namespace

Var batch_norm(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean,
               Tensor running_var, bool training, double momentum, double eps,
               const ChannelAllReduce& all_reduce) {
  check_batch_norm_args(x, gamma, beta, running_mean, running_var);
  if (!training) return eval_batch_norm(x, gamma, beta, running_mean, running_var, eps);
  const BatchMoments bm = batch_moments(x, running_mean, running_var, momentum, eps, all_reduce);
  Tensor y = k::bn_apply(x.data(), bm.mean, bm.invstd, gamma.data(), beta.data());
  return record("batch_norm", y, {x, gamma, beta}, [=](const Var&, const Var& g) {
    return batch_norm_rule(x, gamma, beta, bm, eps, all_reduce, g);
  });
}

Var batch_norm_leaky_relu(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean,
                          Tensor running_var, bool training, double momentum, double eps,
                          const ChannelAllReduce& all_reduce, double slope,
                          bool recompute_input) {
  if (!training || slope < 0)
    return leaky_relu(batch_norm(x, gamma, beta, running_mean, running_var, training, momentum,
                                 eps, all_reduce),
                      slope);
  check_batch_norm_args(x, gamma, beta, running_mean, running_var);
  const BatchMoments bm = batch_moments(x, running_mean, running_var, momentum, eps, all_reduce);
  Tensor z = k::bn_apply(x.data(), bm.mean, bm.invstd, gamma.data(), beta.data(),
                         k::FusedLeakyRelu{true, slope});
  if (recompute_input && can_recompute_input(gamma, slope)) {
    // Only the output is kept (x is not captured): the parameters' values are read at backward
    // time, before any optimiser step can change them.
    const bool nx = x.requires_grad(), ng = gamma.requires_grad(), nb = beta.requires_grad();
    const Var gam = gamma, bet = beta;
    return record("batch_norm_leaky_relu", z, {x, gamma, beta},
                  [=](const Var& out, const Var& g) -> VarList {
                    DFX_CHECK(!grad_enabled(), "batch_norm_leaky_relu: this batch norm keeps no "
                              "input (recompute_input, e.g. dfx train --bn-recompute) and cannot "
                              "be differentiated twice (create_graph: HVP, Newton-CG, "
                              "AdaHessian); build the model without it");
                    const k::LeakyReluOutput act{out.data(), slope, true, gam.data(),
                                                 bet.data()};
                    return batch_norm_first_order(Tensor(), gam.data(), bm, all_reduce, nx, ng,
                                                  nb, g.data(), act);
                  }, true);
  }
  // The output is saved (the next layer keeps it anyway); leaky_relu's derivative is read off
  // it, then batch norm's rule runs as in the unfused pair.
  return record("batch_norm_leaky_relu", z, {x, gamma, beta},
                [=](const Var& out, const Var& g) {
                  if (!grad_enabled())  // the leaky ReLU's derivative applied inside the passes
                    return batch_norm_first_order(x.data(), gamma.data(), bm, all_reduce,
                                                  x.requires_grad(), gamma.requires_grad(),
                                                  beta.requires_grad(), g.data(),
                                                  k::LeakyReluOutput{out.data(), slope, false,
                                                                     Tensor(), Tensor()});
                  const Var gy = leaky_relu_backward(g, out.data(), slope);
                  return batch_norm_rule(x, gamma, beta, bm, eps, all_reduce, gy);
                }, true);
}

}  // namespace dfx::ad
