// tests/models/test_unet_parity.cpp — dfx's U-Net against PyTorch's (bench/torch_unet.py) through
// the committed fixtures of tools/make_fixtures.py: same weights and input, one training-mode
// forward, loss = mean(output * loss_weight), backward; output, loss, every gradient and the
// BatchNorm running statistics must match (norm-wise relative error per tensor).
#include <doctest/doctest.h>

#include <cstdio>
#include <map>

#include "autodiff/ops.h"
#include "models/checkpoint.h"
#include "models/unet.h"
#include "tests/models/model_test_util.h"

using namespace dfx;
using namespace dfx::nn;

namespace {

struct Worst {
  double err = 0;
  std::string name;
  void add(const std::string& n, double e) {
    if (e > err) err = e, name = n;
  }
};

// Runs the fixture's step in `dtype` and checks every tensor to `tol`; returns the worst errors
// (output/loss, gradients, running statistics) for the report.
void check_parity(const std::string& file, const UNetOptions& base, DType dtype, double tol) {
  const auto fx = load_safetensors_map(testing::fixture_path(file));
  UNetOptions o = base;
  o.dtype = dtype;
  o.seed = 99;  // any: the fixture's weights replace the draw
  UNet net(o);
  Named<Tensor> weights;
  for (auto& [name, t] : net.state_dict()) {
    REQUIRE_MESSAGE(fx.count(name), "fixture lacks ", name);
    weights.emplace_back(name, fx.at(name));
  }
  load_state_dict(net, weights, true, file);
  net.train();

  Var x(fx.at("input").to(dtype));
  Var w(fx.at("loss_weight").to(dtype));
  Var out = net(x);
  Var loss = ad::mean(ad::mul(out, w));
  loss.backward();

  const char* prec = dtype == DType::Float32 ? "float32" : "float64";
  Worst fwd, grads, stats;
  fwd.add("output", testing::rel_err(out.data(), fx.at("output")));
  fwd.add("loss", testing::rel_err(loss.data(), fx.at("loss")));
  for (auto& [name, p] : net.named_parameters()) {
    INFO(file, " ", prec, " grad.", name);
    REQUIRE(p.grad().defined());
    const double e = testing::rel_err(p.grad().data(), fx.at("grad." + name));
    CHECK(e < tol);
    grads.add(name, e);
  }
  for (auto& [name, b] : net.named_buffers()) {
    INFO(file, " ", prec, " after.", name);
    const Tensor& ref = fx.at("after." + name);
    if (b.dtype() == DType::Int64) {
      CHECK(b.item() == ref.item());
      CHECK(b.item() == 1);
      continue;
    }
    const double e = testing::rel_err(b, ref);
    CHECK(e < tol);
    stats.add(name, e);
  }
  CHECK(fwd.err < tol);
  char line[400];
  std::snprintf(line, sizeof line,
                "%s %s: worst relative error: output/loss %.2e (%s), gradients %.2e (%s), "
                "running stats %.2e (%s); tolerance %.0e",
                file.c_str(), prec, fwd.err, fwd.name.c_str(), grads.err, grads.name.c_str(),
                stats.err, stats.name.c_str(), tol);
  MESSAGE(line);
}

}  // namespace

TEST_SUITE("models") {

// The fixtures hold float64 PyTorch results rounded to float32, so the float32 run is measured
// against the exact answer and the float64 run against its rounding (~1e-7).
TEST_CASE("parity: W1 U-Net (2-d, N=32, batch 2) against PyTorch, float32") {
  check_parity("unet2d.safetensors", UNetOptions::w1(), DType::Float32, 1e-4);
}

TEST_CASE("parity: W1 U-Net against PyTorch, float64") {
  check_parity("unet2d.safetensors", UNetOptions::w1(), DType::Float64, 1e-6);
}

TEST_CASE("parity: W2 U-Net (3-d, N=16, batch 2) against PyTorch, float32") {
  check_parity("unet3d.safetensors", UNetOptions::w2(), DType::Float32, 1e-4);
}

TEST_CASE("parity: W2 U-Net against PyTorch, float64") {
  check_parity("unet3d.safetensors", UNetOptions::w2(), DType::Float64, 1e-6);
}

}  // TEST_SUITE
