// optim/second_order.cpp — L-BFGS with the strong-Wolfe line search of Nocedal & Wright (alg.
// 3.5/3.6, cubic-interpolation zoom), Steihaug-CG trust-region Newton and AdaHessian. Vector
// algebra runs on the parameters' own device; dot products are summed in float64 in a fixed order.
#include "optim/second_order.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/copy.h"
#include "core/rng.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"

namespace dfx::optim {
namespace k = dfx::kernels;
using TensorList = std::vector<Tensor>;

namespace {
Tensor scalar_like(double v, const Tensor& t) { return full({}, v, t.dtype(), t.device()); }

double dot(const TensorList& a, const TensorList& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += k::sum(k::mul(a[i].to(DType::Float64), b[i].to(DType::Float64))).item();
  return s;
}
double max_abs(const TensorList& a) {
  double m = 0;
  for (const auto& t : a) m = std::max(m, k::amax(k::unary(k::UnaryOp::Abs, t)).item());
  return m;
}
double sum_abs(const TensorList& a) {
  double s = 0;
  for (const auto& t : a) s += k::sum(k::unary(k::UnaryOp::Abs, t.to(DType::Float64))).item();
  return s;
}
TensorList clone_all(const TensorList& a) {
  TensorList r;
  for (const auto& t : a) r.push_back(t.clone());
  return r;
}
void axpy_all(TensorList& a, double alpha, const TensorList& b) {
  for (size_t i = 0; i < a.size(); ++i) k::axpy_(a[i], alpha, b[i]);
}
void scale_all(TensorList& a, double alpha) {
  for (auto& t : a) k::scale_(t, alpha);
}
TensorList values(const std::vector<ad::Var>& params) {
  TensorList r;
  for (const auto& p : params) r.push_back(p.data().clone());
  return r;
}
// Global gradient left by the closure; a parameter it did not reach has gradient zero.
TensorList grads(const std::vector<ad::Var>& params) {
  TensorList r;
  for (const auto& p : params)
    r.push_back(p.grad().defined() ? p.grad().data().contiguous().clone() : zeros_like(p.data()));
  return r;
}
// params = x0 + t * d, in place.
void set_params(std::vector<ad::Var>& params, const TensorList& x0, const TensorList* d, double t) {
  for (size_t i = 0; i < params.size(); ++i) {
    copy_(params[i].mutable_data(), x0[i]);
    if (d) k::axpy_(params[i].mutable_data(), t, (*d)[i]);
  }
}
Tensor f64_scalar(double v) { return from_vector<double>({v}, {1}); }

// Minimiser of the cubic through (x1, f1, g1), (x2, f2, g2), clamped to [lo, hi]; the midpoint
// when the cubic has no minimiser (PyTorch's _cubic_interpolate, N&W eq. 3.59).
double cubic_min(double x1, double f1, double g1, double x2, double f2, double g2, double lo,
                 double hi) {
  const double d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
  const double d2sq = d1 * d1 - g1 * g2;
  if (d2sq >= 0 && std::isfinite(d2sq)) {
    const double d2 = std::sqrt(d2sq);
    const double m = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
                              : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
    if (std::isfinite(m)) return std::min(std::max(m, lo), hi);
  }
  return 0.5 * (lo + hi);
}
}  // namespace

Tensor rademacher_like(const Tensor& like, uint64_t seed, uint64_t param_index, uint64_t sample) {
  // Drawn in float64 so the comparison with 0.5 sees all 53 bits, whatever the parameter dtype.
  const uint64_t n = static_cast<uint64_t>(like.numel());
  Tensor u = rand(like.shape(), seed, param_index, sample * n, DType::Float64, like.device());
  Tensor pos = k::compare(k::CompareOp::Gt, u, scalar_like(0.5, u)).to(DType::Float64);
  Tensor z = k::sub(k::mul(pos, scalar_like(2.0, pos)), scalar_like(1.0, pos));
  return z.to(like.dtype());
}

std::vector<Tensor> hutchinson_diagonal(const HvpFn& hvp, const std::vector<ad::Var>& params,
                                        int n_samples, uint64_t seed, int64_t step) {
  DFX_CHECK(n_samples >= 1, "hutchinson_diagonal: n_samples must be >= 1, got ", n_samples);
  DFX_CHECK(step >= 0, "hutchinson_diagonal: step must be >= 0, got ", step);
  TensorList acc;
  for (const auto& p : params) acc.push_back(zeros_like(p.data()));
  for (int s = 0; s < n_samples; ++s) {
    const uint64_t sample = static_cast<uint64_t>(step) * n_samples + s;
    TensorList z;
    for (size_t i = 0; i < params.size(); ++i)
      z.push_back(rademacher_like(params[i].data(), seed, i, sample));
    TensorList hz = hvp(z);
    DFX_CHECK(hz.size() == params.size(), "hutchinson_diagonal: HVP returned ", hz.size(),
              " tensors for ", params.size(), " parameters");
    for (size_t i = 0; i < acc.size(); ++i) k::axpy_(acc[i], 1.0, k::mul(z[i], hz[i]));
  }
  scale_all(acc, 1.0 / n_samples);
  return acc;
}

Tensor spatial_average(const Tensor& zhz) {
  if (zhz.dim() < 3) return zhz;
  std::vector<int64_t> dims;
  for (int64_t d = 2; d < zhz.dim(); ++d) dims.push_back(d);
  Tensor m = k::mean(k::unary(k::UnaryOp::Abs, zhz), dims, /*keepdim=*/true);
  return m.expand(zhz.shape()).contiguous();
}

// ---------------------------------------------------------------------------------------------
// L-BFGS

LBFGS::LBFGS(std::vector<ad::Var> params, LBFGSOptions opt)
    : Optimizer(std::move(params), opt.lr), opt_(opt) {
  DFX_CHECK(opt.lr > 0, "LBFGS: lr must be > 0, got ", opt.lr);
  DFX_CHECK(opt.history_size >= 1, "LBFGS: history_size must be >= 1, got ", opt.history_size);
  DFX_CHECK(opt.max_iter >= 1, "LBFGS: max_iter must be >= 1, got ", opt.max_iter);
  DFX_CHECK(opt.max_ls_evals >= 1, "LBFGS: max_ls_evals must be >= 1, got ", opt.max_ls_evals);
  DFX_CHECK(0 < opt.c1 && opt.c1 < opt.c2 && opt.c2 < 1,
            "LBFGS: need 0 < c1 < c2 < 1, got c1 = ", opt.c1, ", c2 = ", opt.c2);
}

double LBFGS::eval_at(const LossClosure& closure, const TensorList& x0, const TensorList& d,
                      double t, TensorList& g, double& dphi) {
  set_params(params_, x0, &d, t);
  const double f = closure(true);
  g = grads(params_);
  dphi = dot(g, d);
  return f;
}

LineSearchInfo LBFGS::strong_wolfe(const LossClosure& closure, const TensorList& x0,
                                   const TensorList& d, double f0, double dphi0, double t) {
  // Algorithm 3.5: bracket a point satisfying the strong-Wolfe conditions, then zoom (3.6).
  LineSearchInfo r;
  r.phi0 = f0;
  r.dphi0 = dphi0;
  const double c1 = opt_.c1, c2 = opt_.c2;
  double t_prev = 0, f_prev = f0, g_prev = dphi0;
  TensorList gr;
  double f = 0, dphi = 0;
  int evals = 0;
  double lo = 0, hi = 0, f_lo = 0, g_lo = 0, f_hi = 0, g_hi = 0;
  bool bracketed = false;
  while (evals < opt_.max_ls_evals) {
    f = eval_at(closure, x0, d, t, gr, dphi);
    ++evals;
    if (!std::isfinite(f) || f > f0 + c1 * t * dphi0 || (evals > 1 && f >= f_prev)) {
      lo = t_prev, f_lo = f_prev, g_lo = g_prev, hi = t, f_hi = f, g_hi = dphi;
      bracketed = true;
      break;
    }
    if (std::abs(dphi) <= -c2 * dphi0) {
      r.t = t, r.phi = f, r.dphi = dphi, r.evals = evals, r.wolfe = true;
      return r;
    }
    if (dphi >= 0) {
      lo = t, f_lo = f, g_lo = dphi, hi = t_prev, f_hi = f_prev, g_hi = g_prev;
      bracketed = true;
      break;
    }
    // Extrapolate: cubic minimiser in [t + 0.01 (t - t_prev), 10 t].
    const double t_next =
        cubic_min(t_prev, f_prev, g_prev, t, f, dphi, t + 0.01 * (t - t_prev), 10 * t);
    t_prev = t, f_prev = f, g_prev = dphi;
    t = t_next;
  }
  if (!bracketed) {  // out of evaluations while still extrapolating: keep the last point
    r.t = t, r.phi = f, r.dphi = dphi, r.evals = evals, r.wolfe = false;
    return r;
  }
  // Zoom: [lo, hi] (either order) contains a strong-Wolfe point; lo has the lower loss so far.
  while (evals < opt_.max_ls_evals && std::abs(hi - lo) * max_abs(d) > opt_.tolerance_change) {
    const double a = std::min(lo, hi), b = std::max(lo, hi);
    double tj = cubic_min(lo, f_lo, g_lo, hi, f_hi, g_hi, a, b);
    // Safeguard: a point within 10 % of an end makes too little progress; bisect instead.
    if (std::min(tj - a, b - tj) < 0.1 * (b - a)) tj = 0.5 * (a + b);
    f = eval_at(closure, x0, d, tj, gr, dphi);
    ++evals;
    if (!std::isfinite(f) || f > f0 + c1 * tj * dphi0 || f >= f_lo) {
      hi = tj, f_hi = f, g_hi = dphi;
    } else {
      if (std::abs(dphi) <= -c2 * dphi0) {
        r.t = tj, r.phi = f, r.dphi = dphi, r.evals = evals, r.wolfe = true;
        return r;
      }
      if (dphi * (hi - lo) >= 0) hi = lo, f_hi = f_lo, g_hi = g_lo;
      lo = tj, f_lo = f, g_lo = dphi;
    }
  }
  // No strong-Wolfe point within the budget: settle on the best point found (sufficient decrease
  // holds there unless it is t = 0). Re-evaluate so .grad() matches the returned point.
  f = eval_at(closure, x0, d, lo, gr, dphi);
  r.t = lo, r.phi = f, r.dphi = dphi, r.evals = evals + 1, r.wolfe = false;
  return r;
}

double LBFGS::step(Objective& objective) {
  const LossClosure closure = [&objective](bool need_grad) { return objective.evaluate(need_grad); };
  double f = closure(true);
  TensorList g = grads(params_);
  for (int it = 0; it < opt_.max_iter; ++it) {
    if (max_abs(g) <= opt_.tolerance_grad) break;
    // Two-loop recursion: d = -H g with H0 = (s.y / y.y) I from the newest pair.
    TensorList q = clone_all(g);
    const size_t m = s_.size();
    std::vector<double> rho(m), alpha(m);
    for (size_t j = m; j-- > 0;) {
      rho[j] = 1.0 / dot(y_[j], s_[j]);
      alpha[j] = rho[j] * dot(s_[j], q);
      axpy_all(q, -alpha[j], y_[j]);
    }
    if (m > 0) scale_all(q, dot(s_.back(), y_.back()) / dot(y_.back(), y_.back()));
    for (size_t j = 0; j < m; ++j) {
      const double beta = rho[j] * dot(y_[j], q);
      axpy_all(q, alpha[j] - beta, s_[j]);
    }
    scale_all(q, -1.0);
    TensorList d = std::move(q);
    double dphi0 = dot(g, d);
    if (!(dphi0 < 0)) {  // not a descent direction (rounding): restart from steepest descent
      s_.clear(), y_.clear();
      d = clone_all(g);
      scale_all(d, -1.0);
      dphi0 = dot(g, d);
    }
    if (dphi0 > -opt_.tolerance_change) break;
    // Trial step lr; on the very first iteration there is no curvature yet, so scale by 1/|g|_1.
    const double t0 = steps_ == 0 && s_.empty() ? std::min(1.0, 1.0 / sum_abs(g)) * lr_ : lr_;
    const TensorList x0 = values(params_);
    ls_ = strong_wolfe(closure, x0, d, f, dphi0, t0);
    ++steps_;
    TensorList g_new = grads(params_);
    // Curvature pair; skipped when y.s is not safely positive (keeps H positive definite).
    TensorList s = clone_all(d);
    scale_all(s, ls_.t);
    TensorList y = clone_all(g_new);
    axpy_all(y, -1.0, g);
    if (dot(y, s) > 1e-10) {
      if (static_cast<int>(s_.size()) == opt_.history_size) s_.pop_front(), y_.pop_front();
      s_.push_back(std::move(s));
      y_.push_back(std::move(y));
    }
    const double f_old = f;
    f = ls_.phi;
    g = std::move(g_new);
    if (ls_.t == 0 || std::abs(f - f_old) < opt_.tolerance_change) break;
  }
  return f;
}

std::map<std::string, Tensor> LBFGS::state() const {
  auto st = Optimizer::state();
  for (size_t j = 0; j < s_.size(); ++j)
    for (size_t i = 0; i < params_.size(); ++i) {
      st["lbfgs_s" + std::to_string(j) + "." + std::to_string(i)] = s_[j][i];
      st["lbfgs_y" + std::to_string(j) + "." + std::to_string(i)] = y_[j][i];
    }
  return st;
}

void LBFGS::load_state(const std::map<std::string, Tensor>& st) {
  std::map<std::string, Tensor> base;
  std::map<size_t, TensorList> s, y;
  for (const auto& [key, t] : st) {
    const bool is_s = key.rfind("lbfgs_s", 0) == 0, is_y = key.rfind("lbfgs_y", 0) == 0;
    if (!is_s && !is_y) {
      base[key] = t;
      continue;
    }
    const auto dot_pos = key.rfind('.');
    DFX_CHECK(dot_pos != std::string::npos, "LBFGS load_state: unexpected entry '", key, "'");
    const size_t j = std::stoul(key.substr(7, dot_pos - 7));
    const size_t i = std::stoul(key.substr(dot_pos + 1));
    DFX_CHECK(i < params_.size() && t.shape() == params_[i].shape(), "LBFGS load_state: '", key,
              "' does not match parameter ", i);
    auto& list = (is_s ? s : y)[j];
    list.resize(params_.size());
    list[i] = t.to(params_[i].dtype()).to(params_[i].device()).clone();
  }
  DFX_CHECK(s.size() == y.size() && s.size() <= static_cast<size_t>(opt_.history_size),
            "LBFGS load_state: ", s.size(), " s and ", y.size(), " y pairs for history size ",
            opt_.history_size);
  Optimizer::load_state(base);
  s_.clear(), y_.clear();
  for (size_t j = 0; j < s.size(); ++j) {
    DFX_CHECK(s.count(j) && y.count(j), "LBFGS load_state: curvature pair ", j, " missing");
    for (size_t i = 0; i < params_.size(); ++i)
      DFX_CHECK(s[j][i].defined() && y[j][i].defined(), "LBFGS load_state: pair ", j,
                " lacks parameter ", i);
    s_.push_back(s[j]);
    y_.push_back(y[j]);
  }
}

// ---------------------------------------------------------------------------------------------
// Newton-CG trust region

NewtonCG::NewtonCG(std::vector<ad::Var> params, NewtonCGOptions opt)
    : Optimizer(std::move(params), 1.0), opt_(opt), radius_(opt.initial_radius) {
  DFX_CHECK(opt.initial_radius > 0 && opt.max_radius >= opt.initial_radius,
            "NewtonCG: need 0 < initial_radius <= max_radius, got ", opt.initial_radius, ", ",
            opt.max_radius);
  DFX_CHECK(opt.eta >= 0 && opt.eta < 0.25, "NewtonCG: eta must be in [0, 0.25), got ", opt.eta);
  DFX_CHECK(opt.max_cg_iter >= 1, "NewtonCG: max_cg_iter must be >= 1, got ", opt.max_cg_iter);
  DFX_CHECK(opt.cg_forcing < 1, "NewtonCG: cg_forcing must be < 1, got ", opt.cg_forcing);
  DFX_CHECK(opt.precond_samples >= 1 && opt.precond_update_every >= 1 && opt.precond_floor > 0,
            "NewtonCG: precond_samples and precond_update_every must be >= 1, precond_floor > 0");
}

double NewtonCG::step(Objective& objective) {
  const LossClosure closure = [&objective](bool need_grad) { return objective.evaluate(need_grad); };
  const HvpFn hvp = [&objective](const TensorList& v) { return objective.hvp(v); };
  objective.expect_hvp(true);  // every CG iteration is an HVP at this point
  const double f0 = closure(true);
  objective.expect_hvp(false);
  const TensorList g = grads(params_);
  const double gnorm = std::sqrt(dot(g, g));
  // Jacobi preconditioner M = max(|diag H|, floor); the trust region is then ||p||_M <= radius.
  TensorList minv;
  if (opt_.precondition) {
    auto have = slots_.find("precond");
    const bool stale = have == slots_.end() || have->second.empty() || !have->second[0].defined();
    if (stale || steps_ % opt_.precond_update_every == 0) {
      TensorList diag = hutchinson_diagonal(hvp, params_, opt_.precond_samples, opt_.seed,
                                            steps_ / opt_.precond_update_every);
      for (size_t i = 0; i < diag.size(); ++i)
        copy_(slot("precond", i), k::clamp(k::unary(k::UnaryOp::Abs, diag[i]), opt_.precond_floor,
                                           std::numeric_limits<double>::infinity()));
    }
    for (size_t i = 0; i < params_.size(); ++i)
      minv.push_back(k::unary(k::UnaryOp::Reciprocal, slot("precond", i)));
  }
  auto apply_minv = [&](const TensorList& r) {
    TensorList y;
    for (size_t i = 0; i < r.size(); ++i)
      y.push_back(minv.empty() ? r[i].clone() : k::mul(r[i], minv[i]));
    return y;
  };
  // ||a||_M^2 (M = I without the preconditioner) and <a, b>_M.
  auto mdot = [&](const TensorList& a, const TensorList& b) {
    if (minv.empty()) return dot(a, b);
    TensorList ma;
    for (size_t i = 0; i < a.size(); ++i) ma.push_back(k::mul(a[i], slot("precond", i)));
    return dot(ma, b);
  };
  cg_iters_ = 0;
  hit_boundary_ = false;
  accepted_ = false;
  rho_ = 0;
  if (gnorm == 0) {
    ++steps_;
    return f0;
  }
  // Steihaug-CG on m(p) = g.p + p.Hp / 2 (N&W alg. 7.2, preconditioned form); Hp tracked along so
  // the predicted reduction costs no extra HVP.
  const double forcing = opt_.cg_forcing < 0 ? std::min(0.5, std::sqrt(gnorm)) : opt_.cg_forcing;
  const double tol = forcing * gnorm;
  TensorList z, hz;
  for (const auto& p : params_) {
    z.push_back(zeros_like(p.data()));
    hz.push_back(zeros_like(p.data()));
  }
  TensorList r = clone_all(g);
  TensorList yv = apply_minv(r);
  TensorList d = clone_all(yv);
  scale_all(d, -1.0);
  double ry = dot(r, yv);
  // tau >= 0 with ||z + tau d||_M = radius.
  auto to_boundary = [&](const TensorList& hd) {
    const double dd = mdot(d, d), zd = mdot(z, d), zz = mdot(z, z);
    const double tau = (-zd + std::sqrt(zd * zd + dd * (radius_ * radius_ - zz))) / dd;
    axpy_all(z, tau, d);
    axpy_all(hz, tau, hd);
    hit_boundary_ = true;
  };
  for (int j = 0; j < opt_.max_cg_iter; ++j) {
    ++cg_iters_;
    TensorList hd = hvp(d);
    DFX_CHECK(hd.size() == params_.size(), "NewtonCG: HVP returned ", hd.size(), " tensors for ",
              params_.size(), " parameters");
    const double dhd = dot(d, hd);
    if (dhd <= 0) {  // negative curvature: go to the boundary along d
      to_boundary(hd);
      break;
    }
    const double alpha = ry / dhd;
    TensorList z_new = clone_all(z);
    axpy_all(z_new, alpha, d);
    if (mdot(z_new, z_new) >= radius_ * radius_) {
      to_boundary(hd);
      break;
    }
    z = std::move(z_new);
    axpy_all(hz, alpha, hd);
    axpy_all(r, alpha, hd);
    if (std::sqrt(dot(r, r)) <= tol) break;
    yv = apply_minv(r);
    const double ry_new = dot(r, yv);
    scale_all(d, ry_new / ry);
    axpy_all(d, -1.0, yv);
    ry = ry_new;
  }
  const double predicted = -(dot(g, z) + 0.5 * dot(z, hz));
  const TensorList x0 = values(params_);
  set_params(params_, x0, &z, 1.0);
  const double f1 = closure(false);
  rho_ = predicted > 0 && std::isfinite(f1) ? (f0 - f1) / predicted : -1.0;
  if (rho_ < 0.25) radius_ *= 0.25;
  else if (rho_ > 0.75 && hit_boundary_) radius_ = std::min(2 * radius_, opt_.max_radius);
  accepted_ = rho_ > opt_.eta;
  if (!accepted_) set_params(params_, x0, nullptr, 0.0);
  ++steps_;
  return accepted_ ? f1 : f0;
}

std::map<std::string, Tensor> NewtonCG::state() const {
  auto st = Optimizer::state();
  st["radius"] = f64_scalar(radius_);
  return st;
}

void NewtonCG::load_state(const std::map<std::string, Tensor>& st) {
  auto base = st;
  auto it = base.find("radius");
  DFX_CHECK(it != base.end(), "NewtonCG load_state: no 'radius' entry");
  const double radius = it->second.get({0});
  base.erase(it);
  Optimizer::load_state(base);
  radius_ = radius;
}

// ---------------------------------------------------------------------------------------------
// AdaHessian

AdaHessian::AdaHessian(std::vector<ad::Var> params, AdaHessianOptions opt)
    : Optimizer(std::move(params), opt.lr), opt_(opt) {
  DFX_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1,
            "AdaHessian: betas must be in [0, 1), got ", opt.beta1, ", ", opt.beta2);
  DFX_CHECK(opt.eps > 0, "AdaHessian: eps must be > 0, got ", opt.eps);
  DFX_CHECK(opt.hessian_power > 0 && opt.hessian_power <= 1,
            "AdaHessian: hessian_power must be in (0, 1], got ", opt.hessian_power);
  DFX_CHECK(opt.update_every >= 1, "AdaHessian: update_every must be >= 1, got ",
            opt.update_every);
}

double AdaHessian::step(Objective& objective) {
  objective.expect_hvp(hessian_due());
  const double loss = objective.evaluate(true);
  objective.expect_hvp(false);
  apply([&objective](const TensorList& v) { return objective.hvp(v); });
  return loss;
}

void AdaHessian::apply(const HvpFn& hvp) {
  // The Hessian diagonal D is re-estimated every update_every steps from one Rademacher probe
  // (sample = step index, so every rank draws the same probe) and reused in between.
  if (steps_ % opt_.update_every == 0) {
    TensorList diag = hutchinson_diagonal(hvp, params_, 1, opt_.seed, steps_);
    for (size_t i = 0; i < params_.size(); ++i)
      copy_(slot("hessian_diag", i), spatial_average(diag[i]));
  }
  ++steps_;
  const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(steps_));
  const double bc2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(steps_));
  const double kpow = opt_.hessian_power;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!has_grad(i)) continue;
    Tensor p = params_[i].mutable_data();
    Tensor g = params_[i].grad().data();
    Tensor& m = slot("exp_avg", i);
    Tensor& v = slot("exp_hessian_diag_sq", i);
    const Tensor& dg = slot("hessian_diag", i);
    copy_(m, k::add(k::mul(m, scalar_like(opt_.beta1, m)),
                    k::mul(g, scalar_like(1 - opt_.beta1, g))));
    copy_(v, k::add(k::mul(v, scalar_like(opt_.beta2, v)),
                    k::mul(k::mul(dg, dg), scalar_like(1 - opt_.beta2, v))));
    // Yao et al.'s update: p -= lr * (m / bc1 / ((sqrt(v) / sqrt(bc2))^k + eps) + wd * p).
    Tensor hat = k::mul(k::unary(k::UnaryOp::Sqrt, v), scalar_like(1.0 / std::sqrt(bc2), v));
    if (kpow != 1.0) hat = k::unary(k::UnaryOp::PowScalar, hat, kpow);
    Tensor denom = k::add(hat, scalar_like(opt_.eps, hat));
    Tensor upd = k::mul(k::div(m, denom), scalar_like(1.0 / bc1, m));
    if (opt_.weight_decay != 0) upd = k::add(upd, k::mul(p, scalar_like(opt_.weight_decay, p)));
    k::axpy_(p, -lr_, upd);
  }
}

// ------------------------------------------------------------------------------ Gauss-Newton

GaussNewton::GaussNewton(std::vector<ad::Var> params, GaussNewtonOptions opt)
    : Optimizer(std::move(params), 1.0), opt_(opt), damping_(opt.initial_damping) {
  DFX_CHECK(opt.initial_damping > 0 && opt.min_damping > 0 && opt.min_damping <= opt.max_damping,
            "GaussNewton: need initial_damping > 0 and 0 < min_damping <= max_damping");
  DFX_CHECK(opt.max_cg_iter >= 1, "GaussNewton: max_cg_iter must be >= 1, got ", opt.max_cg_iter);
  DFX_CHECK(opt.cg_forcing > 0 && opt.cg_forcing < 1, "GaussNewton: cg_forcing must be in (0, 1), got ",
            opt.cg_forcing);
}

double GaussNewton::step(Objective& objective) {
  const double f0 = objective.evaluate(true);
  const TensorList g = grads(params_);
  const double gnorm = std::sqrt(dot(g, g));
  cg_iters_ = 0;
  accepted_ = false;
  rho_ = 0;
  if (gnorm == 0 || !std::isfinite(f0)) {
    ++steps_;
    return f0;
  }
  const HvpFn gn = [&objective](const TensorList& v) { return objective.gauss_newton(v); };
  // Jacobi preconditioner from one Hutchinson probe of diag G per step (fresh probe each step).
  TensorList minv;
  if (opt_.precondition) {
    TensorList diag = hutchinson_diagonal(gn, params_, 1, opt_.seed, steps_);
    for (auto& d : diag)
      minv.push_back(k::unary(k::UnaryOp::Reciprocal,
                              k::add(k::clamp(d, opt_.precond_floor, std::numeric_limits<double>::infinity()),
                                     scalar_like(damping_, d))));
  }
  auto apply_minv = [&](const TensorList& r) {
    TensorList y;
    for (size_t i = 0; i < r.size(); ++i) y.push_back(minv.empty() ? r[i].clone() : k::mul(r[i], minv[i]));
    return y;
  };
  // Preconditioned CG on (G + lambda I) p = -g from p = 0; G p tracked for the predicted reduction.
  TensorList p, gp, r = clone_all(g);
  for (const auto& t : g) {
    p.push_back(zeros_like(t));
    gp.push_back(zeros_like(t));
  }
  scale_all(r, -1.0);
  TensorList y = apply_minv(r), d = clone_all(y);
  double ry = dot(r, y);
  const double tol = opt_.cg_forcing * gnorm;
  for (int it = 0; it < opt_.max_cg_iter; ++it) {
    TensorList gd = gn(d);
    TensorList ad = clone_all(gd);
    axpy_all(ad, damping_, d);
    const double dad = dot(d, ad);
    if (!(dad > 0)) break;  // G + lambda I is positive definite; guard rounding
    const double alpha = ry / dad;
    axpy_all(p, alpha, d);
    axpy_all(gp, alpha, gd);
    axpy_all(r, -alpha, ad);
    ++cg_iters_;
    if (std::sqrt(dot(r, r)) <= tol) break;
    y = apply_minv(r);
    const double ry_new = dot(r, y);
    scale_all(d, ry_new / ry);
    axpy_all(d, 1.0, y);
    ry = ry_new;
  }
  // The model the step minimises: m(p) = g.p + p.G p / 2 (undamped).
  const double predicted = -(dot(g, p) + 0.5 * dot(p, gp));
  const TensorList x0 = values(params_);
  set_params(params_, x0, &p, 1.0);
  const double f1 = objective.evaluate(false);
  rho_ = predicted > 0 && std::isfinite(f1) ? (f0 - f1) / predicted : -1.0;
  if (rho_ > 0.75) damping_ = std::max(damping_ * 0.5, opt_.min_damping);
  else if (rho_ < 0.25) damping_ = std::min(damping_ * 4.0, opt_.max_damping);
  accepted_ = rho_ > opt_.eta;
  if (!accepted_) set_params(params_, x0, nullptr, 0.0);
  ++steps_;
  return accepted_ ? f1 : f0;
}

std::map<std::string, Tensor> GaussNewton::state() const {
  auto st = Optimizer::state();
  st["damping"] = f64_scalar(damping_);
  return st;
}

void GaussNewton::load_state(const std::map<std::string, Tensor>& st) {
  auto base = st;
  auto it = base.find("damping");
  DFX_CHECK(it != base.end(), "GaussNewton load_state: no 'damping' entry");
  const double damping = it->second.get({0});
  base.erase(it);
  Optimizer::load_state(base);
  damping_ = damping;
}

}  // namespace dfx::optim
