// optim/registry.cpp — the list of optimisers (optim/registry.h).
#include "optim/registry.h"

#include "core/error.h"
#include "optim/first_order_extra.h"
#include "optim/kfac.h"
#include "optim/second_order.h"

namespace dfx::optim {
namespace {
using Params = std::vector<ad::Var>;
using Config = OptimizerConfig;

std::unique_ptr<Optimizer> adam(Params p, const Config& c, bool decoupled) {
  AdamOptions a;
  a.lr = resolved_lr(c);
  a.weight_decay = c.weight_decay;
  a.decoupled_weight_decay = decoupled;
  return std::make_unique<Adam>(std::move(p), a);
}

}  // namespace

const std::vector<OptimizerInfo>& optimizers() {
  // Each method's customary rate as its default (Adam's 1e-3 would stall L-BFGS).
  static const std::vector<OptimizerInfo> list = {
      {"adam", "Adam (L2 weight decay)", 1e-3, false,
       [](Params p, const Config& c) { return adam(std::move(p), c, false); }},
      {"adamw", "AdamW (decoupled weight decay)", 1e-3, false,
       [](Params p, const Config& c) { return adam(std::move(p), c, true); }},
      {"sgd", "SGD with momentum", 1e-2, false,
       [](Params p, const Config& c) -> std::unique_ptr<Optimizer> {
         SGDOptions s;
         s.lr = resolved_lr(c);
         s.momentum = c.momentum;
         s.weight_decay = c.weight_decay;
         return std::make_unique<SGD>(std::move(p), s);
       }},
      {"lamb", "LAMB (layer-wise adaptive Adam)", 1e-3, false,
       [](Params p, const Config& c) -> std::unique_ptr<Optimizer> {
         LAMBOptions l;
         l.lr = resolved_lr(c);
         l.weight_decay = c.weight_decay;
         return std::make_unique<LAMB>(std::move(p), l);
       }},
      {"lars", "LARS (layer-wise adaptive SGD)", 1e-2, false,
       [](Params p, const Config& c) -> std::unique_ptr<Optimizer> {
         LARSOptions l;
         l.lr = resolved_lr(c);
         l.momentum = c.momentum;
         l.weight_decay = c.weight_decay;
         return std::make_unique<LARS>(std::move(p), l);
       }},
      {"lbfgs", "L-BFGS with a strong-Wolfe line search", 1.0, false,
       [](Params p, const Config& c) -> std::unique_ptr<Optimizer> {
         LBFGSOptions l;
         l.lr = resolved_lr(c);
         l.history_size = c.history_size;
         return std::make_unique<LBFGS>(std::move(p), l);
       }},
      {"newton-cg", "Newton-CG trust region on exact Hessian-vector products", 1e-3, true,
       [](Params p, const Config& c) -> std::unique_ptr<Optimizer> {
         NewtonCGOptions n;
         n.initial_radius = c.trust_radius;
         n.max_cg_iter = c.cg_iters;
         n.cg_forcing = c.cg_forcing;
         n.precondition = c.precondition;
         n.seed = c.seed;
         return std::make_unique<NewtonCG>(std::move(p), n);
       }},
      {"gauss-newton", "damped Gauss-Newton on the problem's output-space curvature (CG)", 1.0, true,
       [](Params p, const Config& c) -> std::unique_ptr<Optimizer> {
         GaussNewtonOptions g;
         g.initial_damping = c.damping < 0 ? 1.0 : c.damping;
         g.max_cg_iter = c.cg_iters;
         g.cg_forcing = c.cg_forcing < 0 ? 0.1 : c.cg_forcing;
         g.seed = c.seed;
         return std::make_unique<GaussNewton>(std::move(p), g);
       }},
      {"kfac", "K-FAC: Kronecker-factored Gauss-Newton per convolution, momentum", 0.1, true,
       [](Params p, const Config& c) -> std::unique_ptr<Optimizer> {
         KFACOptions k;
         k.lr = resolved_lr(c);
         k.momentum = c.momentum;
         k.damping = c.damping < 0 ? 3e-2 : c.damping;
         k.inverse_every = c.hessian_every <= 0 ? 10 : c.hessian_every;
         k.weight_decay = c.weight_decay;
         k.kl_clip = c.kl_clip;
         return std::make_unique<KFAC>(std::move(p), k);
       }},
      {"adahessian", "AdaHessian (Hutchinson Hessian diagonal)", 0.15, true,
       [](Params p, const Config& c) -> std::unique_ptr<Optimizer> {
         AdaHessianOptions h;
         h.lr = resolved_lr(c);
         h.weight_decay = c.weight_decay;
         h.hessian_power = c.hessian_power;
         h.update_every = c.hessian_every <= 0 ? 1 : c.hessian_every;
         h.seed = c.seed;
         return std::make_unique<AdaHessian>(std::move(p), h);
       }},
  };
  return list;
}

const OptimizerInfo& optimizer_info(const std::string& name) {
  std::string known;
  for (const OptimizerInfo& o : optimizers()) {
    if (o.name == name) return o;
    known += (known.empty() ? "" : "|") + o.name;
  }
  DFX_FAIL("unknown optimizer '", name, "'; expected one of ", known);
}

std::vector<std::string> optimizer_names() {
  std::vector<std::string> n;
  for (const OptimizerInfo& o : optimizers()) n.push_back(o.name);
  return n;
}

double resolved_lr(const OptimizerConfig& c) {
  return c.lr >= 0 ? c.lr : optimizer_info(c.name).default_lr;
}

std::unique_ptr<Optimizer> make_optimizer(std::vector<ad::Var> params, const OptimizerConfig& c) {
  return optimizer_info(c.name).make(std::move(params), c);
}

}  // namespace dfx::optim
