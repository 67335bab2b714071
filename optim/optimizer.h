// optim/optimizer.h — first-order optimisers over a list of leaf Vars. They read each
// parameter's .grad (already summed over ranks by dist::GradReducer) and update values in place,
// so every rank applying the same step to the same values stays identical by construction.
// Optimiser state is exposed as named tensors for checkpoints (resume continues bit for bit).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "autodiff/var.h"

namespace dfx::optim {

class Optimizer {
 public:
  explicit Optimizer(std::vector<ad::Var> params, double lr);
  virtual ~Optimizer() = default;

  virtual void step() = 0;
  virtual std::string name() const = 0;
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

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ad::Var> params, SGDOptions opt);
  void step() override;
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

class Adam : public Optimizer {
 public:
  Adam(std::vector<ad::Var> params, AdamOptions opt);
  void step() override;
  std::string name() const override { return opt_.decoupled_weight_decay ? "adamw" : "adam"; }

 private:
  AdamOptions opt_;
};

}  // namespace dfx::optim
