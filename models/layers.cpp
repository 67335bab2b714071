// models/layers.cpp — layer modules over autodiff/nn_ops.h: shape checks that name the layer,
// PyTorch's default initialisation from the counter-based RNG, and one-line descriptions.
#include "models/layers.h"

#include <cmath>
#include <sstream>

#include "autodiff/checkpoint.h"
#include "autodiff/ops.h"
#include "core/copy.h"
#include "core/rng.h"
#include "kernels/elementwise.h"

namespace dfx::nn {

namespace {

void check_dims(int dims, const char* layer) {
  DFX_CHECK(dims >= 1 && dims <= 3, layer, ": ", dims, " spatial dims; expected 1, 2 or 3");
}

std::string suffix(const char* base, int dims) { return base + std::to_string(dims) + "d"; }

// "3" when every entry is equal, else "[3, 5]".
std::string list_str(const std::vector<int64_t>& v) {
  bool same = true;
  for (int64_t x : v) same = same && x == v.front();
  if (same && !v.empty()) return std::to_string(v.front());
  std::ostringstream os;
  os << v;
  return os.str();
}

bool all_equal(const std::vector<int64_t>& v, int64_t value) {
  for (int64_t x : v)
    if (x != value) return false;
  return true;
}

int64_t product(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t x : v) p *= x;
  return p;
}

// Takes the module so that its description is built only when the check fails.
void check_input(const Var& x, int dims, int64_t channels, const Module& layer) {
  DFX_CHECK(x.defined(), layer.describe(), ": the input is undefined");
  DFX_CHECK(x.dim() == dims + 2 && x.size(1) == channels, layer.describe(), ": input ",
            x.data().describe(),
            "; expected [N, ", channels, ", ", dims, " spatial dims]");
}

Shape with_kernel(int64_t a, int64_t b, const std::vector<int64_t>& kernel) {
  Shape s{a, b};
  s.insert(s.end(), kernel.begin(), kernel.end());
  return s;
}

thread_local ConvRecorder* active_recorder = nullptr;

}  // namespace

ConvRecorder::ConvRecorder() {
  DFX_CHECK(active_recorder == nullptr, "ConvRecorder: one is already recording on this thread");
  active_recorder = this;
}
ConvRecorder::~ConvRecorder() { active_recorder = nullptr; }
ConvRecorder* ConvRecorder::active() { return active_recorder; }

std::vector<int64_t> expand_param(const std::vector<int64_t>& v, int dims, const char* layer,
                                  const char* what) {
  if (v.size() == 1) return std::vector<int64_t>(dims, v.front());
  DFX_CHECK(static_cast<int>(v.size()) == dims, layer, ": ", what, " ", v, " has ", v.size(),
            " entries; expected 1 or ", dims);
  return v;
}

void uniform_init_(Var& p, double bound, uint64_t seed, uint64_t stream) {
  const DType dt = p.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
  copy_(p.data(), uniform(p.shape(), -bound, bound, seed, stream, 0, dt, Device::cpu()));
}

// ---- Conv ----

Conv::Conv(int dims, int64_t in_channels, int64_t out_channels, std::vector<int64_t> kernel,
           ConvOptions opts, TensorOptions topts)
    : Module(suffix("Conv", dims)), dims_(dims), in_(in_channels), out_(out_channels) {
  check_dims(dims, "Conv");
  const char* name = type_name().c_str();
  DFX_CHECK(in_channels > 0 && out_channels > 0, name, ": channels ", in_channels, " -> ",
            out_channels, "; expected positive counts");
  kernel_ = expand_param(kernel, dims, name, "kernel");
  params_.stride = expand_param(opts.stride, dims, name, "stride");
  params_.padding = expand_param(opts.padding, dims, name, "padding");
  params_.dilation = expand_param(opts.dilation, dims, name, "dilation");
  for (int64_t k : kernel_) DFX_CHECK(k > 0, name, ": kernel ", kernel_, "; expected positive");
  weight_ = &register_parameter(
      "weight", Tensor::empty(with_kernel(out_, in_, kernel_), topts.dtype, topts.device));
  if (opts.bias)
    bias_ = &register_parameter("bias", Tensor::empty({out_}, topts.dtype, topts.device));
  reset_parameters(topts.seed, "");
}

int64_t Conv::fan_in() const { return in_ * product(kernel_); }

void Conv::reset_parameters(uint64_t seed, const std::string& prefix) {
  // kaiming_uniform_(a = sqrt 5): gain sqrt(2 / (1 + 5)), bound sqrt(3) * gain / sqrt(fan_in).
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in()));
  uniform_init_(*weight_, bound, seed, param_stream(prefix + "weight"));
  if (bias_) uniform_init_(*bias_, bound, seed, param_stream(prefix + "bias"));
}

Var& Conv::bias() {
  DFX_CHECK(bias_ != nullptr, type_name(), "::bias: built without a bias");
  return *bias_;
}

Var Conv::forward(const Var& x) {
  check_input(x, dims_, in_, *this);
  Var y = ad::conv(x, *weight_, bias_ ? *bias_ : Var(), params_);
  if (ConvRecorder* r = ConvRecorder::active())
    r->records.push_back({weight_, bias_, false, x, y, kernel_, params_});
  return y;
}

std::string Conv::describe() const {
  std::ostringstream os;
  os << type_name() << "(" << in_ << ", " << out_ << ", kernel=" << list_str(kernel_);
  if (!all_equal(params_.stride, 1)) os << ", stride=" << list_str(params_.stride);
  if (!all_equal(params_.padding, 0)) os << ", padding=" << list_str(params_.padding);
  if (!all_equal(params_.dilation, 1)) os << ", dilation=" << list_str(params_.dilation);
  os << (bias_ ? "" : ", bias=false") << ")";
  return os.str();
}

// ---- ConvTranspose ----

ConvTranspose::ConvTranspose(int dims, int64_t in_channels, int64_t out_channels,
                             std::vector<int64_t> kernel, ConvOptions opts, TensorOptions topts)
    : Module(suffix("ConvTranspose", dims)), dims_(dims), in_(in_channels), out_(out_channels) {
  check_dims(dims, "ConvTranspose");
  const char* name = type_name().c_str();
  DFX_CHECK(in_channels > 0 && out_channels > 0, name, ": channels ", in_channels, " -> ",
            out_channels, "; expected positive counts");
  kernel_ = expand_param(kernel, dims, name, "kernel");
  params_.stride = expand_param(opts.stride, dims, name, "stride");
  params_.padding = expand_param(opts.padding, dims, name, "padding");
  params_.dilation = expand_param(opts.dilation, dims, name, "dilation");
  output_padding_ = expand_param(opts.output_padding, dims, name, "output_padding");
  for (int64_t k : kernel_) DFX_CHECK(k > 0, name, ": kernel ", kernel_, "; expected positive");
  weight_ = &register_parameter(
      "weight", Tensor::empty(with_kernel(in_, out_, kernel_), topts.dtype, topts.device));
  if (opts.bias)
    bias_ = &register_parameter("bias", Tensor::empty({out_}, topts.dtype, topts.device));
  reset_parameters(topts.seed, "");
}

// PyTorch computes fan_in from the weight tensor, whose dim 1 is out_channels here.
int64_t ConvTranspose::fan_in() const { return out_ * product(kernel_); }

void ConvTranspose::reset_parameters(uint64_t seed, const std::string& prefix) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in()));
  uniform_init_(*weight_, bound, seed, param_stream(prefix + "weight"));
  if (bias_) uniform_init_(*bias_, bound, seed, param_stream(prefix + "bias"));
}

Var& ConvTranspose::bias() {
  DFX_CHECK(bias_ != nullptr, type_name(), "::bias: built without a bias");
  return *bias_;
}

Var ConvTranspose::forward(const Var& x) {
  check_input(x, dims_, in_, *this);
  Var y = ad::conv_transpose(x, *weight_, bias_ ? *bias_ : Var(), params_, output_padding_);
  if (ConvRecorder* r = ConvRecorder::active())
    r->records.push_back({weight_, bias_, true, x, y, kernel_, params_});
  return y;
}

std::string ConvTranspose::describe() const {
  std::ostringstream os;
  os << type_name() << "(" << in_ << ", " << out_ << ", kernel=" << list_str(kernel_);
  if (!all_equal(params_.stride, 1)) os << ", stride=" << list_str(params_.stride);
  if (!all_equal(params_.padding, 0)) os << ", padding=" << list_str(params_.padding);
  if (!all_equal(params_.dilation, 1)) os << ", dilation=" << list_str(params_.dilation);
  if (!all_equal(output_padding_, 0)) os << ", output_padding=" << list_str(output_padding_);
  os << (bias_ ? "" : ", bias=false") << ")";
  return os.str();
}

// ---- BatchNorm ----

BatchNorm::BatchNorm(int dims, int64_t channels, BatchNormOptions opts, TensorOptions topts)
    : Module(suffix("BatchNorm", dims)), dims_(dims), channels_(channels), opts_(opts) {
  check_dims(dims, "BatchNorm");
  DFX_CHECK(channels > 0, type_name(), ": ", channels, " channels; expected a positive count");
  DFX_CHECK(opts.eps > 0 && opts.momentum >= 0 && opts.momentum <= 1, type_name(), ": eps ",
            opts.eps, ", momentum ", opts.momentum, "; expected eps > 0 and momentum in [0, 1]");
  if (opts.affine) {
    weight_ = &register_parameter("weight", Tensor::empty({channels}, topts.dtype, topts.device));
    bias_ = &register_parameter("bias", Tensor::empty({channels}, topts.dtype, topts.device));
  }
  running_mean_ = &register_buffer("running_mean", zeros({channels}, topts.dtype, topts.device));
  running_var_ = &register_buffer("running_var", ones({channels}, topts.dtype, topts.device));
  num_batches_ = &register_buffer("num_batches_tracked", zeros({}, DType::Int64, topts.device));
  reset_parameters(topts.seed, "");
}

void BatchNorm::reset_parameters(uint64_t seed, const std::string& prefix) {
  // Deterministic (weight 1, bias 0), as PyTorch, which also resets the running statistics here.
  if (weight_) fill_(weight_->data(), 1.0);
  if (bias_) fill_(bias_->data(), 0.0);
  fill_(*running_mean_, 0.0);
  fill_(*running_var_, 1.0);
  fill_(*num_batches_, 0.0);
}

Var& BatchNorm::weight() {
  DFX_CHECK(weight_ != nullptr, type_name(), "::weight: built with affine = false");
  return *weight_;
}

Var& BatchNorm::bias() {
  DFX_CHECK(bias_ != nullptr, type_name(), "::bias: built with affine = false");
  return *bias_;
}

void BatchNorm::set_momentum(double m) {
  DFX_CHECK(m >= 0 && m <= 1, type_name(), ": momentum ", m, "; expected a value in [0, 1]");
  opts_.momentum = m;
}

Var BatchNorm::forward(const Var& x) { return forward_impl(x, std::nullopt); }

Var BatchNorm::forward_leaky_relu(const Var& x, double slope) { return forward_impl(x, slope); }

Var BatchNorm::forward_impl(const Var& x, std::optional<double> slope) {
  DFX_CHECK(x.defined(), type_name(), ": the input is undefined");
  // BatchNorm1d also takes [N, C] (features without a length), as PyTorch's does.
  const bool ok_rank = x.dim() == dims_ + 2 || (dims_ == 1 && x.dim() == 2);
  DFX_CHECK(ok_rank && x.size(1) == channels_, describe(), ": input ", x.data().describe(),
            "; expected [N, ", channels_, ", ", dims_, " spatial dims]");
  const Var gamma = weight_ ? *weight_ : Var(), beta = bias_ ? *bias_ : Var();
  // A checkpoint's backward re-runs this forward: the running statistics and the batch count
  // were updated by the first run and must not be updated again.
  const bool rerun = ad::in_checkpoint_recompute() && is_training();
  const Tensor rm = rerun ? Tensor() : *running_mean_, rv = rerun ? Tensor() : *running_var_;
  Var y = slope ? ad::batch_norm_leaky_relu(x, gamma, beta, rm, rv, is_training(),
                                            opts_.momentum, opts_.eps, all_reduce_, *slope,
                                            opts_.recompute_input)
                : ad::batch_norm(x, gamma, beta, rm, rv, is_training(), opts_.momentum,
                                 opts_.eps, all_reduce_);
  if (is_training() && !rerun) {
    // On the buffer's device, so that a GPU model does not synchronise to count.
    Tensor& n = *num_batches_;
    copy_(n, kernels::add(n, scalar_tensor(1.0, DType::Int64, n.device())));
  }
  return y;
}

std::string BatchNorm::describe() const {
  std::ostringstream os;
  os << type_name() << "(" << channels_ << ", eps=" << opts_.eps << ", momentum=" << opts_.momentum
     << (opts_.affine ? "" : ", affine=false") << (all_reduce_ ? ", synchronized" : "") << ")";
  return os.str();
}

// ---- pooling and upsampling ----

MaxPool::MaxPool(int dims, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                 std::vector<int64_t> padding)
    : Module(suffix("MaxPool", dims)), dims_(dims) {
  check_dims(dims, "MaxPool");
  kernel_ = expand_param(kernel, dims, type_name().c_str(), "kernel");
  stride_ = stride.empty() ? kernel_ : expand_param(stride, dims, type_name().c_str(), "stride");
  padding_ = expand_param(padding, dims, type_name().c_str(), "padding");
}

Var MaxPool::forward(const Var& x) {
  DFX_CHECK(x.defined() && x.dim() == dims_ + 2, describe(), ": input ",
            x.defined() ? x.data().describe() : "undefined", "; expected ", dims_ + 2, " dims");
  return ad::max_pool(x, kernel_, stride_, padding_);
}

std::string MaxPool::describe() const {
  std::string s = type_name() + "(kernel=" + list_str(kernel_);
  if (stride_ != kernel_) s += ", stride=" + list_str(stride_);
  if (!all_equal(padding_, 0)) s += ", padding=" + list_str(padding_);
  return s + ")";
}

AvgPool::AvgPool(int dims, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                 std::vector<int64_t> padding)
    : Module(suffix("AvgPool", dims)), dims_(dims) {
  check_dims(dims, "AvgPool");
  kernel_ = expand_param(kernel, dims, type_name().c_str(), "kernel");
  stride_ = stride.empty() ? kernel_ : expand_param(stride, dims, type_name().c_str(), "stride");
  padding_ = expand_param(padding, dims, type_name().c_str(), "padding");
}

Var AvgPool::forward(const Var& x) {
  DFX_CHECK(x.defined() && x.dim() == dims_ + 2, describe(), ": input ",
            x.defined() ? x.data().describe() : "undefined", "; expected ", dims_ + 2, " dims");
  return ad::avg_pool(x, kernel_, stride_, padding_);
}

std::string AvgPool::describe() const {
  std::string s = type_name() + "(kernel=" + list_str(kernel_);
  if (stride_ != kernel_) s += ", stride=" + list_str(stride_);
  if (!all_equal(padding_, 0)) s += ", padding=" + list_str(padding_);
  return s + ")";
}

Upsample::Upsample(int dims, std::vector<int64_t> scale, ad::UpsampleMode mode)
    : Module("Upsample"), dims_(dims), mode_(mode) {
  check_dims(dims, "Upsample");
  scale_ = expand_param(scale, dims, "Upsample", "scale");
  for (int64_t s : scale_) DFX_CHECK(s >= 1, "Upsample: scale ", scale_, "; expected >= 1");
}

Var Upsample::forward(const Var& x) {
  DFX_CHECK(x.defined() && x.dim() == dims_ + 2, describe(), ": input ",
            x.defined() ? x.data().describe() : "undefined", "; expected ", dims_ + 2, " dims");
  return ad::upsample(x, scale_, mode_);
}

std::string Upsample::describe() const {
  const char* mode = mode_ == ad::UpsampleMode::Nearest ? "nearest"
                     : dims_ == 1                       ? "linear"
                     : dims_ == 2                       ? "bilinear"
                                                        : "trilinear";
  return "Upsample(scale=" + list_str(scale_) + ", mode=" + mode + ")";
}

// ---- activations ----

Var LeakyReLU::forward(const Var& x) { return ad::leaky_relu(x, slope_); }
std::string LeakyReLU::describe() const {
  std::ostringstream os;
  os << "LeakyReLU(" << slope_ << ")";
  return os.str();
}
Var ReLU::forward(const Var& x) { return ad::relu(x); }
Var Tanh::forward(const Var& x) { return ad::tanh(x); }
Var Sigmoid::forward(const Var& x) { return ad::sigmoid(x); }

Activation Activation::parse(const std::string& s) {
  if (s == "relu") return relu();
  if (s == "tanh") return tanh();
  if (s == "sigmoid") return sigmoid();
  if (s == "identity") return identity();
  if (s == "leaky_relu") return leaky_relu();
  const std::string head = "leaky_relu(";
  if (s.size() > head.size() + 1 && s.compare(0, head.size(), head) == 0 && s.back() == ')') {
    const std::string num = s.substr(head.size(), s.size() - head.size() - 1);
    try {
      size_t used = 0;
      double slope = std::stod(num, &used);
      if (used == num.size()) return leaky_relu(slope);
    } catch (const std::exception&) {
    }
  }
  DFX_FAIL("Activation::parse: '", s, "'; expected leaky_relu, leaky_relu(<slope>), relu, tanh, "
           "sigmoid or identity");
}

std::string Activation::str() const {
  switch (kind) {
    case Kind::LeakyReLU: {
      std::ostringstream os;
      os << "leaky_relu(" << negative_slope << ")";
      return os.str();
    }
    case Kind::ReLU: return "relu";
    case Kind::Tanh: return "tanh";
    case Kind::Sigmoid: return "sigmoid";
    case Kind::Identity: return "identity";
  }
  return "?";
}

std::shared_ptr<Module> make_activation(const Activation& a) {
  switch (a.kind) {
    case Activation::Kind::LeakyReLU: return std::make_shared<LeakyReLU>(a.negative_slope);
    case Activation::Kind::ReLU: return std::make_shared<ReLU>();
    case Activation::Kind::Tanh: return std::make_shared<Tanh>();
    case Activation::Kind::Sigmoid: return std::make_shared<Sigmoid>();
    case Activation::Kind::Identity: return std::make_shared<Identity>();
  }
  DFX_FAIL("make_activation: unknown kind");
}

std::vector<BatchNorm*> batch_norm_layers(Module& root) {
  std::vector<BatchNorm*> out;
  for (auto& [name, m] : root.named_modules())
    if (auto* bn = dynamic_cast<BatchNorm*>(m)) out.push_back(bn);
  return out;
}

}  // namespace dfx::nn
