// apps/report.cpp — held-out evaluation and the run's output files (see report.h).
#include "apps/report.h"

#include <chrono>
#include <cstdio>

#include "apps/plot.h"
#include "apps/run_common.h"
#include "autodiff/var.h"
#include "core/npy.h"
#include "kernels/elementwise.h"
#include "pde/sampler.h"

namespace dfx::app {

void write_eval_summary(const std::string& path, const EvalResult& r, const nlohmann::json& config) {
  nlohmann::json j = {{"rel_l2_mean", r.summary.mean},
                      {"rel_l2_max", r.summary.max},
                      {"rel_l2", r.summary.per_sample},
                      {"rel_l2_mean_batch_bn", r.summary_batch_bn.mean},
                      {"rel_l2_max_batch_bn", r.summary_batch_bn.max},
                      {"loss_gap_mean", r.loss_gap.mean},
                      {"loss_gap_max", r.loss_gap.max},
                      {"loss_gap", r.loss_gap.per_sample},
                      {"reference_loss", r.reference_loss},
                      {"samples", r.samples},
                      {"seconds_predict", r.seconds_predict},
                      {"seconds_reference", r.seconds_reference},
                      {"config", config}};
  write_text_atomic(path, j.dump(2) + "\n");
}

void write_eval_arrays(const std::string& dir, const EvalResult& r) {
  save_npy(dir + "/inputs.npy", r.inputs);
  save_npy(dir + "/predictions.npy", r.predictions);
  save_npy(dir + "/reference.npy", r.reference);
}

namespace {
// A 2-d [H, W] view of sample i: the field itself in 2-d, the middle z-slice in 3-d.
Tensor plane(const Tensor& batch, int64_t i) {
  Tensor f = batch.select(0, i).select(0, 0);
  if (f.dim() == 3) f = f.select(0, f.shape()[0] / 2);
  return f.to(DType::Float64).contiguous();
}
}  // namespace

void write_panels(const std::string& path_stem, const EvalResult& r, const Problem& problem,
                  int64_t rows) {
  for (int64_t i = 0; i < rows; ++i) {
    Tensor in = plane(r.inputs, i), pred = plane(r.predictions, i), ref = plane(r.reference, i);
    Tensor err = kernels::unary(kernels::UnaryOp::Abs, kernels::sub(pred, ref));
    char title[64];
    std::snprintf(title, sizeof title, "|error| (rel L2 %s)", format_number(r.summary.per_sample[i]).c_str());
    std::vector<FieldPanel> panels = {
        {std::string("input ") + problem.input_name(), in, Colormap::Viridis, false},
        {"prediction", pred, Colormap::Viridis, false},
        {"reference", ref, Colormap::Viridis, false},
        {title, err, Colormap::Viridis, false}};
    write_field_panels(path_stem + "_" + std::to_string(i) + ".png", panels);
  }
}

void write_loss_curve(const std::string& path, const std::vector<double>& steps,
                      const std::vector<double>& loss, const std::string& title) {
  if (steps.empty()) return;
  write_line_plot(path, {{"loss", steps, loss}}, title + " training loss", true);
}

}  // namespace dfx::app
