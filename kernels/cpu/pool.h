// kernels/cpu/pool.h — CPU implementations behind kernels/pool.h. Operands arrive dense in the
// layout PoolPlanes names (NCHW or channels-last; all operands of a call alike), with their
// geometry resolved and validated by kernels/pool.cpp.
#pragma once
#include "kernels/pool.h"

namespace dfx::kernels::cpu {

// values and indices are preallocated [N, C, *S_out] (x's dtype, int64), laid out as g.planes says.
void max_pool(const Tensor& x, const PoolGeometry& g, const Tensor& values, const Tensor& indices);
// Gathers from the planes of `in_numel` elements of x at `indices` ([N, C, *S_out]) into out.
// Returns false (and leaves out partly written) when an index is outside [0, in_numel).
bool pool_gather(const Tensor& x, const Tensor& indices, const PoolPlanes& planes,
                 int64_t in_numel, const Tensor& out, bool check = true);
// out (zero-filled here) [N, C, *S_in] += g at indices; false on an out-of-range index.
// `disjoint` (no shared index within a plane) and `check` change nothing here: one loop serves
// both, and the range check costs no wait on the host.
bool pool_scatter(const Tensor& g, const Tensor& indices, const PoolPlanes& planes,
                  int64_t in_numel, bool disjoint, const Tensor& out, bool check = true);
// out[p, r0, r1, r2] = scale * sum of w0 w1 w2 x[p, c0, c1, c2] over the maps' rows (see AxisMap).
void separable(const Tensor& x, const AxisMap (&maps)[3], double scale, const PoolPlanes& planes,
               const Tensor& out);

}  // namespace dfx::kernels::cpu
