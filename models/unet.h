// models/unet.h — the DiffNet U-Net generator of WORKLOADS.md (W1 in 2-d, W2 in 3-d): coefficient
// field in, solution field out. Module and parameter names equal the state_dict keys of the
// PyTorch peer (bench/torch_unet.py). Dirichlet conditions are applied by the PDE layer, not here.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "models/layers.h"
#include "models/module.h"

namespace dfx::nn {

enum class Norm { Batch, None };

struct UNetOptions {
  int dims = 2;              // spatial dims: 1, 2 or 3
  int64_t in_channels = 1;
  int64_t out_channels = 1;
  int depth = 4;             // levels, the deepest the bottleneck; widths C, 2C, ..., 2^(D-1) C
  int64_t width = 16;        // C
  // Levels added at the top by grow_unet: the top `grown` levels have width C, the rest C, 2C,
  // ... as above (level l: C << max(0, l - grown)). 0 <= grown < depth.
  int grown = 0;
  Activation activation = Activation::leaky_relu(0.2);
  Norm norm = Norm::Batch;   // without norm the block convs carry a bias
  BatchNormOptions batch_norm = {};
  // Activation checkpointing (ad::checkpoint): each encoder level (max pool and block) and each
  // decoder level (upsampling, concatenation and block) keeps only its inputs and is recomputed
  // in the backward. Same values and gradients, bit for bit; first-order training only.
  bool checkpoint = false;
  DType dtype = DType::Float32;
  Device device = Device::cpu();
  uint64_t seed = 0;         // init_parameters(seed) after building

  static UNetOptions w1();   // 2-d, depth 4, width 16: 482,449 parameters
  static UNetOptions w2();   // 3-d, depth 4, width 8: 350,809 parameters
};

// conv3 -> norm -> act -> conv3 -> norm -> act; children conv1, norm1, act1, conv2, norm2, act2
// (norm Identity without normalisation).
class ConvBlock : public Module {
 public:
  ConvBlock(int dims, int64_t in_channels, int64_t out_channels, const UNetOptions& opts);
  Var forward(const Var& x) override;
  std::string describe() const override;

  Conv& conv1() { return *conv1_; }
  Conv& conv2() { return *conv2_; }

 private:
  int64_t in_, out_;
  std::shared_ptr<Conv> conv1_, conv2_;
  std::shared_ptr<Module> norm1_, norm2_, act1_, act2_;
};

// encoder.0 = block(in, C); encoder.l = block(w, 2w) after a 2x max pool (`pool`); the deepest
// level is the bottleneck. Going up, level l: up.l = ConvTranspose(w, w/2, 2, stride 2), concat
// [upsampled, skip] on channels, decoder.l = block(w, w/2). head = conv1x1(C, out) with bias.
class UNet : public Module {
 public:
  explicit UNet(const UNetOptions& opts = {});
  // x [N, in_channels, *S] with every spatial size divisible by 2^(depth-1) -> [N, out, *S].
  Var forward(const Var& x) override;
  std::string describe() const override;

  const UNetOptions& options() const { return opts_; }
  int64_t size_divisor() const { return int64_t{1} << (opts_.depth - 1); }
  int64_t level_width(int level) const;

 private:
  UNetOptions opts_;
  std::shared_ptr<ModuleList> encoder_, up_, decoder_;
  std::shared_ptr<MaxPool> pool_;
  std::shared_ptr<Conv> head_;
};

// The U-Net one level deeper, the new level added at the top (rmldnn's growth for multigrid
// training): the old levels l become levels l + 1 and keep their weights and batch-norm state,
// so at twice the resolution each of them sees the grid spacing it was trained at; the new top
// level (encoder.0, the last up and decoder, width C) and encoder.1.conv1 (which now reads C
// channels instead of the input field) are new. With a (leaky) ReLU and 2 * in_channels <= C,
// the new encoder.0 passes the input on as (+x, -x) channel pairs and encoder.1.conv1 applies
// the old first convolution to them, so the old levels see the input they were trained on (up
// to max pooling); the other new parameters are drawn from the options' seed. The head keeps
// its weights. On the old network's device, dtype and memory format.
std::shared_ptr<UNet> grow_unet(const UNet& old);

}  // namespace dfx::nn
