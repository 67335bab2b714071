// optim/kfac.h — K-FAC for convolutional networks (Grosse & Martens, "A Kronecker-factored
// approximate Fisher matrix for convolution layers", 2016) on the problem's own Gauss-Newton
// matrix J^T C J: the backward factor comes from a backward of r ~ N(0, C) (the problem draws r,
// pde::Problem::curvature_sample), not of labels sampled from a likelihood. Each convolution's
// block is kron(left, right) of running averages; the other parameters (normalisation scales
// and shifts, transposed convolutions' biases) get the diagonal E[(J^T r)^2]. The step is
// damped (factored Tikhonov), clipped in the predicted change (Ba et al. 2017) and taken with
// momentum. Statistics and gradients are global (the objective all-reduces them), so every rank
// steps identically.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace dfx::optim {

// The rows of im2col: for every sample n and every position o of the grid `out` (its spatial
// sizes), the patch x[n, c, o * stride - padding + k * dilation] over (c, k), c slowest, k
// row-major over the kernel (zero outside x): [N * prod(out), C * prod(kernel)] on the host,
// float32 for a float32 x, else float64. Per-dim lists of one value are broadcast.
Tensor im2col(const Tensor& x, const std::vector<int64_t>& out, const std::vector<int64_t>& kernel,
              const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
              const std::vector<int64_t>& dilation);

// One convolution's rows from its input x and the gradient gy at its output, such that the
// weight's gradient, viewed as a matrix M [w.size(0), rest] (+ a folded bias column), is
// left_rows^T right_rows. Conv (weight [Cout, Cin, *K]): left_rows are gy's channel vectors
// per output position [P, Cout], right_rows the input patches (and a 1 for the bias)
// [P, Cin*K (+1)]. ConvTranspose (weight [Cin, Cout, *K]): left_rows are x's channel vectors
// per input position [P, Cin], right_rows gy's patches gathered at the same positions
// [P, Cout*K]. `activation_left` says which of the two are activations.
struct ConvRows {
  Tensor left_rows, right_rows;
  bool activation_left = false;
};
ConvRows conv_rows(const Tensor& x, const Tensor& gy, bool transposed, bool fold_bias,
                   const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                   const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation);

struct KFACOptions {
  double lr = 0.1;
  double momentum = 0.9;
  double damping = 3e-2;   // lambda: (left + pi sqrt(lambda) I) and (right + sqrt(lambda) / pi I)
  double ema = 0.95;       // running average of the factors and of the diagonal
  int inverse_every = 10;  // steps between refreshes of the statistics and their inverses
  double kl_clip = 0.1;    // caps the step's predicted change lr^2 <d, g> (0: no clipping)
  double weight_decay = 0;
};

class KFAC : public Optimizer {
 public:
  KFAC(std::vector<ad::Var> params, KFACOptions opt);
  // Evaluates the gradient (and, every inverse_every steps, the Kronecker statistics: one more
  // forward and backward) and takes the step; returns the loss at the starting point.
  double step(Objective& objective) override;
  std::string name() const override { return "kfac"; }
  bool needs_kronecker_factors() const override { return true; }
  double last_clip() const { return clip_; }  // the factor nu <= 1 the last step was scaled by

  // The preconditioned direction for gradient g (per parameter, float64 host) with the current
  // inverses; exposed for tests.
  std::vector<Tensor> precondition(const std::vector<Tensor>& g) const;

  // Adds "kfac_left.<w>", "kfac_right.<w>", their inverses "kfac_left_inv.<w>",
  // "kfac_right_inv.<w>", "kfac_bias.<w>" (the folded bias' index, -1: none) per block and
  // "kfac_diag.<i>" per diagonal parameter; "momentum.<i>" is a slot.
  std::map<std::string, Tensor> state() const override;
  void load_state(const std::map<std::string, Tensor>& state) override;

 private:
  void accumulate(const KroneckerStatistics& s);
  void invert();
  KFACOptions opt_;
  std::vector<KroneckerBlock> blocks_;  // running factors
  std::vector<Tensor> left_inv_, right_inv_;
  std::vector<Tensor> diag_;            // per parameter, undefined where a block covers it
  double clip_ = 1;
};

}  // namespace dfx::optim
