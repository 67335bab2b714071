// tests/models/test_unet.cpp — the U-Net builder: W1/W2 parameter counts, names equal to the
// PyTorch peer's state_dict keys (read from the fixtures), shapes and refusals, the variant without
// normalisation, and BatchNorm's train/eval behaviour (batch vs running statistics).
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "autodiff/ops.h"
#include "core/copy.h"
#include "core/rng.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "models/checkpoint.h"
#include "models/unet.h"
#include "tests/models/model_test_util.h"

using namespace dfx;
using namespace dfx::nn;

namespace {

// The fixture's state_dict keys: everything but the extra entries tools/make_fixtures.py adds.
std::vector<std::string> fixture_state_keys(const std::string& file) {
  static const std::set<std::string> extras = {"input", "loss_weight", "output", "loss"};
  std::vector<std::string> keys;
  for (auto& [name, t] : load_safetensors(testing::fixture_path(file))) {
    if (extras.count(name) || name.rfind("grad.", 0) == 0 || name.rfind("after.", 0) == 0)
      continue;
    keys.push_back(name);
  }
  return keys;
}

std::vector<std::string> keys_of(const Named<Tensor>& state) {
  std::vector<std::string> out;
  for (auto& [n, t] : state) out.push_back(n);
  return out;
}

}  // namespace

TEST_SUITE("models") {

TEST_CASE("unet: W1 and W2 parameter counts") {
  UNet w1(UNetOptions::w1());
  CHECK(w1.num_parameters() == 482449);
  UNet w2(UNetOptions::w2());
  CHECK(w2.num_parameters() == 350809);
  CHECK(w1.size_divisor() == 8);
  CHECK(batch_norm_layers(w1).size() == 14);  // 7 blocks x 2
}

TEST_CASE("unet: names and order equal the PyTorch peer's state_dict keys") {
  // The fixtures list the keys in the order PyTorch's state_dict() produced them.
  UNet w1(UNetOptions::w1());
  CHECK(keys_of(w1.state_dict()) == fixture_state_keys("unet2d.safetensors"));
  UNet w2(UNetOptions::w2());
  CHECK(keys_of(w2.state_dict()) == fixture_state_keys("unet3d.safetensors"));
}

TEST_CASE("unet: options — no normalisation, other widths and depths, refusals") {
  UNetOptions o = UNetOptions::w1();
  o.norm = Norm::None;
  o.activation = Activation::tanh();
  UNet plain(o);
  // Each block's two BatchNorms (4 * cout) go, its two convs gain a bias (2 * cout); the blocks'
  // cout sum to 16 + 32 + 64 + 128 + 64 + 32 + 16 = 352.
  CHECK(plain.num_parameters() == 482449 - 4 * 352 + 2 * 352);
  CHECK(plain.named_buffers().empty());
  CHECK(plain.parameter("encoder.0.conv1.bias").shape() == Shape{16});
  CHECK(batch_norm_layers(plain).empty());

  UNetOptions d2;
  d2.depth = 2;
  d2.width = 4;
  d2.in_channels = 2;
  d2.out_channels = 3;
  UNet small(d2);
  CHECK(small.parameter("up.0.weight").shape() == Shape{8, 4, 2, 2});
  CHECK(small.parameter("head.weight").shape() == Shape{3, 4, 1, 1});
  CHECK_THROWS_AS(UNet(UNetOptions{.dims = 4}), Error);
  CHECK_THROWS_AS(UNet(UNetOptions{.depth = 0}), Error);
}

TEST_CASE("unet: forward shapes and input refusals") {
  UNetOptions o;
  o.depth = 3;
  o.width = 4;
  UNet net(o);
  Var y = net(Var(randn({2, 1, 8, 12}, 3)));
  CHECK(y.shape() == Shape{2, 1, 8, 12});
  CHECK_THROWS_WITH_AS(net(Var(randn({1, 1, 8, 10}, 3))),
                       doctest::Contains("not divisible by 2^(depth-1) = 4"), Error);
  CHECK_THROWS_WITH_AS(net(Var(randn({1, 2, 8, 8}, 3))), doctest::Contains("expected [N, 1"),
                       Error);
  UNetOptions o3 = UNetOptions::w2();
  o3.depth = 2;
  o3.width = 2;
  UNet net3(o3);
  CHECK(net3(Var(randn({1, 1, 4, 2, 6}, 4))).shape() == Shape{1, 1, 4, 2, 6});
}

TEST_CASE("unet: grow_unet adds a level at the top and keeps every old weight under its new path") {
  UNetOptions o;
  o.depth = 3;
  o.width = 4;
  o.seed = 5;
  UNet old(o);
  // Train-mode steps move the BN running statistics off their initial values, so copying them
  // is checked too.
  for (int i = 0; i < 2; ++i) old(Var(randn({2, 1, 8, 8}, 40 + i)));
  // ... and the weights off their seeded initial values (which a fresh network would redraw).
  uint64_t k = 0;
  for (auto& [name, p] : old.named_parameters())
    copy_(p.data(), kernels::add(p.data(), randn(p.shape(), 900 + k++)));
  std::shared_ptr<UNet> g = grow_unet(old);
  CHECK(g->options().depth == 4);
  CHECK(g->options().grown == 1);
  CHECK(g->size_divisor() == 8);
  // Widths: C at the new top, then the old C, 2C, 4C.
  const std::vector<int64_t> widths{4, 4, 8, 16};
  for (int l = 0; l < 4; ++l) {
    CHECK(g->level_width(l) == widths[l]);
    CHECK(g->buffer("encoder." + std::to_string(l) + ".norm2.running_mean").shape()[0] == widths[l]);
  }
  // Old encoder.j is encoder.(j+1); up.i and decoder.i (deepest first) keep their index; the head
  // keeps its path. encoder.1.conv1 reads C channels now, so it is new.
  auto same = [&](const std::string& now, const std::string& before) {
    const Named<Tensor> a = g->state_dict(), b = old.state_dict();
    const Tensor* x = nullptr;
    const Tensor* y = nullptr;
    for (auto& [n, t] : a) if (n == now) x = &t;
    for (auto& [n, t] : b) if (n == before) y = &t;
    REQUIRE(x != nullptr);
    REQUIRE(y != nullptr);
    return x->shape() == y->shape() && testing::bitwise_equal(*x, *y);
  };
  for (const std::string rest : {".conv2.weight", ".norm1.weight", ".norm2.bias", ".norm2.running_var",
                                 ".norm1.num_batches_tracked"}) {
    CHECK(same("encoder.1" + rest, "encoder.0" + rest));
    CHECK(same("encoder.3" + rest, "encoder.2" + rest));
    CHECK(same("decoder.1" + rest, "decoder.1" + rest));
  }
  CHECK(same("encoder.2.conv1.weight", "encoder.1.conv1.weight"));
  CHECK(same("up.0.weight", "up.0.weight"));
  CHECK(same("up.1.bias", "up.1.bias"));
  CHECK(same("decoder.0.conv1.weight", "decoder.0.conv1.weight"));
  CHECK(same("head.weight", "head.weight"));
  CHECK(same("head.bias", "head.bias"));
  CHECK(g->parameter("encoder.1.conv1.weight").shape() == Shape{4, 4, 3, 3});
  CHECK(!same("encoder.0.conv2.weight", "encoder.0.conv2.weight"));  // the new top: fresh
  // The new parts are the seeded initialisation of that network, the same on every call.
  UNetOptions fresh_o = g->options();
  UNet fresh(fresh_o);
  for (const std::string p : {"up.2.weight", "up.2.bias", "decoder.2.conv1.weight", "decoder.2.conv2.weight"})
    CHECK(testing::bitwise_equal(g->parameter(p).data(), fresh.parameter(p).data()));
  CHECK(testing::bitwise_equal(grow_unet(old)->parameter("up.2.weight").data(),
                               g->parameter("up.2.weight").data()));
  // It runs at twice the resolution, forward and backward, and grows again.
  Var x(randn({2, 1, 16, 16}, 7));
  Var y = (*g)(x);
  CHECK(y.shape() == Shape{2, 1, 16, 16});
  ad::sum(ad::mul(y, y)).backward();
  CHECK(std::isfinite(kernels::sum(g->parameter("encoder.0.conv1.weight").grad().data()).item()));
  std::shared_ptr<UNet> g2 = grow_unet(*g);
  CHECK(g2->options().grown == 2);
  CHECK(g2->level_width(1) == 4);
  CHECK(g2->level_width(2) == 4);
  CHECK(g2->level_width(3) == 8);
  CHECK(same("encoder.1.conv2.weight", "encoder.0.conv2.weight"));
  CHECK(testing::bitwise_equal(g2->parameter("encoder.2.conv2.weight").data(),
                               g->parameter("encoder.1.conv2.weight").data()));
  // Channels-last stays channels-last.
  old.to(MemoryFormat::ChannelsLast);
  CHECK(grow_unet(old)->parameter("encoder.2.conv2.weight").data().is_contiguous(MemoryFormat::ChannelsLast));
  UNetOptions bad = o;
  bad.grown = 3;
  CHECK_THROWS_WITH_AS(UNet{bad}, doctest::Contains("expected 0 to depth - 1 = 2"), Error);
}

TEST_CASE("unet: after grow_unet the old levels see the input they were trained on") {
  // Without normalisation the pass-through is exact for an input constant on each 2 x 2 window:
  // the grown encoder.1 after encoder.0 and the pool equals the old encoder.0 on the coarse input.
  for (int dims : {2, 3}) {
    UNetOptions o;
    o.dims = dims;
    o.depth = 2;
    o.width = 4;
    o.norm = Norm::None;
    o.dtype = DType::Float64;
    o.seed = 8;
    UNet old(o);
    uint64_t k = 0;
    for (auto& [name, p] : old.named_parameters())
      copy_(p.data(), kernels::add(p.data(), kernels::mul(randn(p.shape(), 700 + k++, 0, 0, DType::Float64),
                                                           full({}, 0.1, DType::Float64))));
    std::shared_ptr<UNet> g = grow_unet(old);
    const int64_t n = 4;
    Shape coarse{2, 1}, fine{2, 1};
    for (int d = 0; d < dims; ++d) {
      coarse.push_back(n);
      fine.push_back(2 * n);
    }
    Tensor xc = randn(coarse, 77, 0, 0, DType::Float64);
    // Nearest upsampling by hand: fine index j reads coarse index j / 2 along every axis.
    std::vector<double> cv = xc.to_vector(), fv;
    int64_t total = 2;
    for (int d = 0; d < dims; ++d) total *= 2 * n;
    fv.resize(static_cast<size_t>(total));
    for (int64_t f = 0; f < total; ++f) {
      int64_t rem = f, c = 0, stride = 1;
      std::vector<int64_t> idx(dims);
      for (int d = dims - 1; d >= 0; --d) {
        idx[d] = rem % (2 * n);
        rem /= 2 * n;
      }
      const int64_t b = rem;
      for (int d = dims - 1; d >= 0; --d) {
        c += (idx[d] / 2) * stride;
        stride *= n;
      }
      fv[static_cast<size_t>(f)] = cv[static_cast<size_t>(b * stride + c)];
    }
    Tensor x = from_vector<double>(fv, fine);
    ad::NoGradGuard ng;
    const Tensor want = old.submodule("encoder.0").forward(Var(xc)).data();
    const Tensor got = g->submodule("encoder.1").forward(
        g->submodule("pool").forward(g->submodule("encoder.0").forward(Var(x)))).data();
    CHECK(testing::rel_err(got, want) < 1e-12);
    // Without the pass-through the same comparison is far off (the check can fail).
    UNet fresh(g->options());
    const Tensor other = fresh.submodule("encoder.1").forward(
        fresh.submodule("pool").forward(fresh.submodule("encoder.0").forward(Var(x)))).data();
    CHECK(testing::rel_err(other, want) > 0.1);
  }
}

TEST_CASE("unet: BatchNorm uses batch statistics in training, running ones in evaluation") {
  BatchNorm bn(2, 3);
  Tensor x = randn({4, 3, 5, 5}, 11);
  x = kernels::add(kernels::mul(x, full({}, 2.0)), full({}, 0.5));  // mean 0.5, std 2
  Var y = bn(Var(x));
  // Training: every channel normalised to mean 0, (biased) variance 1.
  Tensor m = kernels::mean(y.data(), {0, 2, 3});
  Tensor v = kernels::var(y.data(), {0, 2, 3}, 0);
  for (int c = 0; c < 3; ++c) {
    CHECK(std::abs(m.get({c})) < 1e-5);
    CHECK(v.get({c}) == doctest::Approx(1.0).epsilon(1e-3));
  }
  // Running statistics moved 10 % of the way towards the batch's (unbiased variance).
  Tensor bm = kernels::mean(x, {0, 2, 3}), bv = kernels::var(x, {0, 2, 3}, 1);
  for (int c = 0; c < 3; ++c) {
    CHECK(bn.running_mean().get({c}) == doctest::Approx(0.1 * bm.get({c})).epsilon(1e-5));
    CHECK(bn.running_var().get({c}) == doctest::Approx(0.9 + 0.1 * bv.get({c})).epsilon(1e-5));
  }
  CHECK(bn.num_batches_tracked().item() == 1);

  // Evaluation: y = (x - running_mean) / sqrt(running_var + eps); nothing is updated.
  bn.eval();
  Tensor rm = bn.running_mean().clone(), rv = bn.running_var().clone();
  Var z = bn(Var(x));
  for (int c = 0; c < 3; ++c) {
    const double expect = (x.get({1, c, 2, 3}) - rm.get({c})) / std::sqrt(rv.get({c}) + 1e-5);
    CHECK(z.data().get({1, c, 2, 3}) == doctest::Approx(expect).epsilon(1e-5));
  }
  CHECK(testing::bitwise_equal(bn.running_mean(), rm));
  CHECK(bn.num_batches_tracked().item() == 1);

  // A synchronized BatchNorm hands its per-channel sums to the all-reduce.
  int calls = 0;
  bn.train();
  bn.set_all_reduce([&](Tensor& sums) { ++calls; });
  Var s = bn(Var(x));
  CHECK(calls > 0);
  CHECK(testing::rel_err(s.data(), y.data()) < 1e-6);  // one rank: same as unsynchronized

  // The whole network: switching mode switches every BatchNorm.
  UNetOptions o;
  o.depth = 2;
  o.width = 4;
  UNet net(o);
  Var in(randn({2, 1, 8, 8}, 5));
  Tensor train_out = net(in).data();
  net.eval();
  Tensor eval_out = net(in).data();
  CHECK(testing::rel_err(eval_out, train_out) > 1e-2);
  Tensor eval_again = net(in).data();
  CHECK(testing::bitwise_equal(eval_again, eval_out));  // eval mode does not change the state
}

}  // TEST_SUITE
