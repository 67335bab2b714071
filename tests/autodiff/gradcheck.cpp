// tests/autodiff/gradcheck.cpp — the gradient-check harness (see gradcheck.h).
#include "gradcheck.h"

#include <cmath>
#include <set>
#include <sstream>
#include <unordered_set>

namespace dfx::testing {

std::vector<OpCase>& registry() {
  static std::vector<OpCase> cases;
  return cases;
}

std::vector<std::string> recorded_ops(const Var& out) {
  std::set<std::string> names;
  std::vector<ad::Node*> stack;
  std::unordered_set<ad::Node*> seen;
  if (out.node()) stack.push_back(out.node().get());
  while (!stack.empty()) {
    ad::Node* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second) continue;
    if (!n->is_leaf) names.insert(n->op);
    for (auto& in : n->inputs)
      if (in) stack.push_back(in.get());
  }
  return {names.begin(), names.end()};
}

namespace {

struct Setup {
  std::vector<Var> x;
  Tensor w, w2;
};

Setup make_inputs(const OpCase& c) {
  Setup s;
  uint64_t stream = 0;
  for (const Shape& sh : c.shapes)
    s.x.emplace_back(uniform(sh, c.lo, c.hi, c.seed, stream++, 0, DType::Float64), true);
  ad::NoGradGuard ng;
  Var y = c.f(s.x);
  s.w = uniform(y.shape(), 0.5, 1.5, c.seed + 1000, 0, 0, DType::Float64);
  s.w2 = uniform(y.shape(), -1.0, 1.0, c.seed + 2000, 0, 0, DType::Float64);
  return s;
}

Var loss_of(const Var& y, const Setup& s) {
  return ad::add(ad::sum(ad::mul(Var(s.w), ad::mul(y, y))), ad::sum(ad::mul(Var(s.w2), y)));
}

double loss_value(const OpCase& c, const Setup& s, const std::vector<Tensor>& xs) {
  ad::NoGradGuard ng;
  std::vector<Var> vs(xs.begin(), xs.end());
  return loss_of(c.f(vs), s).item();
}

void note(CheckResult& r, double a, double n, double atol, double rtol, const std::string& where) {
  double e = std::abs(a - n) / (atol + rtol * std::abs(n));
  if (!(e <= r.max_err) || std::isnan(e)) {
    if (std::isnan(e)) e = INFINITY;
    if (e > r.max_err) {
      r.max_err = e;
      std::ostringstream os;
      os << where << ": analytic " << a << " numeric " << n;
      r.worst = os.str();
    }
  }
}

}  // namespace

CheckResult check_gradient(const OpCase& c, double eps, double atol, double rtol) {
  Setup s = make_inputs(c);
  CheckResult r;
  Var y = c.f(s.x);
  r.ops = recorded_ops(y);
  std::vector<Var> g = ad::grad({loss_of(y, s)}, s.x);
  std::vector<Tensor> base;
  for (auto& v : s.x) base.push_back(v.data().clone());
  for (size_t i = 0; i < s.x.size(); ++i) {
    Tensor gi = g[i].data().contiguous();
    for (int64_t j = 0; j < base[i].numel(); ++j) {
      std::vector<Tensor> xp = base, xm = base;
      xp[i] = base[i].clone();
      xm[i] = base[i].clone();
      xp[i].data<double>()[j] += eps;
      xm[i].data<double>()[j] -= eps;
      double num = (loss_value(c, s, xp) - loss_value(c, s, xm)) / (2 * eps);
      note(r, gi.data<double>()[j], num, atol, rtol,
           "input " + std::to_string(i) + " element " + std::to_string(j));
    }
  }
  return r;
}

CheckResult check_jvp(const OpCase& c, double eps, double atol, double rtol) {
  Setup s = make_inputs(c);
  CheckResult r;
  std::vector<Tensor> v;
  for (size_t i = 0; i < s.x.size(); ++i)
    v.push_back(uniform(s.x[i].shape(), -1, 1, c.seed + 4000, i, 0, DType::Float64));
  Var y = c.f(s.x);
  r.ops = recorded_ops(y);
  Tensor jv = ad::jvp({y}, s.x, v)[0].contiguous();
  auto output_at = [&](double t) {
    ad::NoGradGuard ng;
    std::vector<Var> xs;
    for (size_t i = 0; i < s.x.size(); ++i) {
      Tensor xi = s.x[i].data().clone();
      kernels::axpy_(xi, t, v[i]);
      xs.emplace_back(xi);
    }
    return c.f(xs).data().contiguous();
  };
  Tensor yp = output_at(eps), ym = output_at(-eps);
  for (int64_t j = 0; j < jv.numel(); ++j) {
    double num = (yp.data<double>()[j] - ym.data<double>()[j]) / (2 * eps);
    note(r, jv.data<double>()[j], num, atol, rtol, "jvp output element " + std::to_string(j));
  }
  return r;
}

CheckResult check_hvp(const OpCase& c, double eps, double atol, double rtol) {
  Setup s = make_inputs(c);
  CheckResult r;
  std::vector<Tensor> v;
  for (size_t i = 0; i < s.x.size(); ++i)
    v.push_back(uniform(s.x[i].shape(), -1, 1, c.seed + 3000, i, 0, DType::Float64));
  std::vector<Tensor> hv = ad::hvp([&] { return loss_of(c.f(s.x), s); }, s.x, v);
  auto grads_at = [&](double t) {
    std::vector<Var> xs;
    for (size_t i = 0; i < s.x.size(); ++i) {
      Tensor xi = s.x[i].data().clone();
      kernels::axpy_(xi, t, v[i]);
      xs.emplace_back(xi, true);
    }
    return ad::grad({loss_of(c.f(xs), s)}, xs);
  };
  std::vector<Var> gp = grads_at(eps), gm = grads_at(-eps);
  for (size_t i = 0; i < s.x.size(); ++i) {
    Tensor h = hv[i].contiguous();
    Tensor a = gp[i].data().contiguous(), b = gm[i].data().contiguous();
    for (int64_t j = 0; j < h.numel(); ++j) {
      double num = (a.data<double>()[j] - b.data<double>()[j]) / (2 * eps);
      note(r, h.data<double>()[j], num, atol, rtol,
           "hvp input " + std::to_string(i) + " element " + std::to_string(j));
    }
  }
  return r;
}

}  // namespace dfx::testing
