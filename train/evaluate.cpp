// train/evaluate.cpp — held-out evaluation and precise BN (see evaluate.h).
#include "train/evaluate.h"

#include <algorithm>
#include <chrono>

#include "autodiff/var.h"
#include "core/copy.h"
#include "models/layers.h"
#include "pde/sampler.h"

namespace dfx::train {
namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The problem's loss of each sample of u on its own (count 1), in float64.
std::vector<double> per_sample_loss(const pde::Problem& problem, const Tensor& u, const Tensor& inputs) {
  ad::NoGradGuard ng;
  const Tensor u64 = u.cpu().to(DType::Float64), in64 = inputs.cpu().to(DType::Float64);
  std::vector<double> out(static_cast<size_t>(u64.shape()[0]));
  for (int64_t i = 0; i < u64.shape()[0]; ++i)
    out[i] = problem.loss(ad::Var(u64.narrow(0, i, 1).contiguous()),
                          in64.narrow(0, i, 1).contiguous(), 1).data().item();
  return out;
}

pde::ErrorSummary summarize(std::vector<double> v) {
  pde::ErrorSummary s;
  s.per_sample = std::move(v);
  for (double x : s.per_sample) s.mean += x / static_cast<double>(s.per_sample.size());
  s.max = s.per_sample.empty() ? 0.0 : *std::max_element(s.per_sample.begin(), s.per_sample.end());
  return s;
}

// A BnSnapshot put back on scope exit.
struct BnStateGuard {
  BnSnapshot snapshot;
  explicit BnStateGuard(nn::Module& model) : snapshot(model) {}
  ~BnStateGuard() { snapshot.restore(); }
  const std::vector<nn::BatchNorm*>& layers() const { return snapshot.layers(); }
};
}  // namespace

BnSnapshot::BnSnapshot(nn::Module& model) : layers_(nn::batch_norm_layers(model)) {
  for (nn::BatchNorm* bn : layers_)
    saved_.push_back({bn->running_mean().clone(), bn->running_var().clone(),
                      bn->num_batches_tracked().clone(), bn->all_reduce(), bn->momentum()});
}

void BnSnapshot::restore() const {
  for (size_t i = 0; i < layers_.size(); ++i) {
    copy_(layers_[i]->running_mean(), saved_[i].mean);
    copy_(layers_[i]->running_var(), saved_[i].var);
    copy_(layers_[i]->num_batches_tracked(), saved_[i].count);
    layers_[i]->set_all_reduce(saved_[i].all_reduce);
    layers_[i]->set_momentum(saved_[i].momentum);
  }
}

EvalResult prepare_eval(const pde::Problem& problem, const std::vector<uint64_t>& samples,
                        DType dtype) {
  EvalResult r;
  r.samples = samples;
  r.inputs = problem.input(r.samples, dtype);
  auto t0 = std::chrono::steady_clock::now();
  r.reference = problem.reference(r.inputs, r.samples).reshape(r.inputs.shape());
  r.reference_loss = per_sample_loss(problem, r.reference, r.inputs);
  r.seconds_reference = since(t0);
  return r;
}

EvalResult prepare_eval(const pde::Problem& problem, int64_t n, DType dtype) {
  return prepare_eval(problem, pde::held_out_indices(static_cast<uint64_t>(n)), dtype);
}

void run_eval(nn::Module& model, const pde::Problem& problem, EvalResult& r) {
  const bool was_training = model.is_training();
  const Tensor in = r.inputs.to(model.device());
  auto t0 = std::chrono::steady_clock::now();
  model.eval();
  {
    ad::NoGradGuard ng;
    r.predictions = problem.prediction(model(ad::Var(in)).data()).cpu().to(DType::Float64);
  }
  r.seconds_predict = since(t0);
  Tensor batch_bn;
  {
    // Only this process evaluates: the batch moments must stay local, and the running
    // statistics must not move.
    BnStateGuard guard(model);
    for (nn::BatchNorm* bn : guard.layers()) bn->set_all_reduce({});
    model.train();
    ad::NoGradGuard ng;
    batch_bn = problem.prediction(model(ad::Var(in)).data()).cpu().to(DType::Float64);
  }
  model.train(was_training);
  r.summary = pde::relative_l2_summary(r.predictions, r.reference);
  r.summary_batch_bn = pde::relative_l2_summary(batch_bn, r.reference);
  std::vector<double> gap = per_sample_loss(problem, r.predictions, r.inputs);
  for (size_t i = 0; i < gap.size(); ++i) gap[i] -= r.reference_loss[i];
  r.loss_gap = summarize(std::move(gap));
}

void precise_bn(nn::Module& model, int64_t batches, const std::function<Tensor(int64_t)>& batch_input) {
  DFX_CHECK(batches >= 1, "precise BN: batches must be >= 1, got ", batches);
  const bool was_training = model.is_training();
  std::vector<nn::BatchNorm*> layers = nn::batch_norm_layers(model);
  std::vector<double> momentum;
  for (nn::BatchNorm* bn : layers) momentum.push_back(bn->momentum());
  model.train();
  {
    ad::NoGradGuard ng;
    for (int64_t k = 0; k < batches; ++k) {
      // running <- (1 - 1/(k+1)) running + batch / (k+1): after k+1 batches, their plain mean.
      for (nn::BatchNorm* bn : layers) bn->set_momentum(1.0 / static_cast<double>(k + 1));
      model(ad::Var(batch_input(k).to(model.device())));
    }
  }
  for (size_t i = 0; i < layers.size(); ++i) layers[i]->set_momentum(momentum[i]);
  model.train(was_training);
}

}  // namespace dfx::train
