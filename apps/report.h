// apps/report.h — the files a run leaves for people: summary JSON, .npy arrays for Python users,
// PNG panels, the loss curve (the evaluation itself is train/evaluate.h).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/evaluate.h"

namespace dfx::app {

using train::EvalResult;
using train::evaluate;
using train::prepare_eval;
using train::run_eval;
using pde::Problem;

void write_eval_summary(const std::string& path, const EvalResult& r, const nlohmann::json& config);
void write_eval_arrays(const std::string& dir, const EvalResult& r);
// <path_stem>_<i>.png for the first `rows` samples: input, prediction, reference and |error|
// side by side (mid-plane z slices in 3-d).
void write_panels(const std::string& path_stem, const EvalResult& r, const Problem& problem,
                  int64_t rows);
void write_loss_curve(const std::string& path, const std::vector<double>& steps,
                      const std::vector<double>& loss, const std::string& title);

}  // namespace dfx::app
