// optim/schedule.h — learning-rate schedules as pure functions of the step: every rank computes
// the same rate, and a resumed run picks up exactly where it stopped (no scheduler state).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dfx::optim {

struct Schedule {
  enum class Kind { Constant, Cosine, Step, MultiStep, Exponential };
  Kind kind = Kind::Constant;
  double base_lr = 1e-3;
  int64_t total_steps = 1;        // cosine: decays to min_lr at total_steps
  double min_lr = 0.0;            // cosine floor
  int64_t step_size = 1000;       // step: multiply by gamma every step_size steps
  std::vector<int64_t> milestones;  // multistep: multiply by gamma at each milestone
  double gamma = 0.1;             // step / multistep / exponential (per step) factor
  int64_t warmup_steps = 0;       // linear warm-up from base_lr / warmup_steps, then the schedule

  // Learning rate for 0-based optimiser step `step`.
  double lr(int64_t step) const;
  static Kind parse_kind(const std::string& name);  // constant|cosine|step|multistep|exponential
};

}  // namespace dfx::optim
