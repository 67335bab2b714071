// autodiff/nn_pool.h — the adjoint primitives behind max_pool, avg_pool and upsample
// (autodiff/nn_ops.h). Backward rules record them, so gradients of any order close over this set;
// they are public so tests and other layers can apply them directly.
#pragma once
#include <vector>

#include "autodiff/nn_ops.h"

namespace dfx::ad {

// out[n, c, o] = x[n, c, indices[n, c, o]] within each flattened input plane (int64 indices,
// e.g. from max pooling): max_pool's derivative applied to x. Backward: pool_scatter.
// `disjoint` (kernels::MaxPoolResult::disjoint) rides along to every scatter of any order.
Var pool_gather(const Var& x, const Tensor& indices, bool disjoint = false);
// zeros(in_shape) with g added at indices: max_pool's backward. Backward: pool_gather.
Var pool_scatter(const Var& g, const Tensor& indices, const Shape& in_shape,
                 bool disjoint = false);
// The adjoint of avg_pool for an input of in_shape. Backward: avg_pool.
Var avg_pool_adjoint(const Var& g, const Shape& in_shape, const std::vector<int64_t>& kernel,
                     const std::vector<int64_t>& stride, const std::vector<int64_t>& padding = {0});
// The adjoint of upsample: [N, C, *S*scale] -> [N, C, *S]. Backward: upsample.
Var upsample_adjoint(const Var& g, const std::vector<int64_t>& scale, UpsampleMode mode);

}  // namespace dfx::ad
