// kernels/pool.h — pooling and upsampling over 1-3 spatial dims of [N, C, *S] tensors, with the
// adjoint of every linear map (what autodiff needs for gradients of any order). Each entry point
// dispatches by device to kernels/cpu/pool.cpp or kernels/cuda/pool.cu. The kernels read and write
// NCHW and channels-last (NHWC) tensors in place: every result is laid out as its input is
// (suggest_memory_format()); a non-dense input is first copied to that layout.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace dfx::kernels {

// Per spatial dim; a single value is broadcast to every spatial dim. An empty stride = kernel.
struct PoolWindow {
  std::vector<int64_t> kernel;
  std::vector<int64_t> stride;
  std::vector<int64_t> padding{0};
};

// Output spatial shape of pooling x_shape [N, C, *S] (floor mode): (S + 2p - k) / s + 1.
// Validates the window (k >= 1, s >= 1, 0 <= p <= k/2, output >= 1) and throws naming `op`.
Shape pool_output_shape(const Shape& x_shape, const PoolWindow& w, const char* op);

struct MaxPoolResult {
  Tensor values;   // [N, C, *S_out], x's dtype, in x's layout
  // [N, C, *S_out], int64: flat index of the maximum within its input plane (its spatial offset,
  // whatever the layout). Laid out as values (channels-last for a channels-last x), so the
  // channels-last kernels write and read them coalesced.
  Tensor indices;
  // Whether the windows are disjoint (stride >= kernel in every dim, as the U-Net's 2x2 pooling):
  // then no two outputs of a plane share an index, which pool_scatter can exploit.
  bool disjoint = false;
};
// Max pooling, padding counts as -inf; ties pick the first index in row-major window order and
// NaN propagates (PyTorch's semantics).
MaxPoolResult max_pool(const Tensor& x, const PoolWindow& w);
// out[n, c, o] = x[n, c, idx[n, c, o]] (x's plane flattened): max-pool's derivative applied to x.
// The result is laid out as x.
// `trusted` (here and in pool_scatter): the caller vouches that every index lies inside the planes
// (max_pool made them, or an earlier call checked them), so a GPU does not read its out-of-range
// flag back, which would make the host wait; the CPU checks either way, for free.
Tensor pool_gather(const Tensor& x, const Tensor& indices, bool trusted = false);
// zeros(in_shape) with out[n, c, idx[n, c, o]] += g[n, c, o]: the adjoint of pool_gather, i.e.
// max-pool's backward, laid out as g. Deterministic: every element of out adds its contributions
// in increasing output position, on any device, thread count and layout. `disjoint` promises that
// no two outputs of a plane share an index (MaxPoolResult::disjoint): the GPU then writes each
// target directly instead of sorting the pairs by target (the same values, bit for bit).
Tensor pool_scatter(const Tensor& g, const Tensor& indices, const Shape& in_shape,
                    bool disjoint = false, bool trusted = false);

// Average pooling with count_include_pad = true (divisor = prod(kernel), PyTorch's default).
Tensor avg_pool(const Tensor& x, const PoolWindow& w);
// Its adjoint: g [N, C, *S_out] -> [N, C, *S_in] (in_shape), the gradient of avg_pool.
Tensor avg_pool_adjoint(const Tensor& g, const Shape& in_shape, const PoolWindow& w);

// Upsampling by integer factors (a single value is broadcast). Linear is bi/trilinear with
// align_corners = false: source index (o + 0.5) / s - 0.5 clamped at 0, as PyTorch computes it.
enum class UpsampleMode { Nearest, Linear };
Tensor upsample(const Tensor& x, const std::vector<int64_t>& scale, UpsampleMode mode);
// Its adjoint: g [N, C, *S*scale] -> [N, C, *S].
Tensor upsample_adjoint(const Tensor& g, const std::vector<int64_t>& scale, UpsampleMode mode);

// ---- resolved geometry, shared by the device implementations ----
// The planes of the dense [N, C, *S] operands of one backend call and their memory layout; every
// such operand of the call (input, output, max-pool indices) has this layout. Element (n, c, s),
// s the flat spatial offset within a plane of S elements, lies at
//   MemoryFormat::Contiguous   (NCHW): (n * C + c) * S + s
//   MemoryFormat::ChannelsLast (NHWC): (n * S + s) * C + c
struct PoolPlanes {
  int64_t n = 0, c = 0;
  MemoryFormat format = MemoryFormat::Contiguous;
  int64_t count() const { return n * c; }  // N * C planes
  bool channels_last() const { return format == MemoryFormat::ChannelsLast; }
};
// Spatial dims are padded to three with leading size-1 dims, so one 3-d loop serves 1-3 dims and
// the flat index within a plane is the same as without the padding.
struct PoolGeometry {
  PoolPlanes planes;
  int64_t in[3], out[3], k[3], s[3], p[3];  // per padded spatial dim
  int64_t in_numel() const { return in[0] * in[1] * in[2]; }
  int64_t out_numel() const { return out[0] * out[1] * out[2]; }
};
// One spatial dim of a separable linear map: output row r is sum of w[e] * input[col[e]] over
// e in [ptr[r], ptr[r + 1]), in increasing col order. Average pooling, upsampling and their
// adjoints are tensor products of three of these (times one overall scale).
struct AxisMap {
  int64_t rows = 1, cols = 1;
  std::vector<int64_t> ptr{0, 1}, col{0};
  std::vector<double> w{1.0};
  AxisMap transposed() const;
};

}  // namespace dfx::kernels
