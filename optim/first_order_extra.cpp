// optim/first_order_extra.cpp — LAMB and LARS. Norms are summed in float64 so the trust ratio,
// a global quantity of each parameter tensor, is the same on every rank and every device.
#include "optim/first_order_extra.h"

#include <algorithm>
#include <cmath>

#include "core/copy.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"

namespace dfx::optim {
namespace k = dfx::kernels;

namespace {
Tensor scalar_like(double v, const Tensor& t) { return full({}, v, t.dtype(), t.device()); }
double norm(const Tensor& t) {
  Tensor d = t.to(DType::Float64);
  return std::sqrt(k::sum(k::mul(d, d)).item());
}
// dst = a * dst + b * src, in place.
void lerp_into(const Tensor& dst, double a, const Tensor& src, double b) {
  copy_(dst, k::add(k::mul(dst, scalar_like(a, dst)), k::mul(src, scalar_like(b, src))));
}
}  // namespace

LAMB::LAMB(std::vector<ad::Var> params, LAMBOptions opt)
    : FirstOrder(std::move(params), opt.lr), opt_(opt) {
  DFX_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1,
            "LAMB: betas must be in [0, 1), got ", opt.beta1, ", ", opt.beta2);
  DFX_CHECK(opt.eps > 0, "LAMB: eps must be > 0, got ", opt.eps);
  DFX_CHECK(opt.weight_decay >= 0, "LAMB: weight_decay must be >= 0, got ", opt.weight_decay);
  DFX_CHECK(opt.clamp_value > 0, "LAMB: clamp_value must be > 0, got ", opt.clamp_value);
}

void LAMB::apply() {
  ++steps_;
  double step_size = lr_;
  if (opt_.debias) {
    const double t = static_cast<double>(steps_);
    step_size *= std::sqrt(1 - std::pow(opt_.beta2, t)) / (1 - std::pow(opt_.beta1, t));
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!has_grad(i)) continue;
    Tensor p = params_[i].mutable_data();
    Tensor g = params_[i].grad().data();
    Tensor& m = slot("exp_avg", i);
    Tensor& v = slot("exp_avg_sq", i);
    lerp_into(m, opt_.beta1, g, 1 - opt_.beta1);
    lerp_into(v, opt_.beta2, k::mul(g, g), 1 - opt_.beta2);
    Tensor upd = k::div(m, k::add(k::unary(k::UnaryOp::Sqrt, v), scalar_like(opt_.eps, v)));
    if (opt_.weight_decay != 0) upd = k::add(upd, k::mul(p, scalar_like(opt_.weight_decay, p)));
    const double w = std::min(norm(p), opt_.clamp_value), u = norm(upd);
    // The trust ratio makes the step size relative to the layer's scale; 1 where undefined.
    const double trust = opt_.adam || w == 0 || u == 0 ? 1.0 : w / u;
    k::axpy_(p, -step_size * trust, upd);
  }
}

LARS::LARS(std::vector<ad::Var> params, LARSOptions opt)
    : FirstOrder(std::move(params), opt.lr), opt_(opt) {
  DFX_CHECK(opt.momentum >= 0, "LARS: momentum must be >= 0, got ", opt.momentum);
  DFX_CHECK(opt.weight_decay >= 0, "LARS: weight_decay must be >= 0, got ", opt.weight_decay);
  DFX_CHECK(opt.trust_coefficient > 0, "LARS: trust_coefficient must be > 0, got ",
            opt.trust_coefficient);
  DFX_CHECK(opt.eps >= 0, "LARS: eps must be >= 0, got ", opt.eps);
}

void LARS::apply() {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!has_grad(i)) continue;
    Tensor p = params_[i].mutable_data();
    Tensor g = params_[i].grad().data();
    const double w = norm(p), gn = norm(g);
    // Local rate trust * ||p|| / (||g|| + wd ||p|| + eps); 1 for a zero weight or gradient.
    const double local =
        w > 0 && gn > 0 ? opt_.trust_coefficient * w / (gn + opt_.weight_decay * w + opt_.eps)
                        : 1.0;
    Tensor d = g;
    if (opt_.weight_decay != 0) d = k::add(d, k::mul(p, scalar_like(opt_.weight_decay, p)));
    d = k::mul(d, scalar_like(local * lr_, d));
    if (opt_.momentum != 0) {
      Tensor& buf = slot("momentum_buffer", i);
      if (steps_ == 0) copy_(buf, d);
      else lerp_into(buf, opt_.momentum, d, 1.0);
      d = buf;
    }
    k::axpy_(p, -1.0, d.contiguous());
  }
  ++steps_;
}

}  // namespace dfx::optim
