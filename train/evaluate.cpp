// train/evaluate.cpp — held-out evaluation (see evaluate.h).
#include "train/evaluate.h"

#include <chrono>

#include "autodiff/var.h"
#include "pde/sampler.h"

namespace dfx::train {
namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

EvalResult prepare_eval(const pde::Problem& problem, int64_t n, DType dtype) {
  EvalResult r;
  r.samples = pde::held_out_indices(static_cast<uint64_t>(n));
  r.inputs = problem.input(r.samples, dtype);
  auto t0 = std::chrono::steady_clock::now();
  r.reference = problem.reference(r.inputs, r.samples).reshape(r.inputs.shape());
  r.seconds_reference = since(t0);
  return r;
}

void run_eval(nn::Module& model, const pde::Problem& problem, EvalResult& r) {
  const bool was_training = model.is_training();
  model.eval();
  auto t0 = std::chrono::steady_clock::now();
  {
    ad::NoGradGuard ng;
    Tensor u = model(ad::Var(r.inputs.to(model.device()))).data();
    r.predictions = problem.prediction(u).cpu().to(DType::Float64);
  }
  r.seconds_predict = since(t0);
  model.train(was_training);
  r.summary = pde::relative_l2_summary(r.predictions, r.reference);
}

}  // namespace dfx::train
