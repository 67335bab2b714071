// apps/cmd_demo.cpp — `dfx demo`: a two-layer network fitted to sin(3x) with the tape and plain
// gradient descent with momentum, printing the loss as it falls. A first look at the engine.
#include <cmath>
#include <cstdio>
#include <string>

#include "apps/commands.h"
#include "dfx.h"

namespace dfx::app {

int cmd_demo(const Args& args) {
  int steps = 300;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::printf("usage: dfx demo [--steps N]\n  fits a 1-32-1 tanh network to sin(3x)\n");
      return 0;
    }
    if (args[i] == "--steps" && i + 1 < args.size()) {
      steps = std::stoi(args[++i]);
      DFX_CHECK(steps > 0, "--steps must be positive, got ", steps);
      continue;
    }
    DFX_FAIL("unknown option '", args[i], "'; expected --steps N");
  }
  const int64_t n = 128, hidden = 32;
  Tensor x = linspace(-1.0, 1.0, n).reshape({n, 1});
  std::vector<float> target(n);
  for (int64_t i = 0; i < n; ++i) target[i] = std::sin(3.0f * static_cast<float>(x.get({i, 0})));
  Tensor y = from_vector<float>(target, {n, 1});
  Var w1(uniform({1, hidden}, -1.0, 1.0, 7, 0), true), b1(zeros({hidden}), true);
  Var w2(uniform({hidden, 1}, -0.3, 0.3, 7, 1), true), b2(zeros({1}), true);
  std::vector<Var> params = {w1, b1, w2, b2};
  std::vector<Tensor> momentum;
  for (auto& p : params) momentum.push_back(zeros_like(p.data()));
  const double lr = 0.05, beta = 0.9;
  std::printf("fitting sin(3x) on [-1, 1] with a 1-%lld-1 tanh network\n",
              static_cast<long long>(hidden));
  double first = 0, last = 0;
  for (int step = 0; step <= steps; ++step) {
    Var h = ad::tanh(ad::matmul(Var(x), w1) + b1);
    Var pred = ad::matmul(h, w2) + b2;
    Var loss = ad::mean(ad::square(pred - Var(y)));
    for (auto& p : params) p.zero_grad();
    loss.backward();
    for (size_t i = 0; i < params.size(); ++i) {
      kernels::scale_(momentum[i], beta);
      kernels::axpy_(momentum[i], 1.0, params[i].grad().data());
      kernels::axpy_(params[i].mutable_data(), -lr, momentum[i]);
    }
    last = loss.item();
    if (step == 0) first = last;
    if (step % (steps / 10 > 0 ? steps / 10 : 1) == 0)
      std::printf("step %4d  loss %.6f\n", step, last);
  }
  std::printf("loss fell from %.4f to %.6f\n", first, last);
  return last < first ? 0 : 1;
}

}  // namespace dfx::app
