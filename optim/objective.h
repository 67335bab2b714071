// optim/objective.h — what every optimiser steps on: the GLOBAL loss (all-reduced over ranks) at
// the current parameter values, its gradient, and, where the objective can give them, curvature
// products at that point. Capability is a query (has_hvp, has_gauss_newton); an optimiser that
// needs one names it in its requirements, and train::Trainer checks them before the first step.
#pragma once
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace dfx::optim {

// One convolution's block of the Gauss-Newton matrix, Kronecker-factored (Grosse & Martens
// 2016): the weight viewed as a matrix M [rows, cols] (its first dim by the rest; a Conv's bias,
// when folded in, as one more column) has G_M ~= kron(left, right) in row-major vec order, so
// the preconditioned gradient is (left + a I)^-1 dM (right + b I)^-1. float64, on the host.
struct KroneckerBlock {
  size_t weight = 0;  // index of the weight among the optimiser's parameters
  int64_t bias = -1;  // index of the bias folded in as M's last column (-1: none)
  Tensor left, right;
};

struct KroneckerStatistics {
  std::vector<KroneckerBlock> blocks;
  std::vector<Tensor> sampled_gradient;  // per parameter, in its shape, float64 on the host
};

class Objective {
 public:
  virtual ~Objective() = default;
  // The global loss at the current parameters. With need_grad, the global gradient is also left
  // in every parameter's .grad(). Parameters may have moved since the last call.
  virtual double evaluate(bool need_grad) = 0;
  // The global Hessian-vector product at the point of the last evaluate() (exact, by double
  // backward), one Tensor per parameter.
  virtual bool has_hvp() const { return false; }
  virtual std::vector<Tensor> hvp(const std::vector<Tensor>& v);
  // The Gauss-Newton product J^T C J v, C the loss's curvature in output space.
  virtual bool has_gauss_newton() const { return false; }
  virtual std::vector<Tensor> gauss_newton(const std::vector<Tensor>& v);
  // K-FAC's statistics at the point of the last evaluate(): one Kronecker-factored block per
  // convolution and the sampled gradient J^T r (r ~ N(0, C), so E[g g^T] = J^T C J) for every
  // parameter, global over ranks. `draw` keys the random r (the same draw on every rank).
  virtual bool has_kronecker_factors() const { return false; }
  virtual KroneckerStatistics kronecker_factors(uint64_t draw);
  // A hint before evaluate(true): HVPs will follow at that point, so an objective that can keep
  // the differentiable gradient's graph should (each HVP is then one reverse pass).
  virtual void expect_hvp(bool on) { (void)on; }
};

// An objective from functions (tests, small problems, user code without a Trainer).
class FunctionObjective : public Objective {
 public:
  using Loss = std::function<double(bool need_grad)>;
  using Product = std::function<std::vector<Tensor>(const std::vector<Tensor>& v)>;
  using Kronecker = std::function<KroneckerStatistics(uint64_t draw)>;
  explicit FunctionObjective(Loss loss, Product hvp = {}, Product gauss_newton = {},
                             Kronecker kronecker = {})
      : loss_(std::move(loss)), hvp_(std::move(hvp)), gn_(std::move(gauss_newton)),
        kron_(std::move(kronecker)) {}
  double evaluate(bool need_grad) override { return loss_(need_grad); }
  bool has_hvp() const override { return static_cast<bool>(hvp_); }
  std::vector<Tensor> hvp(const std::vector<Tensor>& v) override;
  bool has_gauss_newton() const override { return static_cast<bool>(gn_); }
  std::vector<Tensor> gauss_newton(const std::vector<Tensor>& v) override;
  bool has_kronecker_factors() const override { return static_cast<bool>(kron_); }
  KroneckerStatistics kronecker_factors(uint64_t draw) override;

 private:
  Loss loss_;
  Product hvp_, gn_;
  Kronecker kron_;
};

}  // namespace dfx::optim
