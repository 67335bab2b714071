// models/layers.h — the layers a U-Net is built from: Conv and ConvTranspose (1-3 spatial dims),
// BatchNorm (synchronisable through a ChannelAllReduce), pooling, upsampling and activations.
// Parameter names and default initialisation follow PyTorch, drawn from dfx's counter-based RNG.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "autodiff/nn_ops.h"
#include "models/module.h"

namespace dfx::nn {

// Where a layer's tensors live and what they hold. seed: the initial draw (each parameter uses
// stream param_stream(its local name); a builder calls init_parameters on the root afterwards so
// that streams come from full paths).
struct TensorOptions {
  DType dtype = DType::Float32;
  Device device = Device::cpu();
  uint64_t seed = 0;
};

// A per-dim list from one value or dims values; throws naming the layer otherwise.
std::vector<int64_t> expand_param(const std::vector<int64_t>& v, int dims, const char* layer,
                                  const char* what);

// Fills `p` in place (its storage is kept) with uniform(-bound, bound) from (seed, stream).
void uniform_init_(Var& p, double bound, uint64_t seed, uint64_t stream);

struct ConvOptions {
  std::vector<int64_t> stride{1};
  std::vector<int64_t> padding{0};
  std::vector<int64_t> dilation{1};
  std::vector<int64_t> output_padding{0};  // ConvTranspose only
  bool bias = true;
};

// weight [out, in, *kernel], bias [out]. Init as PyTorch: weight kaiming_uniform(a = sqrt 5), i.e.
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in * prod(kernel), and the bias likewise.
class Conv : public Module {
 public:
  Conv(int dims, int64_t in_channels, int64_t out_channels, std::vector<int64_t> kernel,
       ConvOptions opts = {}, TensorOptions topts = {});
  Var forward(const Var& x) override;
  std::string describe() const override;

  Var& weight() { return *weight_; }
  Var& bias();  // throws when built without a bias
  bool has_bias() const { return bias_ != nullptr; }
  int dims() const { return dims_; }
  int64_t fan_in() const;

 protected:
  void reset_parameters(uint64_t seed, const std::string& prefix) override;

 private:
  int dims_;
  int64_t in_, out_;
  std::vector<int64_t> kernel_;
  ad::ConvParams params_;
  Var* weight_ = nullptr;
  Var* bias_ = nullptr;
};

// weight [in, out, *kernel] (PyTorch's layout), bias [out]; output size
// (S-1)*stride - 2*padding + dilation*(K-1) + output_padding + 1. Init as PyTorch, where fan_in is
// computed from the weight as size(1) * prod(kernel) = out * prod(kernel).
class ConvTranspose : public Module {
 public:
  ConvTranspose(int dims, int64_t in_channels, int64_t out_channels, std::vector<int64_t> kernel,
                ConvOptions opts = {}, TensorOptions topts = {});
  Var forward(const Var& x) override;
  std::string describe() const override;

  Var& weight() { return *weight_; }
  Var& bias();
  bool has_bias() const { return bias_ != nullptr; }
  int64_t fan_in() const;

 protected:
  void reset_parameters(uint64_t seed, const std::string& prefix) override;

 private:
  int dims_;
  int64_t in_, out_;
  std::vector<int64_t> kernel_;
  ad::ConvParams params_;
  std::vector<int64_t> output_padding_;
  Var* weight_ = nullptr;
  Var* bias_ = nullptr;
};

// What K-FAC needs from a forward pass (optim/kfac.h): while a ConvRecorder is alive on this
// thread, every Conv and ConvTranspose forward appends its input, its output and its geometry,
// so that a later backward can be asked for the gradient at each output.
struct ConvRecord {
  const Var* weight = nullptr;  // the layer's parameters (the Vars it was built with)
  const Var* bias = nullptr;    // nullptr without a bias
  bool transposed = false;      // ConvTranspose: weight [Cin, Cout, *K]; Conv: [Cout, Cin, *K]
  Var input, output;
  std::vector<int64_t> kernel;
  ad::ConvParams params;
};

class ConvRecorder {
 public:
  ConvRecorder();   // installs itself (one per thread at a time)
  ~ConvRecorder();  // uninstalls
  ConvRecorder(const ConvRecorder&) = delete;
  ConvRecorder& operator=(const ConvRecorder&) = delete;
  std::vector<ConvRecord> records;
  static ConvRecorder* active();
};

struct BatchNormOptions {
  double eps = 1e-5;
  double momentum = 0.1;  // PyTorch's convention: running = (1 - m) running + m batch
  bool affine = true;     // weight (ones) and bias (zeros) parameters
  // With a fused (leaky) ReLU (forward_leaky_relu, slope > 0): keep only the output and rebuild
  // the input from it in the backward (ad::batch_norm_leaky_relu, InPlace-ABN style): one
  // activation less per use; first-order training only (a create_graph backward throws).
  bool recompute_input = false;
};

// Parameters weight/bias [C] (when affine); buffers running_mean [C] (zeros), running_var [C]
// (ones) and num_batches_tracked (int64 scalar), as PyTorch's BatchNorm{1,2,3}d. Training mode
// normalises with the batch moments and updates the running ones; eval mode uses the running ones.
// With set_all_reduce the batch moments are global over a data-parallel group (SyncBatchNorm).
class BatchNorm : public Module {
 public:
  BatchNorm(int dims, int64_t channels, BatchNormOptions opts = {}, TensorOptions topts = {});
  Var forward(const Var& x) override;
  // leaky_relu(forward(x), slope) as one fused op (ad::batch_norm_leaky_relu): the same values
  // and gradients, one pass and one kept activation less.
  Var forward_leaky_relu(const Var& x, double slope);
  std::string describe() const override;

  void set_all_reduce(ad::ChannelAllReduce all_reduce) { all_reduce_ = std::move(all_reduce); }
  bool synchronized() const { return static_cast<bool>(all_reduce_); }
  const ad::ChannelAllReduce& all_reduce() const { return all_reduce_; }
  // The running statistics' update weight; precise-BN re-estimation sets 1/k at the k-th batch
  // so that the running moments become the plain mean over the batches seen.
  double momentum() const { return opts_.momentum; }
  void set_momentum(double m);

  Var& weight();
  Var& bias();
  Tensor& running_mean() { return *running_mean_; }
  Tensor& running_var() { return *running_var_; }
  Tensor& num_batches_tracked() { return *num_batches_; }

 protected:
  void reset_parameters(uint64_t seed, const std::string& prefix) override;

 private:
  Var forward_impl(const Var& x, std::optional<double> leaky_slope);
  int dims_;
  int64_t channels_;
  BatchNormOptions opts_;
  ad::ChannelAllReduce all_reduce_;
  Var* weight_ = nullptr;
  Var* bias_ = nullptr;
  Tensor* running_mean_ = nullptr;
  Tensor* running_var_ = nullptr;
  Tensor* num_batches_ = nullptr;
};

// Max or average pooling; stride defaults to the kernel (an empty vector), as in PyTorch.
class MaxPool : public Module {
 public:
  MaxPool(int dims, std::vector<int64_t> kernel, std::vector<int64_t> stride = {},
          std::vector<int64_t> padding = {0});
  Var forward(const Var& x) override;
  std::string describe() const override;

 private:
  int dims_;
  std::vector<int64_t> kernel_, stride_, padding_;
};

class AvgPool : public Module {
 public:
  AvgPool(int dims, std::vector<int64_t> kernel, std::vector<int64_t> stride = {},
          std::vector<int64_t> padding = {0});
  Var forward(const Var& x) override;
  std::string describe() const override;

 private:
  int dims_;
  std::vector<int64_t> kernel_, stride_, padding_;
};

class Upsample : public Module {
 public:
  Upsample(int dims, std::vector<int64_t> scale, ad::UpsampleMode mode = ad::UpsampleMode::Nearest);
  Var forward(const Var& x) override;
  std::string describe() const override;

 private:
  int dims_;
  std::vector<int64_t> scale_;
  ad::UpsampleMode mode_;
};

// ---- activations ----

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double negative_slope = 0.01)
      : Module("LeakyReLU"), slope_(negative_slope) {}
  Var forward(const Var& x) override;
  std::string describe() const override;
  double negative_slope() const { return slope_; }

 private:
  double slope_;
};

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Var forward(const Var& x) override;
};

class Tanh : public Module {
 public:
  Tanh() : Module("Tanh") {}
  Var forward(const Var& x) override;
};

class Sigmoid : public Module {
 public:
  Sigmoid() : Module("Sigmoid") {}
  Var forward(const Var& x) override;
};

class Identity : public Module {
 public:
  Identity() : Module("Identity") {}
  Var forward(const Var& x) override { return x; }
};

// An activation by name: what builders take as an option.
struct Activation {
  enum class Kind { LeakyReLU, ReLU, Tanh, Sigmoid, Identity };
  Kind kind = Kind::LeakyReLU;
  double negative_slope = 0.2;  // LeakyReLU only

  static Activation leaky_relu(double slope = 0.2) { return {Kind::LeakyReLU, slope}; }
  static Activation relu() { return {Kind::ReLU, 0.0}; }
  static Activation tanh() { return {Kind::Tanh, 0.0}; }
  static Activation sigmoid() { return {Kind::Sigmoid, 0.0}; }
  static Activation identity() { return {Kind::Identity, 0.0}; }
  // "leaky_relu", "leaky_relu(0.1)", "relu", "tanh", "sigmoid", "identity"; throws otherwise.
  static Activation parse(const std::string& s);
  std::string str() const;
};

std::shared_ptr<Module> make_activation(const Activation& a);

// Every BatchNorm in the tree, in registration order: the distributed layer gives each one its
// ChannelAllReduce to make them synchronized.
std::vector<BatchNorm*> batch_norm_layers(Module& root);

}  // namespace dfx::nn
