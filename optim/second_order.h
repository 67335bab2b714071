// optim/second_order.h — optimisers that use curvature: L-BFGS (strong-Wolfe line search),
// Newton-CG trust region (Steihaug-CG on Hessian-vector products) and AdaHessian. Every quantity
// they compute (losses, gradients, HVPs, random probes) is global, so all ranks step identically.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace dfx::optim {

// Recomputes the GLOBAL loss at the current parameter values (the caller all-reduces inside it)
// and, when need_grad, leaves the global gradient in each parameter's .grad().
using LossClosure = std::function<double(bool need_grad)>;
// The global Hessian-vector product at the current parameters, one Tensor per parameter (built by
// the caller from ad::hvp or dist::hvp).
using HvpFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& v)>;

// Rademacher probe (entries +-1) for parameter `param_index` and counter `sample`: entry i is
// philox_uniform(seed, param_index, sample * numel + i) > 0.5 ? 1 : -1, the same on every rank.
Tensor rademacher_like(const Tensor& like, uint64_t seed, uint64_t param_index, uint64_t sample);

// Hutchinson estimate of diag(H): the mean over n_samples probes z of z * Hz. Probe s of call
// `step` uses counter sample = step * n_samples + s, so successive calls draw fresh vectors.
std::vector<Tensor> hutchinson_diagonal(const HvpFn& hvp, const std::vector<ad::Var>& params,
                                        int n_samples, uint64_t seed, int64_t step = 0);

// ---------------------------------------------------------------------------------------------
struct LBFGSOptions {
  double lr = 1.0;               // initial trial step of the line search (1 = the Newton step)
  int history_size = 10;         // m
  int max_iter = 1;              // L-BFGS iterations per step() call
  int max_ls_evals = 25;         // closure evaluations per line search
  double c1 = 1e-4, c2 = 0.9;    // strong-Wolfe constants
  double tolerance_grad = 1e-12;    // stop when max |g_i| <= this
  double tolerance_change = 1e-16;  // stop when |directional derivative * step| is below this
};

// What the last line search did; `wolfe` is true when it ended at a strong-Wolfe point.
struct LineSearchInfo {
  double t = 0, phi0 = 0, dphi0 = 0, phi = 0, dphi = 0;
  int evals = 0;
  bool wolfe = false;
};

class LBFGS : public Optimizer {
 public:
  LBFGS(std::vector<ad::Var> params, LBFGSOptions opt);
  // Runs max_iter iterations; returns the loss at the final point. Leaves the gradient at that
  // point in .grad().
  double step(Objective& objective) override;
  std::string name() const override { return "lbfgs"; }
  const LineSearchInfo& last_line_search() const { return ls_; }
  size_t history() const { return s_.size(); }

  // Adds the curvature pairs ("lbfgs_s<j>.<i>", "lbfgs_y<j>.<i>", oldest first).
  std::map<std::string, Tensor> state() const override;
  void load_state(const std::map<std::string, Tensor>& state) override;

 private:
  LineSearchInfo strong_wolfe(const LossClosure& closure, const std::vector<Tensor>& x0,
                              const std::vector<Tensor>& d, double f0, double dphi0, double t);
  double eval_at(const LossClosure& closure, const std::vector<Tensor>& x0,
                 const std::vector<Tensor>& d, double t, std::vector<Tensor>& g, double& dphi);
  LBFGSOptions opt_;
  std::deque<std::vector<Tensor>> s_, y_;
  LineSearchInfo ls_;
};

// ---------------------------------------------------------------------------------------------
struct NewtonCGOptions {
  double initial_radius = 1.0;
  double max_radius = 1e3;
  double eta = 1e-4;           // accept the step when rho > eta
  int max_cg_iter = 50;
  double cg_forcing = -1.0;    // CG stops at ||r|| <= forcing * ||g||; < 0: min(0.5, sqrt ||g||)
  bool precondition = false;   // Jacobi preconditioner from a Hutchinson diagonal
  int precond_samples = 1;     // Hutchinson probes per estimate
  int precond_update_every = 1;  // outer steps between estimates (reused in between)
  double precond_floor = 1e-4;   // M_i = max(|diag_i|, floor): M must be positive definite
  uint64_t seed = 0;
};

class NewtonCG : public Optimizer {
 public:
  NewtonCG(std::vector<ad::Var> params, NewtonCGOptions opt);
  // One trust-region iteration on HVPs; returns the loss at the (accepted or kept) point. The
  // .grad() left behind is that of the starting point.
  double step(Objective& objective) override;
  bool needs_hvp() const override { return true; }
  std::string name() const override { return "newton-cg"; }

  double radius() const { return radius_; }
  int last_cg_iterations() const { return cg_iters_; }
  bool last_hit_boundary() const { return hit_boundary_; }
  bool last_accepted() const { return accepted_; }
  double last_rho() const { return rho_; }

  // Adds "radius" (and the preconditioner as "precond.<i>" slots).
  std::map<std::string, Tensor> state() const override;
  void load_state(const std::map<std::string, Tensor>& state) override;

 private:
  NewtonCGOptions opt_;
  double radius_;
  int cg_iters_ = 0;
  bool hit_boundary_ = false, accepted_ = false;
  double rho_ = 0;
};

// ---------------------------------------------------------------------------------------------
struct AdaHessianOptions {
  double lr = 0.15;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-4;
  double weight_decay = 0.0;
  double hessian_power = 1.0;  // k in (0, 1]
  int update_every = 1;        // steps between Hessian estimates (the last one is reused)
  uint64_t seed = 0;
};

class AdaHessian : public Optimizer {
 public:
  AdaHessian(std::vector<ad::Var> params, AdaHessianOptions opt);
  // Evaluates the gradient (keeping its graph when a Hessian estimate is due) and applies it.
  double step(Objective& objective) override;
  bool needs_hvp() const override { return true; }
  // Applies the gradient in .grad(); calls hvp once when a new Hessian estimate is due.
  void apply(const HvpFn& hvp);
  std::string name() const override { return "adahessian"; }
  // True when the next step() estimates a new Hessian diagonal (calls hvp).
  bool hessian_due() const { return steps_ % opt_.update_every == 0; }

 private:
  AdaHessianOptions opt_;
};

// ---------------------------------------------------------------------------------------------
struct GaussNewtonOptions {
  double initial_damping = 1.0;  // lambda of G + lambda I, adapted by the reduction ratio
  double min_damping = 1e-8, max_damping = 1e8;
  double eta = 1e-4;             // accept the step when rho > eta
  int max_cg_iter = 20;
  double cg_forcing = 0.1;       // CG stops at ||r|| <= forcing * ||g||
  bool precondition = true;      // Jacobi: M = max(diag G, floor) + lambda, diag by Hutchinson
  double precond_floor = 1e-8;
  uint64_t seed = 0;
};

// Damped Gauss-Newton (Levenberg-Marquardt) on the problem's own curvature: each step solves
// (G + lambda I) p = -g by truncated, Jacobi-preconditioned CG on Gauss-Newton products
// G v = J^T C J v (for the W1/W2 energies the energy natural gradient of Mueller & Zeinhofer),
// accepts p when the loss falls (rho = actual / predicted reduction > eta) and adapts lambda by
// rho (x 1/2 above 3/4, x 4 below 1/4). Every quantity is global, so all ranks step identically.
class GaussNewton : public Optimizer {
 public:
  GaussNewton(std::vector<ad::Var> params, GaussNewtonOptions opt);
  // Returns the loss at the (accepted or kept) point; .grad() is that of the starting point.
  double step(Objective& objective) override;
  std::string name() const override { return "gauss-newton"; }
  bool needs_gauss_newton() const override { return true; }

  double damping() const { return damping_; }
  int last_cg_iterations() const { return cg_iters_; }
  bool last_accepted() const { return accepted_; }
  double last_rho() const { return rho_; }

  std::map<std::string, Tensor> state() const override;  // adds "damping"
  void load_state(const std::map<std::string, Tensor>& state) override;

 private:
  GaussNewtonOptions opt_;
  double damping_;
  int cg_iters_ = 0;
  bool accepted_ = false;
  double rho_ = 0;
};

// |z * Hz| averaged over the spatial dims of a convolution kernel (rank >= 3: dims 2..), expanded
// back to its shape; other tensors are returned as given. AdaHessian's spatial averaging.
Tensor spatial_average(const Tensor& zhz);

}  // namespace dfx::optim
