// optim/registry.h — every optimiser by name, in one place: the command line's --optimizer
// choices and help, the Trainer, the C API and the resume tests all read this list.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace dfx::optim {

// The knobs of every method (each reads the ones it has); names match the command line's.
struct OptimizerConfig {
  std::string name = "adam";
  double lr = -1;              // < 0: the method's customary rate (OptimizerInfo::default_lr)
  double momentum = 0.9;       // sgd, lars, kfac
  double weight_decay = 0;     // decoupled for adamw
  int history_size = 10;       // lbfgs
  int cg_iters = 20;           // newton-cg
  double trust_radius = 1;     // newton-cg
  double cg_forcing = -1;      // newton-cg: < 0 = min(0.5, sqrt |g|); gauss-newton: < 0 = 0.1
  double damping = -1;         // gauss-newton: initial LM damping; kfac: Tikhonov (< 0: 1, 3e-2)
  bool precondition = false;   // newton-cg: Jacobi from a Hutchinson diagonal
  int hessian_every = 0;       // adahessian: estimates; kfac: inversions (<= 0: every 1, 10)
  double hessian_power = 1;    // adahessian
  double kl_clip = 0.1;        // kfac: cap on the step's predicted change (0: none)
  uint64_t seed = 0;           // random probes (newton-cg's preconditioner, adahessian)
};

struct OptimizerInfo {
  std::string name, summary;
  double default_lr;
  bool second_order;  // steps on curvature (HVPs): needs a twice-differentiable network
  std::function<std::unique_ptr<Optimizer>(std::vector<ad::Var>, const OptimizerConfig&)> make;
};

const std::vector<OptimizerInfo>& optimizers();
const OptimizerInfo& optimizer_info(const std::string& name);  // throws naming the known ones
std::vector<std::string> optimizer_names();
// The learning rate `config` asks for (its default when lr < 0).
double resolved_lr(const OptimizerConfig& config);
std::unique_ptr<Optimizer> make_optimizer(std::vector<ad::Var> params, const OptimizerConfig& config);

}  // namespace dfx::optim
