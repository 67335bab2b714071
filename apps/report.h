// apps/report.h — evaluation against the classical reference on held-out fields, and the files a
// run leaves for people: summary JSON, .npy arrays for Python users, PNG panels, the loss curve.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/problem.h"
#include "models/module.h"
#include "pde/metrics.h"

namespace dfx::app {

struct EvalResult {
  std::vector<uint64_t> samples;
  Tensor inputs;       // [M, 1, *S] network inputs
  Tensor predictions;  // [M, 1, *S] float64, boundary values applied
  Tensor reference;    // [M, 1, *S] float64
  pde::ErrorSummary summary;
  double seconds_predict = 0, seconds_reference = 0;
};

// Held-out samples 0..n-1 with their reference solutions (computed once, reused by every
// evaluation of a run).
EvalResult prepare_eval(const Problem& problem, int64_t n, DType dtype);
// The model in eval mode (running BN statistics) on the prepared samples; restores the mode.
void run_eval(nn::Module& model, const Problem& problem, EvalResult& r);
inline EvalResult evaluate(nn::Module& model, const Problem& problem, int64_t n, DType dtype) {
  EvalResult r = prepare_eval(problem, n, dtype);
  run_eval(model, problem, r);
  return r;
}
void write_eval_summary(const std::string& path, const EvalResult& r, const nlohmann::json& config);
void write_eval_arrays(const std::string& dir, const EvalResult& r);
// <path_stem>_<i>.png for the first `rows` samples: input, prediction, reference and |error|
// side by side (mid-plane z slices in 3-d).
void write_panels(const std::string& path_stem, const EvalResult& r, const Problem& problem,
                  int64_t rows);
void write_loss_curve(const std::string& path, const std::vector<double>& steps,
                      const std::vector<double>& loss, const std::string& title);

}  // namespace dfx::app
