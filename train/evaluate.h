// train/evaluate.h — held-out evaluation against the classical reference: the fields and their
// reference solutions are prepared once, and each evaluation only runs the model.
#pragma once
#include <vector>

#include "models/module.h"
#include "pde/metrics.h"
#include "pde/problem.h"

namespace dfx::train {

struct EvalResult {
  std::vector<uint64_t> samples;
  Tensor inputs;       // [M, 1, *S] network inputs
  Tensor predictions;  // [M, 1, *S] float64, boundary values applied
  Tensor reference;    // [M, 1, *S] float64
  pde::ErrorSummary summary;
  double seconds_predict = 0, seconds_reference = 0;
};

// Held-out samples 0..n-1 with their reference solutions.
EvalResult prepare_eval(const pde::Problem& problem, int64_t n, DType dtype);
// The model in eval mode (running BN statistics) on the prepared samples; restores the mode.
void run_eval(nn::Module& model, const pde::Problem& problem, EvalResult& r);
inline EvalResult evaluate(nn::Module& model, const pde::Problem& problem, int64_t n, DType dtype) {
  EvalResult r = prepare_eval(problem, n, dtype);
  run_eval(model, problem, r);
  return r;
}

}  // namespace dfx::train
