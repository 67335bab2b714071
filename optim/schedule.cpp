// optim/schedule.cpp — the learning-rate schedules (PyTorch's formulas, stateless).
#include "optim/schedule.h"

#include <cmath>

#include "core/error.h"

namespace dfx::optim {

double Schedule::lr(int64_t step) const {
  DFX_CHECK(step >= 0, "Schedule::lr: negative step ", step);
  if (warmup_steps > 0 && step < warmup_steps)
    return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  const int64_t s = step - warmup_steps;
  switch (kind) {
    case Kind::Constant: return base_lr;
    case Kind::Cosine: {
      const int64_t span = std::max<int64_t>(total_steps - warmup_steps, 1);
      const double t = std::min(1.0, static_cast<double>(s) / static_cast<double>(span));
      return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + std::cos(M_PI * t));
    }
    case Kind::Step: return base_lr * std::pow(gamma, static_cast<double>(s / std::max<int64_t>(step_size, 1)));
    case Kind::MultiStep: {
      int passed = 0;
      for (int64_t m : milestones) passed += s >= m ? 1 : 0;
      return base_lr * std::pow(gamma, passed);
    }
    case Kind::Exponential: return base_lr * std::pow(gamma, static_cast<double>(s));
  }
  return base_lr;
}

Schedule::Kind Schedule::parse_kind(const std::string& n) {
  if (n == "constant") return Kind::Constant;
  if (n == "cosine") return Kind::Cosine;
  if (n == "step") return Kind::Step;
  if (n == "multistep") return Kind::MultiStep;
  if (n == "exponential") return Kind::Exponential;
  DFX_FAIL("unknown schedule '", n, "'; expected constant, cosine, step, multistep or exponential");
}

}  // namespace dfx::optim
