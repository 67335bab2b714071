// autodiff/nn_ops.h — differentiable neural-network ops: convolutions (1-3 spatial dims),
// transposed convolutions, pooling, upsampling and batch normalisation. Every op here is
// differentiable to any order: its backward is built from ops that are themselves recorded.
// Tensors are logically NCHW / NCDHW (batch, channels, spatial...).
#pragma once
#include <functional>
#include <vector>

#include "autodiff/var.h"

namespace dfx::ad {

// Per spatial dim; a single value is broadcast to every spatial dim.
struct ConvParams {
  std::vector<int64_t> stride{1};
  std::vector<int64_t> padding{0};
  std::vector<int64_t> dilation{1};
};

// x [N, Cin, *S], w [Cout, Cin, *K], bias [Cout] or undefined -> [N, Cout, *S'].
Var conv(const Var& x, const Var& w, const Var& bias = Var(), const ConvParams& p = {});
// Transposed convolution (PyTorch's ConvTranspose): x [N, Cin, *S], w [Cin, Cout, *K],
// output size (S-1)*stride - 2*padding + dilation*(K-1) + output_padding + 1.
Var conv_transpose(const Var& x, const Var& w, const Var& bias = Var(), const ConvParams& p = {},
                   const std::vector<int64_t>& output_padding = {0});

// Max pooling (kernel, stride; padding with -inf); ties pick the first index, as PyTorch does.
Var max_pool(const Var& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
             const std::vector<int64_t>& padding = {0});
// Average pooling (count_include_pad = true, as PyTorch's default).
Var avg_pool(const Var& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
             const std::vector<int64_t>& padding = {0});

enum class UpsampleMode { Nearest, Linear };  // Linear = bi/trilinear, align_corners = false
Var upsample(const Var& x, const std::vector<int64_t>& scale, UpsampleMode mode);

// Sums a per-channel quantity over every rank of a data-parallel group, in place.
// Empty = single process. dist/ provides one for SyncBatchNorm.
using ChannelAllReduce = std::function<void(Tensor& per_channel_sums)>;

// Batch normalisation over all dims but 1. Training mode normalises with the batch moments
// (global ones when `all_reduce` is given) and updates running_mean/running_var in place
// (unbiased variance, PyTorch's momentum convention); evaluation mode uses the running ones.
// gamma/beta may be undefined (no affine).
Var batch_norm(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean,
               Tensor running_var, bool training, double momentum = 0.1, double eps = 1e-5,
               const ChannelAllReduce& all_reduce = {});
// leaky_relu(batch_norm(...), slope) (slope 0: relu) as one recorded op: one pass for the
// normalisation and the activation in the forward, and only x and the output are kept (the
// activation's derivative is read off the output). Values and gradients of every order equal
// the unfused composition's. A negative slope runs the composition.
// recompute_input (InPlace-ABN style): keep only the output and rebuild x from it in the
// backward, x = (leaky_relu^-1(out) - beta) / (gamma invstd) + mean: one activation-sized tensor
// less per use, gradients equal to rounding. It needs slope > 0 and every |gamma| >= 1e-3
// (otherwise x is kept as usual), and allows first-order backward only: a backward with
// create_graph through it (HVP, second-order optimisers) throws.
Var batch_norm_leaky_relu(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean,
                          Tensor running_var, bool training, double momentum, double eps,
                          const ChannelAllReduce& all_reduce, double slope,
                          bool recompute_input = false);

}  // namespace dfx::ad
