// optim/optimizer.cpp — SGD (momentum, dampening, Nesterov, weight decay) and Adam/AdamW
// (amsgrad), following PyTorch's update formulas exactly so results can be cross-checked.
#include "optim/optimizer.h"

#include <cmath>

#include "core/copy.h"
#include "kernels/elementwise.h"

namespace dfx::optim {
namespace k = dfx::kernels;

namespace {
Tensor scalar_like(double v, const Tensor& t) { return full({}, v, t.dtype(), t.device()); }
// dst = a * dst + b * src, in place.
void lerp_into(const Tensor& dst, double a, const Tensor& src, double b) {
  copy_(dst, k::add(k::mul(dst, scalar_like(a, dst)), k::mul(src, scalar_like(b, src))));
}
}  // namespace

Optimizer::Optimizer(std::vector<ad::Var> params, double lr) : params_(std::move(params)), lr_(lr) {
  DFX_CHECK(lr >= 0, "optimizer: learning rate must be >= 0, got ", lr);
  for (size_t i = 0; i < params_.size(); ++i)
    DFX_CHECK(params_[i].requires_grad() && params_[i].is_leaf(), "optimizer: parameter ", i,
              " (", params_[i].data().describe(), ") is not a leaf that requires grad");
}

void Optimizer::zero_grad() {
  for (auto& p : params_) p.zero_grad();
}

double FirstOrder::step(Objective& objective) {
  const double loss = objective.evaluate(true);
  apply();
  return loss;
}

std::vector<Tensor> Objective::hvp(const std::vector<Tensor>&) {
  DFX_FAIL("this objective gives no Hessian-vector products (has_hvp() is false); use a "
           "first-order optimiser or an objective with curvature");
}

std::vector<Tensor> Objective::gauss_newton(const std::vector<Tensor>&) {
  DFX_FAIL("this objective gives no Gauss-Newton products (has_gauss_newton() is false); its "
           "problem has no output-space curvature");
}

KroneckerStatistics Objective::kronecker_factors(uint64_t) {
  DFX_FAIL("this objective gives no Kronecker factors (has_kronecker_factors() is false); K-FAC "
           "needs a network of convolutions and a problem that samples its curvature");
}

std::vector<Tensor> FunctionObjective::hvp(const std::vector<Tensor>& v) {
  return hvp_ ? hvp_(v) : Objective::hvp(v);
}

KroneckerStatistics FunctionObjective::kronecker_factors(uint64_t draw) {
  return kron_ ? kron_(draw) : Objective::kronecker_factors(draw);
}

std::vector<Tensor> FunctionObjective::gauss_newton(const std::vector<Tensor>& v) {
  return gn_ ? gn_(v) : Objective::gauss_newton(v);
}

Tensor& Optimizer::slot(const std::string& name, size_t i) {
  auto& v = slots_[name];
  if (v.size() != params_.size()) v.resize(params_.size());
  if (!v[i].defined()) {
    // In the parameter's layout (channels-last weights), so fused updates walk one order.
    const Tensor& p = params_[i].data();
    v[i] = Tensor::empty(p.shape(), p.dtype(), p.device(), p.suggest_memory_format());
    fill_(v[i], 0.0);
  }
  return v[i];
}

std::map<std::string, Tensor> Optimizer::state() const {
  std::map<std::string, Tensor> s;
  s["step"] = from_vector<int64_t>({steps_}, {1});
  for (const auto& [name, ts] : slots_)
    for (size_t i = 0; i < ts.size(); ++i)
      if (ts[i].defined()) s[name + "." + std::to_string(i)] = ts[i];
  return s;
}

void Optimizer::load_state(const std::map<std::string, Tensor>& s) {
  auto it = s.find("step");
  DFX_CHECK(it != s.end(), "optimizer load_state: no 'step' entry");
  steps_ = static_cast<int64_t>(it->second.get({0}));
  slots_.clear();
  for (const auto& [key, t] : s) {
    if (key == "step") continue;
    auto dot = key.rfind('.');
    DFX_CHECK(dot != std::string::npos, "optimizer load_state: unexpected entry '", key, "'");
    size_t i = std::stoul(key.substr(dot + 1));
    DFX_CHECK(i < params_.size(), "optimizer load_state: '", key, "' names parameter ", i,
              " but there are ", params_.size());
    DFX_CHECK(t.shape() == params_[i].shape(), "optimizer load_state: '", key, "' has shape ",
              t.shape(), ", parameter ", i, " has ", params_[i].shape());
    slot(key.substr(0, dot), i) = t.to(params_[i].dtype()).to(params_[i].device()).clone();
  }
}

SGD::SGD(std::vector<ad::Var> params, SGDOptions opt) : FirstOrder(std::move(params), opt.lr), opt_(opt) {
  DFX_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0),
            "SGD: Nesterov momentum needs momentum > 0 and dampening 0");
}

void SGD::apply() {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!has_grad(i)) continue;
    Tensor p = params_[i].mutable_data();
    Tensor g = params_[i].grad().data();
    if (opt_.weight_decay != 0) g = k::add(g, k::mul(p, scalar_like(opt_.weight_decay, p)));
    if (opt_.momentum != 0) {
      Tensor& buf = slot("momentum", i);
      if (steps_ == 0) copy_(buf, g);
      else lerp_into(buf, opt_.momentum, g, 1.0 - opt_.dampening);
      g = opt_.nesterov ? k::add(g, k::mul(buf, scalar_like(opt_.momentum, buf))) : buf;
    }
    k::axpy_(p, -lr_, g.contiguous());
  }
  ++steps_;
}

Adam::Adam(std::vector<ad::Var> params, AdamOptions opt) : FirstOrder(std::move(params), opt.lr), opt_(opt) {
  DFX_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1,
            "Adam: betas must be in [0, 1), got ", opt.beta1, ", ", opt.beta2);
  DFX_CHECK(opt.eps > 0, "Adam: eps must be > 0, got ", opt.eps);
}

void Adam::apply() {
  ++steps_;
  const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(steps_));
  const double bc2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(steps_));
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!has_grad(i)) continue;
    Tensor p = params_[i].mutable_data();
    Tensor g = params_[i].grad().data();
    if (opt_.weight_decay != 0 && opt_.decoupled_weight_decay)
      k::scale_(p, 1.0 - lr_ * opt_.weight_decay);
    Tensor& m = slot("exp_avg", i);
    Tensor& v = slot("exp_avg_sq", i);
    // One fused pass (one kernel on a GPU instead of about 15 ops and their temporaries) when
    // the moments lie like the parameter, as they do unless a checkpoint brought other strides.
    const bool dense = p.is_contiguous(p.suggest_memory_format());
    if (!opt_.amsgrad && dense && m.same_layout(p) && v.same_layout(p)) {
      k::AdamUpdate u;
      u.beta1 = opt_.beta1;
      u.beta2 = opt_.beta2;
      u.step = lr_ / bc1;
      u.inv_sqrt_bc2 = 1.0 / std::sqrt(bc2);
      u.eps = opt_.eps;
      u.weight_decay = opt_.decoupled_weight_decay ? 0.0 : opt_.weight_decay;
      k::adam_update_(p, g, m, v, u);
      continue;
    }
    if (opt_.weight_decay != 0 && !opt_.decoupled_weight_decay)
      g = k::add(g, k::mul(p, scalar_like(opt_.weight_decay, p)));
    lerp_into(m, opt_.beta1, g, 1.0 - opt_.beta1);
    lerp_into(v, opt_.beta2, k::mul(g, g), 1.0 - opt_.beta2);
    Tensor vv = v;
    if (opt_.amsgrad) {
      Tensor& vmax = slot("max_exp_avg_sq", i);
      copy_(vmax, k::binary(k::BinaryOp::Maximum, vmax, v));
      vv = vmax;
    }
    // p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps), PyTorch's formula.
    Tensor denom = k::add(k::mul(k::unary(k::UnaryOp::Sqrt, vv), scalar_like(1.0 / std::sqrt(bc2), vv)),
                          scalar_like(opt_.eps, vv));
    k::axpy_(p, -lr_ / bc1, k::div(m, denom));
  }
}

}  // namespace dfx::optim
