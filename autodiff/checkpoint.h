// autodiff/checkpoint.h — activation checkpointing: run part of a network without keeping its
// intermediate values and recompute them in the backward (what PyTorch's
// torch.utils.checkpoint does). The tape keeps only the part's inputs; its backward re-runs the
// part with grad on and backpropagates through that one part. dfx's kernels are deterministic,
// so the recomputed values, and hence the gradients, are bit for bit those of the plain run.
#pragma once
#include <functional>
#include <vector>

#include "autodiff/var.h"

namespace dfx::ad {

using CheckpointFn = std::function<Var(const std::vector<Var>& inputs)>;

// fn(inputs) recorded as one op "checkpoint" whose inputs are `inputs` and `params` (every
// parameter fn uses that should receive a gradient). fn must be a pure function of inputs and
// params (it runs twice) and must stay callable until the backward. First-order only: a backward
// with create_graph (HVP, second-order optimisers) through it throws.
Var checkpoint(const CheckpointFn& fn, const std::vector<Var>& inputs,
               const std::vector<Var>& params);

// True while a checkpoint's backward re-runs its part (thread-local): layers with side effects
// in the forward skip them then (BatchNorm does not update its running statistics twice).
bool in_checkpoint_recompute();

}  // namespace dfx::ad
