// tests/train/test_host_sync.cpp — a W1 training step (U-Net forward with training-mode batch
// norm, the FEM energy, backward, Adam) reads no tensor value on the host and writes none from
// it: host_access_count() does not move. On the CPU these accesses are free, but the step runs the
// same code on a GPU, where each one would be a host wait (tests/gpu/test_cuda_training.cpp
// asserts cuda::host_waits() == 0 there). The input batch is made before the counted step, as a
// data loader would; the loss is read after it, as a logger would.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autodiff/var.h"
#include "kernels/elementwise.h"
#include "models/unet.h"
#include "optim/optimizer.h"
#include "pde/poisson_loss.h"
#include "pde/problem.h"
#include "pde/sampler.h"

using namespace dfx;

namespace {

struct Counted {
  int64_t accesses = 0;
  double loss = 0;
};

// One step (zero_grad, loss, backward, Adam) with the accesses it made counted; the step before
// it is not (Adam's slots and the first-call set-up are allowed their host work once).
Counted counted_step(optim::Adam& opt, const std::function<ad::Var()>& loss) {
  auto step = [&] {
    opt.zero_grad();
    ad::Var l = loss();
    l.backward();
    opt.apply();
    return l;
  };
  step();
  const int64_t before = host_access_count();
  ad::Var l = step();
  Counted c{host_access_count() - before, 0};
  c.loss = l.item();
  return c;
}

}  // namespace

TEST_CASE("host sync: a W1 training step makes no host access (f32, f64, checkpointed)") {
  struct Case {
    const char* name;
    DType dtype;
    bool checkpoint, recompute_input;
    int64_t expected;  // per batch norm layer
  };
  // Batch norm rebuilding its input (--bn-recompute) reads gamma to see that it may: one access
  // per layer and forward run (a documented cost of that memory mode, not of the default step).
  for (const Case& k : {Case{"float32", DType::Float32, false, false, 0},
                        Case{"float64", DType::Float64, false, false, 0},
                        Case{"float32 checkpointed", DType::Float32, true, false, 0},
                        Case{"float32 rebuilding its input", DType::Float32, false, true, 1}}) {
    INFO(std::string(k.name));
    nn::UNetOptions u;
    u.depth = 3;
    u.width = 8;
    u.dtype = k.dtype;
    u.seed = 11;
    u.checkpoint = k.checkpoint;
    u.batch_norm.recompute_input = k.recompute_input;
    nn::UNet model(u);
    model.train();
    int64_t norms = 0;
    for (const auto& [name, t] : model.named_buffers())
      norms += name.size() > 12 && name.substr(name.size() - 12) == "running_mean";
    REQUIRE(norms == 10);  // two per block, five blocks
    optim::Adam opt(model.parameters(), optim::AdamOptions{});
    const Tensor omega = pde::omega_batch(2, 32, 5, pde::train_indices(4), k.dtype);
    // The counter itself counts: a read the step did not make shows up.
    const int64_t probe = host_access_count();
    (void)omega.to_vector();
    CHECK(host_access_count() > probe);
    const Tensor nu = kernels::unary(kernels::UnaryOp::Exp, omega);
    const Counted c =
        counted_step(opt, [&] { return pde::poisson_loss(model(ad::Var(omega)), nu, 0); });
    CHECK(c.accesses == k.expected * norms);
    CHECK(std::isfinite(c.loss));
    CHECK(c.loss != 0.0);
    // Evaluation mode (the running statistics) reads nothing either.
    model.eval();
    const int64_t before = host_access_count();
    {
      ad::NoGradGuard ng;
      (void)model(ad::Var(omega));
    }
    CHECK(host_access_count() - before == 0);
  }
}

TEST_CASE("host sync: the training step of every problem makes no host access (W1, W2, W3)") {
  for (const char* name : {"poisson2d", "poisson3d", "burgers"}) {
    INFO(std::string(name));
    pde::ProblemOptions po;
    po.name = name;
    po.res = 16;
    po.seed = 3;
    const std::shared_ptr<pde::Problem> problem = pde::make_problem(po);
    nn::UNetOptions u;
    u.dims = problem->dims();
    u.depth = 2;
    u.width = 4;
    u.seed = 5;
    nn::UNet model(u);
    model.train();
    optim::Adam opt(model.parameters(), optim::AdamOptions{});
    const Tensor x = problem->input({0, 1}, DType::Float32);  // made before, as a loader would
    const Counted c = counted_step(opt, [&] { return problem->loss(model(ad::Var(x)), x, 2); });
    CHECK(c.accesses == 0);
    CHECK(std::isfinite(c.loss));
  }
}
