// tests/models/test_module.cpp — the Module tree without running any layer: registration and its
// refusals, dotted lookups, PyTorch's state_dict order, modes, zero_grad, dtype moves keeping the
// graph nodes, the summary text, and PyTorch's default initialisation drawn reproducibly.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "core/copy.h"
#include "core/rng.h"
#include "models/layers.h"
#include "models/module.h"
#include "models/unet.h"
#include "tests/models/model_test_util.h"

using namespace dfx;
using namespace dfx::nn;

namespace {

// A module with one parameter, one buffer and a child: the shape of BatchNorm inside a block.
struct Leafy : Module {
  Leafy() : Module("Leafy") {
    register_parameter("w", zeros({2, 3}));
    register_buffer("count", zeros({}, DType::Int64));
  }
};

struct Tree : Module {
  std::shared_ptr<Leafy> a, b;
  Tree() : Module("Tree") {
    register_parameter("scale", ones({1}));
    a = register_module("a", std::make_shared<Leafy>());
    register_buffer("stats", zeros({4}));
    b = register_module("b", std::make_shared<Leafy>());
  }
};

std::vector<std::string> names_of(const Named<Tensor>& v) {
  std::vector<std::string> out;
  for (auto& [n, t] : v) out.push_back(n);
  return out;
}

// Mean, variance and largest magnitude of a tensor's elements.
struct Stats {
  double mean = 0, var = 0, max_abs = 0;
};
Stats stats_of(const Tensor& t) {
  Stats s;
  auto v = t.to_vector();
  for (double x : v) s.mean += x, s.max_abs = std::max(s.max_abs, std::abs(x));
  s.mean /= v.size();
  for (double x : v) s.var += (x - s.mean) * (x - s.mean);
  s.var /= v.size();
  return s;
}

// U(-b, b): every draw inside, the extremes reached, mean 0 and variance b^2/3 within sampling
// error (4 standard errors).
void check_uniform(const Tensor& t, double bound, const std::string& what) {
  INFO(what);
  Stats s = stats_of(t);
  const double n = static_cast<double>(t.numel());
  CHECK(s.max_abs <= bound);
  CHECK(s.max_abs > bound * (1 - 20.0 / n));
  CHECK(std::abs(s.mean) < 4 * bound / std::sqrt(3 * n));
  // Var of the sample variance of U(-b,b): (b^4/5 - b^4/9) / n.
  CHECK(std::abs(s.var - bound * bound / 3) < 4 * bound * bound * std::sqrt(4.0 / 45 / n));
}

}  // namespace

TEST_SUITE("models") {

TEST_CASE("module: registration, order and dotted lookup") {
  Tree t;
  auto params = t.named_parameters();
  REQUIRE(params.size() == 3);
  CHECK(params[0].first == "scale");
  CHECK(params[1].first == "a.w");
  CHECK(params[2].first == "b.w");
  CHECK(names_of(t.named_buffers()) == std::vector<std::string>{"stats", "a.count", "b.count"});
  // PyTorch's state_dict: a module's parameters, its buffers, then each child in turn.
  CHECK(names_of(t.state_dict()) ==
        std::vector<std::string>{"scale", "stats", "a.w", "a.count", "b.w", "b.count"});
  CHECK(t.num_parameters() == 13);
  CHECK(t.num_buffer_elements() == 6);
  CHECK(t.parameters().size() == 3);
  CHECK(t.parameters()[1].requires_grad());

  CHECK(&t.submodule("a") == t.a.get());
  CHECK(&t.submodule("") == &t);
  CHECK(t.parameter("b.w").shape() == Shape{2, 3});
  CHECK(t.buffer("a.count").dtype() == DType::Int64);
  // The state dict shares storage with the module.
  CHECK(t.state_dict()[2].second.shares_storage(t.a->parameter("w").data()));

  auto modules = t.named_modules();
  REQUIRE(modules.size() == 3);
  CHECK(modules[0].first == "");
  CHECK(modules[2].first == "b");

  CHECK_THROWS_WITH_AS(t.parameter("a.nope"), doctest::Contains("has parameters [w]"), Error);
  CHECK_THROWS_WITH_AS(t.parameter("c.w"), doctest::Contains("has children [a, b]"), Error);
  CHECK_THROWS_WITH_AS(t.buffer("a.w"), doctest::Contains("has buffers [count]"), Error);
  CHECK_THROWS_WITH_AS(t.register_parameter("a", ones({1})),
                       doctest::Contains("already registered"), Error);
  CHECK_THROWS_WITH_AS(t.register_buffer("x.y", ones({1})), doctest::Contains("no '.'"), Error);
  CHECK_THROWS_WITH_AS(t.register_parameter("", ones({1})), doctest::Contains("non-empty"), Error);
  CHECK_THROWS_AS(t.forward(Var(ones({1}))), Error);
}

TEST_CASE("module: train/eval, zero_grad and dtype moves keep the graph nodes") {
  Tree t;
  CHECK(t.is_training());
  t.eval();
  CHECK(!t.is_training());
  CHECK(!t.a->is_training());
  t.train();
  CHECK(t.b->is_training());

  for (Var p : t.parameters()) p.set_grad(Var(ones_like(p.data())));
  CHECK(t.parameter("a.w").grad().defined());
  t.zero_grad();
  for (const Var& p : t.parameters()) CHECK(!p.grad().defined());

  Var& w = t.parameter("a.w");
  auto node = w.node();
  w.set_grad(Var(ones({2, 3})));
  t.to(DType::Float64);
  CHECK(w.dtype() == DType::Float64);
  CHECK(w.node() == node);  // same leaf: hooks and requires_grad survive
  CHECK(w.grad().dtype() == DType::Float64);
  CHECK(t.buffer("stats").dtype() == DType::Float64);
  CHECK(t.buffer("a.count").dtype() == DType::Int64);  // integer buffers stay integer
  t.to(Device::cpu());  // already there: nothing changes
  CHECK(w.node() == node);
  CHECK(t.device() == Device::cpu());
  CHECK_THROWS_AS(t.to(DType::Int64), Error);
}

TEST_CASE("module: Sequential applies its children in order") {
  Sequential s({std::make_shared<LeakyReLU>(0.5), std::make_shared<Tanh>()});
  Var y = s(Var(from_vector<float>({-2.0f, 1.0f}, {2})));
  CHECK(y.data().get({0}) == doctest::Approx(std::tanh(-1.0)));
  CHECK(y.data().get({1}) == doctest::Approx(std::tanh(1.0)));
  CHECK(s.size() == 2);
  CHECK(s[1].type_name() == "Tanh");
  CHECK_THROWS_WITH_AS(s.at(2), doctest::Contains("out of range"), Error);
  CHECK(ReLU()(Var(from_vector<float>({-1.0f}, {1}))).item() == 0.0);
  CHECK(Sigmoid()(Var(from_vector<float>({0.0f}, {1}))).item() == 0.5);
  CHECK(Identity()(Var(from_vector<float>({3.0f}, {1}))).item() == 3.0);
}

TEST_CASE("module: activations by name") {
  CHECK(Activation::parse("leaky_relu").negative_slope == 0.2);
  CHECK(Activation::parse("leaky_relu(0.1)").negative_slope == 0.1);
  CHECK(Activation::parse("tanh").kind == Activation::Kind::Tanh);
  CHECK(Activation::parse("relu").str() == "relu");
  CHECK(Activation::leaky_relu(0.2).str() == "leaky_relu(0.2)");
  CHECK_THROWS_WITH_AS(Activation::parse("gelu"), doctest::Contains("expected leaky_relu"), Error);
  CHECK_THROWS_AS(Activation::parse("leaky_relu(x)"), Error);
  CHECK(make_activation(Activation::sigmoid())->type_name() == "Sigmoid");
}

TEST_CASE("module: layer shapes, names and descriptions") {
  Conv c(2, 3, 8, {3}, {.padding = {1}, .bias = false});
  CHECK(c.weight().shape() == Shape{8, 3, 3, 3});
  CHECK(!c.has_bias());
  CHECK(names_of(c.state_dict()) == std::vector<std::string>{"weight"});
  CHECK(c.describe() == "Conv2d(3, 8, kernel=3, padding=1, bias=false)");
  Conv c1(1, 2, 4, {5}, {.stride = {2}});
  CHECK(c1.bias().shape() == Shape{4});
  CHECK(c1.describe() == "Conv1d(2, 4, kernel=5, stride=2)");
  CHECK_THROWS_WITH_AS(Conv(2, 3, 8, {3, 3, 3}), doctest::Contains("expected 1 or 2"), Error);
  CHECK_THROWS_AS(Conv(4, 3, 8, {3}), Error);

  ConvTranspose t(3, 16, 8, {2}, {.stride = {2}});
  CHECK(t.weight().shape() == Shape{16, 8, 2, 2, 2});  // [in, out, *k] as PyTorch
  CHECK(t.describe() == "ConvTranspose3d(16, 8, kernel=2, stride=2)");

  BatchNorm bn(3, 5);
  CHECK(names_of(bn.state_dict()) == std::vector<std::string>{
                                         "weight", "bias", "running_mean", "running_var",
                                         "num_batches_tracked"});
  CHECK(bn.num_batches_tracked().dim() == 0);
  CHECK(bn.num_batches_tracked().dtype() == DType::Int64);
  CHECK(bn.running_var().to_vector() == std::vector<double>(5, 1.0));
  CHECK(bn.weight().data().to_vector() == std::vector<double>(5, 1.0));
  CHECK(bn.bias().data().to_vector() == std::vector<double>(5, 0.0));
  CHECK(bn.describe() == "BatchNorm3d(5, eps=1e-05, momentum=0.1)");
  CHECK(!bn.synchronized());
  bn.set_all_reduce([](Tensor&) {});
  CHECK(bn.synchronized());
  BatchNorm plain(1, 4, {.affine = false});
  CHECK(plain.num_parameters() == 0);
  CHECK_THROWS_AS(plain.weight(), Error);

  CHECK(MaxPool(2, {2}).describe() == "MaxPool2d(kernel=2)");
  CHECK(AvgPool(3, {2}, {1}).describe() == "AvgPool3d(kernel=2, stride=1)");
  CHECK(Upsample(2, {2}, ad::UpsampleMode::Linear).describe() ==
        "Upsample(scale=2, mode=bilinear)");
}

TEST_CASE("module: summary is an indented tree with counts and totals") {
  Sequential s({std::make_shared<Conv>(2, 1, 4, std::vector<int64_t>{3},
                                       ConvOptions{.padding = {1}, .bias = false}),
                std::make_shared<BatchNorm>(2, 4), std::make_shared<LeakyReLU>(0.2)});
  const std::string expected =
      "module                                              parameters\n"
      "Sequential                                                  44\n"
      "  0: Conv2d(1, 4, kernel=3, padding=1, bias=false)          36\n"
      "  1: BatchNorm2d(4, eps=1e-05, momentum=0.1)                 8\n"
      "  2: LeakyReLU(0.2)                                          0\n"
      "total: 44 parameters in 3 tensors; 9 buffer elements in 3 tensors; training mode\n";
  CHECK(s.summary() == expected);

  UNet net(UNetOptions::w1());
  net.eval();
  const std::string sum = net.summary();
  CHECK(sum.find("UNet(2-d, in=1, out=1, depth=4, width=16, activation=leaky_relu(0.2), "
                 "norm=batch)") != std::string::npos);
  CHECK(sum.find("    0: ConvBlock(1 -> 16)") != std::string::npos);
  CHECK(sum.find("      conv1: Conv2d(1, 16, kernel=3, padding=1, bias=false)") !=
        std::string::npos);
  CHECK(sum.find("  head: Conv2d(16, 1, kernel=1)") != std::string::npos);
  CHECK(sum.find("total: 482,449 parameters in 50 tensors") != std::string::npos);
  CHECK(sum.find("evaluation mode") != std::string::npos);
  CHECK(format_count(1234567) == "1,234,567");
  CHECK(format_count(999) == "999");
}

TEST_CASE("module: PyTorch default initialisation, reproducible from the seed") {
  Conv c(2, 64, 64, {3}, {}, {.seed = 5});
  const double bound = 1.0 / std::sqrt(64.0 * 9);  // kaiming_uniform(a = sqrt 5)
  CHECK(c.fan_in() == 576);
  check_uniform(c.weight().data(), bound, "conv weight");
  check_uniform(c.bias().data(), bound, "conv bias");

  // ConvTranspose: fan_in from weight.size(1) * prod(kernel) = out * 8, as PyTorch computes it.
  ConvTranspose t(3, 64, 32, {2}, {.stride = {2}}, {.seed = 5});
  CHECK(t.fan_in() == 256);
  check_uniform(t.weight().data(), 1.0 / 16, "transposed weight");

  // The draw is exactly dfx::uniform at the parameter's stream: nothing hidden.
  UNet a(UNetOptions::w1());
  UNetOptions o = UNetOptions::w1();
  Tensor expect = uniform({16, 1, 3, 3}, -1.0 / 3, 1.0 / 3, o.seed,
                          param_stream("encoder.0.conv1.weight"));
  CHECK(testing::bitwise_equal(a.parameter("encoder.0.conv1.weight").data(), expect));

  UNet b(UNetOptions::w1());
  o.seed = 1;
  UNet c1(o);
  bool all_same = true, any_same = false;
  auto pa = a.state_dict(), pb = b.state_dict(), pc = c1.state_dict();
  for (size_t i = 0; i < pa.size(); ++i) {
    all_same = all_same && testing::bitwise_equal(pa[i].second, pb[i].second);
    if (pa[i].first.find("conv") != std::string::npos)
      any_same = any_same || testing::bitwise_equal(pa[i].second, pc[i].second);
  }
  CHECK(all_same);   // same seed, same numbers
  CHECK(!any_same);  // another seed, other numbers
  // Layers of the same shape draw different numbers (their streams come from their paths).
  CHECK(!testing::bitwise_equal(a.parameter("encoder.2.conv2.weight").data(),
                                a.parameter("decoder.0.conv2.weight").data()));
  check_uniform(a.parameter("decoder.0.conv1.weight").data(), 1.0 / std::sqrt(128.0 * 9),
                "U-Net decoder conv");
  check_uniform(a.parameter("up.0.weight").data(), 1.0 / std::sqrt(64.0 * 4), "U-Net up conv");

  // Re-initialising restores the first draw in place (the storage is kept).
  Var w = a.parameter("head.weight");
  Tensor before = w.data().clone();
  fill_(w.data(), 0.0);
  a.init_parameters(0);
  CHECK(testing::bitwise_equal(w.data(), before));
}

}  // TEST_SUITE
