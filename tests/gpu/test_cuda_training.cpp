// tests/gpu/test_cuda_training.cpp — whole-model checks on the GPU against the CPU: a W1 training
// step (U-Net with training-mode batch norm, the FEM energy with hard Dirichlet columns, Adam)
// gives the same loss, every gradient and the same updated weights; the HVP through the whole
// model agrees; and the caching allocator's live bytes return to their baseline after a step.
// Skipped (not passed) without a device, through tests/gpu/main_gpu.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "autodiff/var.h"
#include "core/allocator.h"
#include "core/cuda_runtime.h"
#include "core/rng.h"
#include "kernels/elementwise.h"
#include "models/unet.h"
#include "optim/optimizer.h"
#include "pde/poisson_loss.h"
#include "pde/sampler.h"

using namespace dfx;

namespace {

const Device kGpu = Device::cuda(0);

// max |a - b| / max |b| over the whole tensor: GPU sums run in another order than the CPU's.
double rel_err(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num = std::max(num, std::abs(x[i] - y[i]));
    den = std::max(den, std::abs(y[i]));
  }
  return den > 0 ? num / den : num;
}

struct Net {
  std::shared_ptr<nn::UNet> model;
  std::vector<ad::Var> params;
};

// low_memory: activation checkpointing and (with rebuild_input) batch norm rebuilding its input.
Net make_net(DType dtype, Device device, bool low_memory = false, bool rebuild_input = true) {
  nn::UNetOptions u;
  u.depth = 3;
  u.width = 8;
  u.dtype = dtype;
  u.seed = 11;
  u.checkpoint = low_memory;
  u.batch_norm.recompute_input = low_memory && rebuild_input;
  Net n{std::make_shared<nn::UNet>(u), {}};
  if (!device.is_cpu()) n.model->to(device);
  n.model->train();
  n.params = n.model->parameters();
  return n;
}

ad::Var w1_loss(Net& n, const Tensor& omega) {
  Tensor x = omega.to(n.params[0].device());
  return pde::poisson_loss((*n.model)(ad::Var(x)), kernels::unary(kernels::UnaryOp::Exp, x), 0);
}

}  // namespace

TEST_SUITE("gpu") {

TEST_CASE("cuda: a W1 training step on the GPU matches the CPU (loss, every gradient, Adam update)") {
  // The last case runs the GPU model with activation checkpointing and batch norm rebuilding
  // its input, against the plain CPU step.
  for (auto [dt, low_memory] : {std::pair{DType::Float64, false}, std::pair{DType::Float32, false},
                                std::pair{DType::Float32, true}}) {
    const double tol = dt == DType::Float64 ? 1e-10 : 2e-4;
    INFO("dtype " << dtype_name(dt) << (low_memory ? ", low-memory modes on the GPU" : ""));
    Tensor omega = pde::omega_batch(2, 32, 5, pde::train_indices(4), dt);
    Net cpu = make_net(dt, Device::cpu()), gpu = make_net(dt, kGpu, low_memory);
    optim::AdamOptions ao;
    ao.lr = 1e-3;
    optim::Adam oc(cpu.params, ao), og(gpu.params, ao);
    ad::Var lc = w1_loss(cpu, omega), lg = w1_loss(gpu, omega);
    CHECK(std::abs(lc.item() - lg.item()) <= tol * std::abs(lc.item()));
    lc.backward();
    lg.backward();
    double worst = 0;
    std::string worst_name;
    auto names = cpu.model->named_parameters();
    for (size_t i = 0; i < cpu.params.size(); ++i) {
      REQUIRE(gpu.params[i].grad().defined());
      CHECK(gpu.params[i].grad().device() == kGpu);
      const double e = rel_err(gpu.params[i].grad().data(), cpu.params[i].grad().data());
      if (e > worst) worst = e, worst_name = names[i].first;
    }
    INFO("worst gradient: " << worst_name << " " << worst);
    CHECK(worst <= tol);
    oc.apply();
    og.apply();
    for (size_t i = 0; i < cpu.params.size(); ++i)
      CHECK(rel_err(gpu.params[i].data(), cpu.params[i].data()) <= tol);
    // Running statistics of batch norm moved identically.
    auto bc = cpu.model->named_buffers(), bg = gpu.model->named_buffers();
    REQUIRE(bc.size() == bg.size());
    for (size_t i = 0; i < bc.size(); ++i) CHECK(rel_err(bg[i].second, bc[i].second) <= tol);
  }
}

TEST_CASE("cuda: the U-Net HVP on the GPU matches the CPU, fresh and through ad::Hessian") {
  const DType dt = DType::Float64;
  Tensor omega = pde::omega_batch(2, 32, 6, pde::train_indices(3), dt);
  Net cpu = make_net(dt, Device::cpu()), gpu = make_net(dt, kGpu);
  std::vector<Tensor> vc, vg;
  for (size_t i = 0; i < cpu.params.size(); ++i) {
    vc.push_back(uniform(cpu.params[i].shape(), -1, 1, 21, i, 0, dt));
    vg.push_back(vc.back().to(kGpu));
  }
  auto hc = ad::hvp([&] { return w1_loss(cpu, omega); }, cpu.params, vc);
  ad::Hessian hg(w1_loss(gpu, omega), gpu.params);
  auto h1 = hg.apply(vg), h2 = hg.apply(vg);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < hc.size(); ++i) {
    worst = std::max({worst, rel_err(h1[i], hc[i]), rel_err(h2[i], hc[i])});
    for (double x : hc[i].to_vector()) scale = std::max(scale, std::abs(x));
  }
  CHECK(scale > 1e-8);
  CHECK(worst <= 1e-9);
}

TEST_CASE("cuda: live device memory returns to its baseline after training steps") {
  Tensor omega = pde::omega_batch(2, 32, 7, pde::train_indices(4), DType::Float32);
  Net gpu = make_net(DType::Float32, kGpu);
  optim::Adam opt(gpu.params, optim::AdamOptions{});
  auto step = [&] {
    opt.zero_grad();
    ad::Var l = w1_loss(gpu, omega);
    l.backward();
    opt.apply();
  };
  step();  // Adam's moment slots are allocated on the first step
  opt.zero_grad();
  const size_t base = memory_stats(kGpu).current_bytes;
  for (int i = 0; i < 3; ++i) step();
  opt.zero_grad();
  const MemoryStats s = memory_stats(kGpu);
  CHECK(s.current_bytes == base);
  CHECK(s.peak_bytes > base);          // the activations were really on the device
  CHECK(s.reserved_bytes >= s.peak_bytes);
}

TEST_CASE("cuda: a W1 training step makes no host wait (forward, loss, backward, Adam)") {
  // The batch is on the device before the step, as a loader's would be; the loss is read after
  // it, as a logger would. Batch norm's moments, running statistics and counts, max pooling's
  // index checks and the Dirichlet masks all stay on the device (the CPU twin of this test,
  // tests/train/test_host_sync.cpp, counts the host accesses that would be waits here).
  for (bool low_memory : {false, true}) {
    INFO("activation checkpointing " << low_memory);
    // Checkpointing only: rebuilding batch norm's input reads gamma (a documented wait).
    Net gpu = make_net(DType::Float32, kGpu, low_memory, /*rebuild_input=*/false);
    optim::Adam opt(gpu.params, optim::AdamOptions{});
    const Tensor x = pde::omega_batch(2, 32, 9, pde::train_indices(4), DType::Float32).to(kGpu);
    const Tensor nu = kernels::unary(kernels::UnaryOp::Exp, x);
    auto step = [&] {
      opt.zero_grad();
      ad::Var l = pde::poisson_loss((*gpu.model)(ad::Var(x)), nu, 0);
      l.backward();
      opt.apply();
      return l;
    };
    step();  // the first step sets up: cuDNN's choices, Adam's slots, the allocator's blocks
    const int64_t waits = cuda::host_waits(), accesses = host_access_count();
    ad::Var l = step();
    CHECK(cuda::host_waits() - waits == 0);
    CHECK(host_access_count() - accesses == 0);
    // The counter counts: reading the loss is one wait.
    CHECK(std::isfinite(l.item()));
    CHECK(cuda::host_waits() - waits >= 1);
  }
}

}  // TEST_SUITE
