// optim/optimizer.h — the optimiser interface and the first-order methods. Every optimiser
// steps on an Objective (optim/objective.h: the global loss, gradient and, where asked,
// curvature products), so every rank applying the same step to the same values stays identical
// by construction. First-order methods also apply a gradient already in .grad() (summed over
// ranks by dist::GradReducer) with apply(). Optimiser state is exposed as named tensors for
// checkpoints (resume continues bit for bit). Methods are created by name in optim/registry.h.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "autodiff/var.h"
#include "optim/objective.h"

namespace dfx::optim {

class Optimizer {
 public:
  explicit Optimizer(std::vector<ad::Var> params, double lr);
  virtual ~Optimizer() = default;

  // One optimisation step; returns the global loss it reports for the step (at the starting
  // point, except L-BFGS: at the point it ends on).
  virtual double step(Objective& objective) = 0;
  virtual std::string name() const = 0;
  // What step() asks of the objective besides loss and gradient.
  virtual bool needs_hvp() const { return false; }
  virtual bool needs_gauss_newton() const { return false; }
  virtual bool needs_kronecker_factors() const { return false; }
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  int64_t steps() const { return steps_; }
  const std::vector<ad::Var>& params() const { return params_; }

  // Named state tensors ("step", "<slot>.<param index>"); load_state checks names and shapes.
  virtual std::map<std::string, Tensor> state() const;
  virtual void load_state(const std::map<std::string, Tensor>& state);

 protected:
  // Parameters with a gradient this step (others are skipped, as in PyTorch).
  bool has_grad(size_t i) const { return params_[i].grad().defined(); }
  Tensor& slot(const std::string& name, size_t i);  // zero-initialised per-parameter state
  std::vector<ad::Var> params_;
  double lr_;
  int64_t steps_ = 0;
  std::map<std::string, std::vector<Tensor>> slots_;
};

// Methods that only read the gradient: step(objective) evaluates it and applies it.
class FirstOrder : public Optimizer {
 public:
  using Optimizer::Optimizer;
  double step(Objective& objective) override;
  // Applies the gradient already in each parameter's .grad() (after backward and the reducer).
  virtual void apply() = 0;
};

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
};

class SGD : public FirstOrder {
 public:
  SGD(std::vector<ad::Var> params, SGDOptions opt);
  void apply() override;
  std::string name() const override { return "sgd"; }

 private:
  SGDOptions opt_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = false;  // AdamW
  bool amsgrad = false;
};

class Adam : public FirstOrder {
 public:
  Adam(std::vector<ad::Var> params, AdamOptions opt);
  void apply() override;
  std::string name() const override { return opt_.decoupled_weight_decay ? "adamw" : "adam"; }

 private:
  AdamOptions opt_;
};

}  // namespace dfx::optim
