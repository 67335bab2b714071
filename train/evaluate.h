// train/evaluate.h — held-out evaluation against the classical reference: the fields and their
// reference solutions are prepared once, and each evaluation only runs the model. Besides the
// relative L2 error it reports where the error comes from: the per-sample loss gap (for an
// energy, E(u_net) - E(u_FEM) >= 0 is the exact optimisation gap in the energy norm) and the
// error with batch-norm normalising by the evaluated fields' own moments instead of the running
// statistics (a large difference means the running statistics lag the weights; precise_bn fixes
// that).
#pragma once
#include <functional>
#include <vector>

#include "autodiff/nn_ops.h"
#include "models/module.h"
#include "pde/metrics.h"
#include "pde/problem.h"

namespace dfx::nn {
class BatchNorm;
}

namespace dfx::train {

struct EvalResult {
  std::vector<uint64_t> samples;
  Tensor inputs;       // [M, 1, *S] network inputs
  Tensor predictions;  // [M, 1, *S] float64, boundary values applied
  Tensor reference;    // [M, 1, *S] float64
  pde::ErrorSummary summary;           // relative L2, eval-mode BN (running statistics)
  pde::ErrorSummary summary_batch_bn;  // relative L2, BN by the M fields' own moments
  std::vector<double> reference_loss;  // per sample: the problem's loss of the reference
  pde::ErrorSummary loss_gap;          // per sample: loss(prediction) - loss(reference)
  double seconds_predict = 0, seconds_reference = 0;
};

// Samples `samples` (held-out ones: pde::held_out_indices) with their reference solutions.
EvalResult prepare_eval(const pde::Problem& problem, const std::vector<uint64_t>& samples,
                        DType dtype);
// Held-out samples 0..n-1.
EvalResult prepare_eval(const pde::Problem& problem, int64_t n, DType dtype);
// The model in eval mode (running BN statistics) on the prepared samples, then once more with
// batch moments (running statistics and BN synchronisation untouched); restores the mode.
void run_eval(nn::Module& model, const pde::Problem& problem, EvalResult& r);
inline EvalResult evaluate(nn::Module& model, const pde::Problem& problem, int64_t n, DType dtype) {
  EvalResult r = prepare_eval(problem, n, dtype);
  run_eval(model, problem, r);
  return r;
}

// Every BatchNorm's running statistics, batch count, synchronisation and momentum, saved so that
// something that moves them (an evaluation with batch moments, a precise-BN trial) can put them
// back.
class BnSnapshot {
 public:
  explicit BnSnapshot(nn::Module& model);
  void restore() const;
  const std::vector<nn::BatchNorm*>& layers() const { return layers_; }

 private:
  struct Saved {
    Tensor mean, var, count;
    ad::ChannelAllReduce all_reduce;
    double momentum;
  };
  std::vector<nn::BatchNorm*> layers_;
  std::vector<Saved> saved_;
};

// Precise BN: re-estimates every BatchNorm's running statistics as the plain mean of the batch
// moments over `batches` forward passes of batch_input(k), k = 0..batches-1, at the current
// weights (no gradients, weights untouched). The running statistics an exponential average
// keeps during training lag weights that are still moving. Every rank of a synchronized model
// must call it with its shard of the same global batches.
void precise_bn(nn::Module& model, int64_t batches, const std::function<Tensor(int64_t)>& batch_input);

}  // namespace dfx::train
