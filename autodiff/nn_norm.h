// autodiff/nn_norm.h — the per-channel reduction primitives behind batch_norm (autodiff/nn_ops.h).
// Its differentiable (create_graph) backward is composed from them; they apply the all-reduce to
// forward values and to incoming gradients, so distributed gradients of any order stay exact.
#pragma once
#include "autodiff/nn_ops.h"

namespace dfx::ad {

// Sum of x [N, C, *S] over every dim but 1 -> [C], summed over ranks when all_reduce is given.
// Backward: channel_bcast(g, x.shape(), all_reduce).
Var channel_sum(const Var& x, const ChannelAllReduce& all_reduce = {});
// g [C] summed over ranks (when all_reduce is given), then broadcast along dim 1 to `shape`.
// Backward: channel_sum(g, all_reduce).
Var channel_bcast(const Var& g, const Shape& shape, const ChannelAllReduce& all_reduce = {});

}  // namespace dfx::ad
