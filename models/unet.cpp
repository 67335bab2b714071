// models/unet.cpp — builds the DiffNet U-Net level by level in the same registration order as the
// PyTorch peer, so that named_parameters() and state_dict() list the same keys in the same order.
#include "models/unet.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <sstream>

#include "autodiff/checkpoint.h"
#include "autodiff/ops.h"
#include "core/copy.h"

namespace dfx::nn {

UNetOptions UNetOptions::w1() {
  UNetOptions o;
  o.dims = 2;
  o.depth = 4;
  o.width = 16;
  return o;
}

UNetOptions UNetOptions::w2() {
  UNetOptions o;
  o.dims = 3;
  o.depth = 4;
  o.width = 8;
  return o;
}

namespace {

std::shared_ptr<Module> make_norm(int dims, int64_t channels, const UNetOptions& o) {
  if (o.norm == Norm::None) return std::make_shared<Identity>();
  return std::make_shared<BatchNorm>(dims, channels, o.batch_norm,
                                     TensorOptions{o.dtype, o.device, o.seed});
}

// act(norm(h)), as one fused op when they are BatchNorm and (leaky) ReLU with a slope >= 0.
Var norm_act(Module& norm, Module& act, const Var& h) {
  std::optional<double> slope;
  if (auto* l = dynamic_cast<LeakyReLU*>(&act)) slope = l->negative_slope();
  if (dynamic_cast<ReLU*>(&act)) slope = 0.0;
  auto* bn = dynamic_cast<BatchNorm*>(&norm);
  if (bn && slope && *slope >= 0) return bn->forward_leaky_relu(h, *slope);
  return act.forward(norm.forward(h));
}

}  // namespace

ConvBlock::ConvBlock(int dims, int64_t in_channels, int64_t out_channels, const UNetOptions& o)
    : Module("ConvBlock"), in_(in_channels), out_(out_channels) {
  // A bias before BatchNorm is cancelled by its mean subtraction: only without norm.
  ConvOptions c;
  c.padding = {1};
  c.bias = o.norm == Norm::None;
  const TensorOptions t{o.dtype, o.device, o.seed};
  const std::vector<int64_t> k3{3};
  conv1_ = register_module("conv1", std::make_shared<Conv>(dims, in_, out_, k3, c, t));
  norm1_ = register_module("norm1", make_norm(dims, out_, o));
  act1_ = register_module("act1", make_activation(o.activation));
  conv2_ = register_module("conv2", std::make_shared<Conv>(dims, out_, out_, k3, c, t));
  norm2_ = register_module("norm2", make_norm(dims, out_, o));
  act2_ = register_module("act2", make_activation(o.activation));
}

Var ConvBlock::forward(const Var& x) {
  Var h = norm_act(*norm1_, *act1_, conv1_->forward(x));
  return norm_act(*norm2_, *act2_, conv2_->forward(h));
}

std::string ConvBlock::describe() const {
  return "ConvBlock(" + std::to_string(in_) + " -> " + std::to_string(out_) + ")";
}

UNet::UNet(const UNetOptions& opts) : Module("UNet"), opts_(opts) {
  const UNetOptions& o = opts_;
  DFX_CHECK(o.dims >= 1 && o.dims <= 3, "UNet: dims ", o.dims, "; expected 1, 2 or 3");
  DFX_CHECK(o.depth >= 1 && o.depth <= 16, "UNet: depth ", o.depth, "; expected 1 to 16");
  DFX_CHECK(o.width >= 1 && o.in_channels >= 1 && o.out_channels >= 1, "UNet: width ", o.width,
            ", in_channels ", o.in_channels, ", out_channels ", o.out_channels,
            "; expected positive counts");
  DFX_CHECK(o.grown >= 0 && o.grown < o.depth, "UNet: grown ", o.grown, " levels; expected 0 to "
            "depth - 1 = ", o.depth - 1);
  std::vector<int64_t> widths;
  for (int l = 0; l < o.depth; ++l) widths.push_back(level_width(l));

  encoder_ = register_module("encoder", std::make_shared<ModuleList>());
  encoder_->push_back(std::make_shared<ConvBlock>(o.dims, o.in_channels, widths[0], o));
  for (int l = 1; l < o.depth; ++l)
    encoder_->push_back(std::make_shared<ConvBlock>(o.dims, widths[l - 1], widths[l], o));
  pool_ = register_module("pool", std::make_shared<MaxPool>(o.dims, std::vector<int64_t>{2}));
  up_ = register_module("up", std::make_shared<ModuleList>());
  decoder_ = register_module("decoder", std::make_shared<ModuleList>());
  ConvOptions up;
  up.stride = {2};
  const TensorOptions t{o.dtype, o.device, o.seed};
  for (int l = o.depth - 1; l >= 1; --l) {
    up_->push_back(std::make_shared<ConvTranspose>(o.dims, widths[l], widths[l - 1],
                                                   std::vector<int64_t>{2}, up, t));
    // The concatenation [upsampled, skip] has 2 * widths[l - 1] channels (= widths[l] below the
    // grown levels).
    decoder_->push_back(std::make_shared<ConvBlock>(o.dims, 2 * widths[l - 1], widths[l - 1], o));
  }
  head_ = register_module(
      "head", std::make_shared<Conv>(o.dims, widths[0], o.out_channels, std::vector<int64_t>{1},
                                     ConvOptions{}, t));
  // Streams from full paths: every layer draws different numbers, reproducibly from the seed.
  init_parameters(o.seed);
}

Var UNet::forward(const Var& x) {
  DFX_CHECK(x.defined() && x.dim() == opts_.dims + 2 && x.size(1) == opts_.in_channels,
            "UNet: input ", x.defined() ? x.data().describe() : "undefined", "; expected [N, ",
            opts_.in_channels, ", ", opts_.dims, " spatial dims]");
  for (int d = 2; d < x.dim(); ++d)
    DFX_CHECK(x.size(d) % size_divisor() == 0, "UNet: input ", x.data().describe(),
              ": spatial size ", x.size(d), " is not divisible by 2^(depth-1) = ", size_divisor(),
              " (depth ", opts_.depth, ")");
  // Each encoder level, and each decoder level, as one function of its inputs, run directly or
  // checkpointed. A checkpoint calls its function again in the backward, after this scope has
  // ended: the functions hold pointers to the modules (which outlive the graph), by value.
  auto part = [&](const ad::CheckpointFn& fn, const std::vector<Var>& in,
                  const std::vector<Module*>& mods) {
    if (!opts_.checkpoint) return fn(in);
    std::vector<Var> params;
    for (Module* m : mods)
      for (const Var& p : m->parameters()) params.push_back(p);
    return ad::checkpoint(fn, in, params);
  };
  std::vector<Var> skips;
  Module* first = &(*encoder_)[0];
  Var h = part([first](const std::vector<Var>& v) { return first->forward(v[0]); }, {x}, {first});
  for (size_t l = 1; l < encoder_->size(); ++l) {
    skips.push_back(h);
    // Pooling inside the part: its input is the skip, kept anyway, so a checkpoint keeps neither
    // the pooled tensor nor the max-pool indices.
    Module *pool = pool_.get(), *block = &(*encoder_)[l];
    h = part([pool, block](const std::vector<Var>& v) {
      return block->forward(pool->forward(v[0]));
    }, {h}, {block});
  }
  for (size_t l = 0; l < up_->size(); ++l) {
    Module *up = &(*up_)[l], *block = &(*decoder_)[l];
    h = part([up, block](const std::vector<Var>& v) {
      return block->forward(ad::concat({up->forward(v[0]), v[1]}, 1));
    }, {h, skips.back()}, {up, block});
    skips.pop_back();
  }
  return head_->forward(h);
}

int64_t UNet::level_width(int level) const {
  return opts_.width << std::max(0, level - opts_.grown);
}

std::string UNet::describe() const {
  std::ostringstream os;
  os << "UNet(" << opts_.dims << "-d, in=" << opts_.in_channels << ", out=" << opts_.out_channels
     << ", depth=" << opts_.depth << ", width=" << opts_.width;
  if (opts_.grown > 0) os << ", grown=" << opts_.grown;
  os << ", activation=" << opts_.activation.str()
     << ", norm=" << (opts_.norm == Norm::Batch ? "batch" : "none") << ")";
  return os.str();
}

namespace {

// Edits a CPU tensor through a float64 copy of its values.
void edit_values(const Tensor& t, const std::function<void(std::vector<double>&)>& fn) {
  std::vector<double> v = t.to_vector();
  fn(v);
  copy_(t, from_vector<double>(v, t.shape()).to(t.dtype()));
}

// Sets up the grown network's new top level to hand the input field on to the old network's
// first convolution: encoder.0 carries each input channel i as the pair (+x, -x) on channels
// 2i, 2i+1 through both of its convolutions (with act(z) - act(-z) = (1 + a) z for a (leaky)
// ReLU of slope a, and batch norm mapping +x and -x to +z and -z), and encoder.1.conv1 applies
// the old encoder.0.conv1 to the difference of that pair. So the old levels see, at the
// growth, the input they were trained on (max-pooled instead of sampled at their resolution;
// exactly it without normalisation for an input constant on each pooling window), and only the
// new top decoder starts from nothing. Needs 2 * in_channels <= width and a (leaky) ReLU.
void keep_input_path(UNet& g, const Tensor& old_first_conv) {
  const UNetOptions& o = g.options();
  double a = -1;
  if (o.activation.kind == Activation::Kind::LeakyReLU) a = o.activation.negative_slope;
  if (o.activation.kind == Activation::Kind::ReLU) a = 0;
  const int64_t in = o.in_channels, C = o.width;
  if (!(a >= 0) || 2 * in > C) return;
  int64_t taps = 1;
  for (int d = 0; d < o.dims; ++d) taps *= 3;
  const int64_t mid = taps / 2;
  const double k = 1.0 / (1.0 + a);
  auto param = [&](const std::string& path) -> const Tensor& { return g.parameter(path).data(); };
  auto has = [&](const std::string& path) {
    for (auto& [n, p] : g.named_parameters())
      if (n == path) return true;
    return false;
  };
  // (+x, -x) pairs: conv1 [C, in, taps] picks them, conv2 [C, C, taps] rebuilds them.
  edit_values(param("encoder.0.conv1.weight"), [&](std::vector<double>& w) {
    for (int64_t i = 0; i < in; ++i)
      for (int64_t s : {0, 1}) {
        double* row = &w[static_cast<size_t>((2 * i + s) * in * taps)];
        std::fill(row, row + in * taps, 0.0);
        row[i * taps + mid] = s ? -1.0 : 1.0;
      }
  });
  edit_values(param("encoder.0.conv2.weight"), [&](std::vector<double>& w) {
    for (int64_t i = 0; i < in; ++i)
      for (int64_t s : {0, 1}) {
        double* row = &w[static_cast<size_t>((2 * i + s) * C * taps)];
        std::fill(row, row + C * taps, 0.0);
        row[(2 * i) * taps + mid] = s ? -k : k;
        row[(2 * i + 1) * taps + mid] = s ? k : -k;
      }
  });
  auto pairs_to = [&](const std::string& path, double value) {
    if (!has(path)) return;
    edit_values(param(path), [&](std::vector<double>& v) {
      for (int64_t c = 0; c < 2 * in; ++c) v[static_cast<size_t>(c)] = value;
    });
  };
  for (const char* conv : {"conv1", "conv2"}) pairs_to(std::string("encoder.0.") + conv + ".bias", 0.0);
  for (const char* norm : {"norm1", "norm2"}) {
    pairs_to(std::string("encoder.0.") + norm + ".weight", 1.0);
    pairs_to(std::string("encoder.0.") + norm + ".bias", 0.0);
  }
  // encoder.1.conv1 [C, C, taps] = the old first convolution [C, in, taps] on the pairs.
  const std::vector<double> w0 = old_first_conv.cpu().contiguous().to_vector();
  edit_values(param("encoder.1.conv1.weight"), [&](std::vector<double>& w) {
    std::fill(w.begin(), w.end(), 0.0);
    for (int64_t out = 0; out < C; ++out)
      for (int64_t i = 0; i < in; ++i)
        for (int64_t t = 0; t < taps; ++t) {
          const double v = k * w0[static_cast<size_t>((out * in + i) * taps + t)];
          w[static_cast<size_t>((out * C + 2 * i) * taps + t)] = v;
          w[static_cast<size_t>((out * C + 2 * i + 1) * taps + t)] = -v;
        }
  });
}

}  // namespace

std::shared_ptr<UNet> grow_unet(const UNet& old) {
  UNetOptions o = old.options();
  DFX_CHECK(o.depth < 16, "grow_unet: the U-Net already has ", o.depth, " levels (at most 16)");
  ++o.depth;
  ++o.grown;
  o.device = Device::cpu();  // initialised on the CPU like every U-Net, then moved
  auto grown = std::make_shared<UNet>(o);
  // Old paths by new path: encoder.j <- encoder.(j-1); up.i and decoder.i (listed deepest
  // first) keep their index; the head keeps its path; the new top level has no old path.
  const int top = o.depth - 2;  // index of the new (top) up and decoder
  auto old_path = [&](const std::string& p) -> std::string {
    const size_t dot1 = p.find('.'), dot2 = p.find('.', dot1 + 1);
    const std::string list = p.substr(0, dot1);
    if (list == "head") return p;
    const int i = std::stoi(p.substr(dot1 + 1, dot2 - dot1 - 1));
    const std::string rest = p.substr(dot2);
    if (list == "encoder") return i == 0 ? "" : "encoder." + std::to_string(i - 1) + rest;
    return i == top ? "" : p;
  };
  std::map<std::string, Tensor> from;
  for (auto& [name, t] : old.state_dict()) from[name] = t;
  for (auto& [name, t] : grown->state_dict()) {
    auto it = from.find(old_path(name));
    if (it == from.end() || it->second.shape() != t.shape()) continue;  // new, or a changed shape
    copy_(t, it->second.cpu());
  }
  keep_input_path(*grown, from.at("encoder.0.conv1.weight"));
  grown->train(old.is_training());
  if (!old.device().is_cpu()) grown->to(old.device());
  // Channels-last when any weight is laid out so (a weight with one input channel is both).
  for (const Var& p : old.parameters())
    if (p.dim() >= 3 && !p.data().is_contiguous() &&
        p.data().is_contiguous(MemoryFormat::ChannelsLast)) {
      grown->to(MemoryFormat::ChannelsLast);
      break;
    }
  return grown;
}

}  // namespace dfx::nn
