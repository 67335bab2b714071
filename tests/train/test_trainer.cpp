// tests/train/test_trainer.cpp — the library's Trainer on a tiny W1: its first loss is the PDE
// loss of the first global batch by hand; stepping in pieces equals one fit(); a resumed run
// continues bit for bit; checkpoints are written atomically with weights-only model.safetensors
// beside them that loads strictly.
#include <doctest/doctest.h>

#include <signal.h>

#include <filesystem>

#include "dfx.h"
#include "models/checkpoint.h"
#include "train/memory.h"
#include "train/signals.h"
#include "tests/models/model_test_util.h"

using namespace dfx;

namespace {
struct Run {
  std::vector<double> losses;
  std::vector<int64_t> steps;
};

train::TrainConfig tiny(const std::string& out) {
  train::TrainConfig c;
  c.model = {.depth = 2, .width = 4, .dtype = DType::Float64, .seed = 3};
  c.batch = 3;
  c.samples = 7;
  c.steps = 6;
  c.seed = 3;
  c.out = out;
  c.eval_samples = 2;
  c.optimizer.name = "adam";
  c.schedule.kind = optim::Schedule::Kind::Cosine;
  return c;
}

std::shared_ptr<pde::Problem> w1(int64_t res = 8) {
  return pde::make_problem({.name = "poisson2d", .res = res, .seed = 3});
}

std::unique_ptr<train::Trainer> make(const train::TrainConfig& c, Run& run, int64_t res = 8) {
  auto model = train::build_unet(c.model, 2, Device::cpu(), c.optimizer.name);
  auto t = std::make_unique<train::Trainer>(c, model, w1(res), dist::make_local());
  t->callbacks().on_step = [&run](const train::StepInfo& s) {
    run.losses.push_back(s.loss);
    run.steps.push_back(s.step);
  };
  return t;
}
}  // namespace

TEST_SUITE("train") {
TEST_CASE("Trainer: the first loss by hand, pieces equal one fit, resume continues bit for bit") {
  const std::string dir = (std::filesystem::temp_directory_path() / "dfx_test_trainer").string();
  std::filesystem::remove_all(dir);
  train::TrainConfig c = tiny(dir + "/a");
  c.checkpoint_every = 2;

  // The first step's loss is W1's loss of the first global batch at the initial weights.
  Run a;
  auto ta = make(c, a);
  std::vector<int64_t> first = ta->batch_indices(0);
  REQUIRE(first.size() == 3);
  double by_hand;
  {
    auto model = train::build_unet(c.model, 2, Device::cpu());
    auto p = w1();
    Tensor x = p->input(std::vector<uint64_t>(first.begin(), first.end()), DType::Float64);
    by_hand = p->loss((*model)(Var(x)), x, 3).item();
  }
  train::TrainResult ra = ta->fit();
  CHECK(ra.reason == train::StopReason::Done);
  REQUIRE(a.losses.size() == 6);
  CHECK(a.losses[0] == by_hand);
  CHECK(a.losses[5] < a.losses[0]);
  CHECK(ta->held_out().summary.mean > 0);
  CHECK(std::filesystem::exists(dir + "/a/config.json"));
  CHECK(std::filesystem::exists(dir + "/a/checkpoints/step_000004.safetensors"));

  // The same run in pieces of 1, 2 and 3 steps.
  Run b;
  train::TrainConfig cb = tiny("");
  auto tb = make(cb, b);
  for (int64_t n : {1, 2, 3}) CHECK(tb->train(n).steps_done == (n == 1 ? 1 : n == 2 ? 3 : 6));
  CHECK(b.losses == a.losses);

  // Resumed from step 4: the last two losses and the final weights equal the uninterrupted run's.
  Run r;
  train::TrainConfig cr = tiny("");
  cr.resume = dir + "/a/checkpoints/step_000004.safetensors";
  auto tr = make(cr, r);
  CHECK(tr->step() == 4);
  tr->fit();
  REQUIRE(r.losses.size() == 2);
  CHECK(r.losses[0] == a.losses[4]);
  CHECK(r.losses[1] == a.losses[5]);
  CHECK(r.steps == std::vector<int64_t>{5, 6});
  auto wa = ta->model().state_dict(), wr = tr->model().state_dict();
  for (size_t i = 0; i < wa.size(); ++i)
    CHECK(wa[i].second.to_vector() == wr[i].second.to_vector());

  // Weights only beside the run checkpoint: no optimiser tensors, strict load into a new U-Net.
  auto weights = nn::load_safetensors(dir + "/a/checkpoints/model.safetensors");
  for (const auto& [k, t] : weights) CHECK(k.rfind("optim.", 0) != 0);
  auto fresh = train::build_unet(c.model, 2, Device::cpu());
  nn::load_state_dict(*fresh, weights, true, "model.safetensors");
  for (const auto& entry : std::filesystem::directory_iterator(dir + "/a/checkpoints"))
    CHECK(entry.path().string().find(".tmp") == std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("Trainer: a stop request ends train() after the step with a checkpoint that resumes; "
          "the run directory is locked while the Trainer lives") {
  const std::string dir = (std::filesystem::temp_directory_path() / "dfx_test_stop").string();
  std::filesystem::remove_all(dir);
  Run full;
  auto tf = make(tiny(""), full);
  tf->fit();

  train::TrainConfig c = tiny(dir);
  c.stop_on_signal = true;
  Run a;
  auto ta = make(c, a);
  CHECK_THROWS_WITH_AS(make(c, a), doctest::Contains("is in use by another run"), Error);
  ta->callbacks().on_step = [&](const train::StepInfo& s) {
    a.losses.push_back(s.loss);
    if (s.step == 2) train::request_stop(SIGTERM);
  };
  train::TrainResult r = ta->train(6);
  train::clear_stop_request();
  CHECK(r.reason == train::StopReason::Interrupted);
  CHECK(r.signal == SIGTERM);
  CHECK(r.steps_done == 2);
  CHECK(r.checkpoint == dir + "/checkpoints/last.safetensors");
  CHECK(train::read_checkpoint_metadata(r.checkpoint).step == 2);
  ta.reset();
  CHECK(!std::filesystem::exists(dir + "/.lock"));

  Run b;
  train::TrainConfig cr = tiny("");
  cr.resume = dir + "/checkpoints/last.safetensors";
  auto tr = make(cr, b);
  tr->fit();
  REQUIRE(b.losses.size() == 4);
  CHECK(b.losses[3] == full.losses[5]);
  std::filesystem::remove_all(dir);
}

TEST_CASE("Trainer precise BN keeps the re-estimated statistics only when they lower the "
          "evaluation-mode loss") {
  Run run;
  train::TrainConfig c = tiny("");
  auto t = make(c, run);
  t->train(6);
  auto stats = [&] {
    std::vector<std::vector<double>> v;
    for (nn::BatchNorm* bn : nn::batch_norm_layers(t->model()))
      for (const Tensor* s : {&bn->running_mean(), &bn->running_var()}) v.push_back(s->to_vector());
    return v;
  };
  // The evaluation-mode loss by hand on batches 0 and 1.
  {
    auto p = w1();
    double by_hand = 0;
    t->model().eval();
    for (int64_t k = 0; k < 2; ++k) {
      std::vector<int64_t> idx = t->batch_indices(k);
      Tensor x = p->input(std::vector<uint64_t>(idx.begin(), idx.end()), DType::Float64);
      by_hand += p->loss(t->model()(Var(x)), x, static_cast<int64_t>(idx.size())).item() / 2;
    }
    t->model().train();
    CHECK(t->eval_mode_loss(2) == doctest::Approx(by_hand).epsilon(1e-12));
  }
  // Running means off by 3 and variances 100x too small: every normalised activation is
  // pushed far out, a bad evaluation-mode network, which re-estimating fixes.
  for (nn::BatchNorm* bn : nn::batch_norm_layers(t->model())) {
    copy_(bn->running_mean(), ad::add(Var(bn->running_mean()), 3.0).data());
    copy_(bn->running_var(), ad::mul(Var(bn->running_var()), 0.01).data());
  }
  const double spoiled = t->eval_mode_loss(2);
  const auto before = stats();
  train::Trainer::PreciseBn r = t->precise_bn(2);
  CHECK(r.loss_before == spoiled);
  CHECK(r.kept);
  CHECK(r.loss_after < r.loss_before);
  CHECK(stats() != before);
  CHECK(t->eval_mode_loss(2) == r.loss_after);
  // Again at the same weights: the same statistics, no lower loss, so the current ones stay
  // (bit for bit) and the loss is unchanged.
  const auto kept = stats();
  train::Trainer::PreciseBn again = t->precise_bn(2);
  CHECK_FALSE(again.kept);
  CHECK(again.loss_before == r.loss_after);
  CHECK(stats() == kept);
  CHECK(t->eval_mode_loss(2) == again.loss_before);
}

TEST_CASE("Trainer refuses a configuration it cannot run, naming what is wrong") {
  train::TrainConfig c = tiny("");
  c.batch = 0;
  Run r;
  CHECK_THROWS_WITH_AS(make(c, r), doctest::Contains("--batch must be >= 1"), Error);
  c = tiny("");
  c.steps = -5;
  CHECK_THROWS_WITH_AS(make(c, r), doctest::Contains("--steps must be >= 1"), Error);
  c = tiny("");
  c.schedule.gamma = -2;
  CHECK_THROWS_WITH_AS(make(c, r), doctest::Contains("--gamma must be a finite factor > 0"), Error);
  c = tiny("");
  c.batch = int64_t{1} << 40;  // terabytes of activations
  CHECK_THROWS_WITH_AS(make(c, r), doctest::Contains("of memory per rank"), Error);
  train::ModelConfig m{.depth = 2, .width = 4, .bn_recompute = true};
  CHECK_THROWS_WITH_AS(train::build_unet(m, 2, Device::cpu(), "newton-cg"),
                       doctest::Contains("cannot be differentiated twice"), Error);
}
}

TEST_SUITE("train") {
TEST_CASE("multigrid cycles visit the levels in the multigrid orders") {
  using train::Cycle;
  using V = std::vector<int>;
  CHECK(train::cycle_levels(3, Cycle::HalfV) == V{0, 1, 2});
  CHECK(train::cycle_levels(3, Cycle::V) == V{2, 1, 0, 1, 2});
  CHECK(train::cycle_levels(3, Cycle::W) == V{2, 1, 0, 1, 0, 1, 2});
  CHECK(train::cycle_levels(3, Cycle::F) == V{0, 1, 0, 1, 2, 1, 0, 1, 2});
  CHECK(train::cycle_levels(1, Cycle::W) == V{0});
  CHECK(train::parse_cycle("half-v") == Cycle::HalfV);
  CHECK_THROWS_WITH_AS(train::parse_cycle("x"), doctest::Contains("expected half-v, v, w or f"), Error);
}

TEST_CASE("multigrid training: each level's loss at its resolution, the same weights throughout, "
          "resume mid-cycle bit for bit") {
  const std::string dir = (std::filesystem::temp_directory_path() / "dfx_test_multigrid").string();
  std::filesystem::remove_all(dir);
  train::TrainConfig c = tiny(dir);
  c.steps = 0;
  c.levels = {{4, 2, 1.0}, {8, 1, 0.5}};
  c.cycle = train::Cycle::V;  // 8, 4, 8: phases 8 x 1, 4 x 2, 8 x 1
  c.checkpoint_every = 2;
  Run a;
  auto ta = make(c, a);
  REQUIRE(ta->phases().size() == 3);
  CHECK(ta->total_steps() == 4);
  CHECK(ta->phase_at(0).res == 8);
  CHECK(ta->phase_at(1).res == 4);
  CHECK(ta->phase_at(2).res == 4);
  CHECK(ta->phase_at(3).res == 8);
  std::vector<int64_t> res;
  ta->callbacks().on_step = [&](const train::StepInfo& s) {
    a.losses.push_back(s.loss);
    res.push_back(s.res);
  };
  ta->fit();
  CHECK(res == std::vector<int64_t>{8, 4, 4, 8});
  // Step 2 runs at N = 4 after one step at N = 8: its loss is the N = 4 loss of the weights then.
  {
    Run b;
    train::TrainConfig cb = c;
    cb.out = "";
    auto tb = make(cb, b);
    tb->train(1);
    auto p4 = pde::make_problem({.name = "poisson2d", .res = 4, .seed = 3});
    std::vector<int64_t> idx = tb->batch_indices(1);
    Tensor x = p4->input(std::vector<uint64_t>(idx.begin(), idx.end()), DType::Float64);
    const double by_hand = p4->loss(tb->model()(Var(x)), x, static_cast<int64_t>(idx.size())).item();
    tb->train(1);
    CHECK(b.losses[1] == doctest::Approx(by_hand).epsilon(1e-12));
    CHECK(b.losses[1] == a.losses[1]);
  }
  // Resume from step 2 (inside the V-cycle, between the two N = 4 steps and N = 8).
  Run r;
  train::TrainConfig cr = c;
  cr.out = "";
  cr.resume = dir + "/checkpoints/step_000002.safetensors";
  auto tr = make(cr, r);
  tr->fit();
  REQUIRE(r.losses.size() == 2);
  CHECK(r.losses[0] == a.losses[2]);
  CHECK(r.losses[1] == a.losses[3]);

  train::TrainConfig bad = c;
  bad.out = "";
  bad.levels = {{4, 2, 1.0}, {16, 1, 1.0}};
  CHECK_THROWS_WITH_AS(make(bad, r), doctest::Contains("must be the run's resolution --res 8"), Error);
  std::filesystem::remove_all(dir);
}
}

TEST_SUITE("train") {
TEST_CASE("multigrid with depth growth: a level added at each finer level, its loss by hand, "
          "resume across the growth bit for bit") {
  const std::string dir = (std::filesystem::temp_directory_path() / "dfx_test_grow").string();
  std::filesystem::remove_all(dir);
  train::TrainConfig c = tiny(dir);
  c.steps = 0;
  c.levels = {{4, 2, 1.0}, {8, 2, 0.5}};  // depth 2 at N = 4, depth 3 at N = 8
  c.grow_depth = true;
  c.checkpoint_every = 1;
  c.keep_checkpoints = 0;
  Run a;
  auto ta = make(c, a);
  REQUIRE(ta->phases().size() == 2);
  CHECK(ta->phases()[0].depth == 2);
  CHECK(ta->phases()[1].depth == 3);
  ta->fit();
  REQUIRE(a.losses.size() == 4);
  auto* grown = dynamic_cast<nn::UNet*>(&ta->model());
  REQUIRE(grown != nullptr);
  CHECK(grown->options().depth == 3);
  CHECK(grown->options().grown == 1);
  CHECK(ta->held_out().summary.mean > 0);
  CHECK(train::read_checkpoint_metadata(dir + "/checkpoints/step_000001.safetensors")
            .config.value("grown_levels", -1) == -1);
  CHECK(train::read_checkpoint_metadata(dir + "/checkpoints/step_000003.safetensors")
            .config.value("grown_levels", -1) == 1);
  // Step 3 (the first at N = 8) is the N = 8 loss of the depth-2 weights after two steps, grown.
  {
    Run b;
    train::TrainConfig cb = c;
    cb.out = "";
    auto tb = make(cb, b);
    tb->train(2);
    auto* small = dynamic_cast<nn::UNet*>(&tb->model());
    REQUIRE(small != nullptr);
    CHECK(small->options().depth == 2);
    std::shared_ptr<nn::UNet> g = nn::grow_unet(*small);
    auto p8 = w1(8);
    std::vector<int64_t> idx = tb->batch_indices(2);
    Tensor x = p8->input(std::vector<uint64_t>(idx.begin(), idx.end()), DType::Float64);
    const double by_hand = p8->loss((*g)(Var(x)), x, static_cast<int64_t>(idx.size())).item();
    CHECK(a.losses[2] == doctest::Approx(by_hand).epsilon(1e-12));
    CHECK(a.losses[1] != a.losses[2]);
  }
  // Resumed before the growth (step 1) and after it (step 3): the same losses as the whole run.
  for (int64_t from : {1, 3}) {
    Run r;
    train::TrainConfig cr = c;
    cr.out = "";
    char name[64];
    std::snprintf(name, sizeof name, "/checkpoints/step_%06lld.safetensors", (long long)from);
    cr.resume = dir + name;
    auto tr = make(cr, r);
    tr->fit();
    REQUIRE(r.losses.size() == static_cast<size_t>(4 - from));
    for (size_t i = 0; i < r.losses.size(); ++i) CHECK(r.losses[i] == a.losses[from + i]);
    CHECK(testing::bitwise_equal(tr->model().parameter("encoder.0.conv1.weight").data(),
                                 ta->model().parameter("encoder.0.conv1.weight").data()));
  }
  // Refusals: other cycles, levels that do not double, no levels.
  Run r;
  train::TrainConfig bad = c;
  bad.out = "";
  bad.cycle = train::Cycle::V;
  CHECK_THROWS_WITH_AS(make(bad, r), doctest::Contains("--grow-depth needs --cycle half-v"), Error);
  bad = c;
  bad.out = "";
  bad.levels = {{4, 2, 1.0}, {16, 2, 1.0}};
  CHECK_THROWS_WITH_AS(make(bad, r, 16), doctest::Contains("must double"), Error);
  bad = c;
  bad.out = "";
  bad.levels.clear();
  bad.steps = 2;
  CHECK_THROWS_WITH_AS(make(bad, r), doctest::Contains("--grow-depth needs a multigrid schedule"), Error);
  std::filesystem::remove_all(dir);
}
}

TEST_SUITE("train") {
TEST_CASE("the Trainer's Gauss-Newton product is J^T C J with J by central differences") {
  train::TrainConfig c = tiny("");
  c.eval_samples = 0;
  Run run;
  auto t = make(c, run);
  auto params = t->model().parameters();
  std::vector<Tensor> v, w;
  for (size_t i = 0; i < params.size(); ++i) {
    v.push_back(uniform(params[i].shape(), -1, 1, 31, i, 0, DType::Float64));
    w.push_back(uniform(params[i].shape(), -1, 1, 32, i, 0, DType::Float64));
  }
  std::vector<Tensor> gv = t->gauss_newton(v);
  double wgv = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    auto a = w[i].to_vector(), b = gv[i].to_vector();
    for (size_t k = 0; k < a.size(); ++k) wgv += a[k] * b[k];
  }
  // J x = (u(theta + eps x) - u(theta - eps x)) / 2 eps on step 0's batch (train-mode BN).
  std::vector<int64_t> idx = t->batch_indices(0);
  auto p = w1();
  Tensor x = p->input(std::vector<uint64_t>(idx.begin(), idx.end()), DType::Float64);
  const double eps = 1e-5;
  auto output_at = [&](const std::vector<Tensor>& dir, double s) {
    std::vector<Tensor> saved;
    for (size_t i = 0; i < params.size(); ++i) {
      saved.push_back(params[i].data().clone());
      auto a = params[i].data().to_vector(), d = dir[i].to_vector();
      for (size_t k = 0; k < a.size(); ++k) a[k] += s * d[k];
      copy_(params[i].data(), from_vector<double>(a, params[i].shape()));
    }
    ad::NoGradGuard ng;
    Tensor u = t->model()(Var(x)).data().clone();
    for (size_t i = 0; i < params.size(); ++i) copy_(params[i].data(), saved[i]);
    return u.to_vector();
  };
  auto jac = [&](const std::vector<Tensor>& dir) {
    auto plus = output_at(dir, eps), minus = output_at(dir, -eps);
    for (size_t k = 0; k < plus.size(); ++k) plus[k] = (plus[k] - minus[k]) / (2 * eps);
    return plus;
  };
  Tensor u0;
  {
    ad::NoGradGuard ng;
    u0 = t->model()(Var(x)).data().clone();
  }
  auto jv = jac(v), jw = jac(w);
  Tensor cjv = p->curvature(u0, x, static_cast<int64_t>(idx.size()))(from_vector<double>(jv, u0.shape()));
  double expect = 0;
  auto c_jv = cjv.to_vector();
  for (size_t k = 0; k < jw.size(); ++k) expect += jw[k] * c_jv[k];
  CHECK(std::abs(expect) > 1.0);  // not a vacuous comparison
  CHECK(wgv == doctest::Approx(expect).epsilon(1e-6));
}
}

TEST_SUITE("train") {
TEST_CASE("output preconditioning: one SGD step moves the weights by -lr J^T (B + c I) dL/du, "
          "the logged loss is the plain one") {
  for (auto [blend, vcycles] : {std::pair{0.0, 1}, std::pair{0.5, 1}, std::pair{0.5, 2}}) {
    CAPTURE(blend);
    CAPTURE(vcycles);
    train::TrainConfig c = tiny("");
    c.eval_samples = 0;
    c.steps = 1;
    c.optimizer.name = "sgd";
    c.optimizer.momentum = 0;
    c.optimizer.lr = 0.05;
    c.schedule.kind = optim::Schedule::Kind::Constant;
    c.output_precondition = true;
    c.output_blend = blend;
    c.output_vcycles = vcycles;
    // At N = 8 the multigrid is one direct level (B = K^-1 whatever the cycles); N = 32 has two.
    const int64_t res = vcycles > 1 ? 32 : 8;
    Run run;
    auto t = make(c, run, res);
    auto params = t->model().parameters();
    std::vector<Tensor> before;
    for (auto& p : params) before.push_back(p.data().clone());
    // The expected direction by hand at the initial weights: dL/du from the output alone,
    // z = B g + c g by the problem's preconditioner, then a VJP of the network with z.
    std::vector<int64_t> idx = t->batch_indices(0);
    auto p = w1(res);
    Tensor x = p->input(std::vector<uint64_t>(idx.begin(), idx.end()), DType::Float64);
    auto fresh = train::build_unet(c.model, 2, Device::cpu(), "sgd");
    Var u = (*fresh)(Var(x));
    Var u_out(u.data().clone(), true);
    Var l = p->loss(u_out, x, static_cast<int64_t>(idx.size()));
    l.backward();
    const Tensor g = u_out.grad().data();
    const auto bg = p->preconditioner(u.data(), x, vcycles)(g).to_vector(), gv = g.to_vector();
    if (vcycles > 1) {  // a second cycle changes B g: the option reaches the preconditioner
      const auto b1 = p->preconditioner(u.data(), x, 1)(g).to_vector();
      double diff = 0, size = 0;
      for (size_t k = 0; k < b1.size(); ++k) {
        diff = std::max(diff, std::abs(bg[k] - b1[k]));
        size = std::max(size, std::abs(b1[k]));
      }
      CHECK(diff > 1e-3 * size);
    }
    std::vector<double> z(bg.size());
    for (size_t k = 0; k < z.size(); ++k) z[k] = bg[k] + blend * gv[k];
    u.backward(Var(from_vector<double>(z, u.shape())));
    auto expected = fresh->parameters();

    CHECK(t->fit().reason == train::StopReason::Done);
    REQUIRE(run.losses.size() == 1);
    CHECK(run.losses[0] == doctest::Approx(l.item()).epsilon(1e-12));
    double worst = 0, scale = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      auto now = params[i].data().to_vector(), was = before[i].to_vector();
      auto dir = expected[i].grad().data().to_vector();
      for (size_t k = 0; k < now.size(); ++k) {
        worst = std::max(worst, std::abs((now[k] - was[k]) + 0.05 * dir[k]));
        scale = std::max(scale, std::abs(0.05 * dir[k]));
      }
    }
    CHECK(scale > 1e-4);  // the step moved the weights
    CHECK(worst <= 1e-12 * std::max(1.0, scale));
  }
  train::TrainConfig bad = tiny("");
  bad.output_precondition = true;
  bad.optimizer.name = "lbfgs";
  auto model = train::build_unet(bad.model, 2, Device::cpu(), "lbfgs");
  CHECK_THROWS_WITH_AS(train::Trainer(bad, model, w1(), dist::make_local()),
                       doctest::Contains("needs an optimiser that only follows the gradient"), dfx::Error);
  auto burgers = pde::make_problem({.name = "burgers", .res = 8, .boundary_factor = 0.0});
  CHECK_THROWS_WITH_AS(burgers->preconditioner(Tensor(), burgers->input({0}, DType::Float64), 1),
                       doctest::Contains("--boundary-factor > 0"), dfx::Error);
}

TEST_CASE("evaluation diagnostics: the energy gap is >= 0 and 0 at the reference, batch-moment BN "
          "leaves the running statistics alone, precise BN averages the batch moments") {
  auto p = w1();
  train::ModelConfig mc{.depth = 2, .width = 4, .dtype = DType::Float64, .seed = 5};
  auto model = train::build_unet(mc, 2, Device::cpu());
  // Some steps of training mode so the running statistics are not the initial 0 / 1.
  {
    ad::NoGradGuard ng;
    model->train();
    for (uint64_t k = 0; k < 3; ++k) (*model)(Var(p->input({k, k + 5}, DType::Float64)));
  }
  std::vector<Tensor> buffers;
  for (auto& [name, b] : model->named_buffers()) buffers.push_back(b.clone());
  train::EvalResult r = train::evaluate(*model, *p, 4, DType::Float64);
  {
    auto now = model->named_buffers();
    REQUIRE(now.size() == buffers.size());
    for (size_t i = 0; i < buffers.size(); ++i) CHECK(now[i].second.to_vector() == buffers[i].to_vector());
  }
  CHECK(r.summary.mean > 0);
  CHECK(r.summary_batch_bn.mean > 0);
  CHECK(r.summary_batch_bn.mean != r.summary.mean);
  REQUIRE(r.loss_gap.per_sample.size() == 4);
  for (double gap : r.loss_gap.per_sample) CHECK(gap > 0);  // the FEM solution minimises E
  // The gap of the reference itself is the exact optimum's: zero up to the solver's tolerance.
  for (size_t i = 0; i < 4; ++i) {
    Tensor ref = r.reference.narrow(0, static_cast<int64_t>(i), 1).contiguous();
    Tensor in = r.inputs.narrow(0, static_cast<int64_t>(i), 1).contiguous().to(DType::Float64);
    CHECK(std::abs(p->loss(Var(ref), in, 1).item() - r.reference_loss[i]) < 1e-12);
    // E(u_FEM + d) - E(u_FEM) = d^T K d / 2 > 0 for a perturbation at the free nodes.
    auto d = ref.to_vector();
    for (size_t k = 0; k < d.size(); ++k) d[k] += (k % 8 != 0 && k % 8 != 7) ? 1e-3 * std::sin(k) : 0.0;
    CHECK(p->loss(Var(from_vector<double>(d, ref.shape())), in, 1).item() > r.reference_loss[i]);
  }

  // Precise BN on a bare BatchNorm: the running moments become the mean of the batch moments
  // (the unbiased variance, as training mode keeps it).
  nn::BatchNorm bn(2, 2, {}, {.dtype = DType::Float64});
  std::vector<Tensor> batches = {uniform({3, 2, 2, 2}, -1, 2, 41, 0, 0, DType::Float64),
                                 uniform({3, 2, 2, 2}, 0, 5, 42, 0, 0, DType::Float64)};
  train::precise_bn(bn, 2, [&](int64_t k) { return batches[k]; });
  CHECK(bn.momentum() == 0.1);
  for (int64_t ch = 0; ch < 2; ++ch) {
    double mean = 0, var = 0;
    for (const Tensor& b : batches) {
      auto v = b.narrow(1, ch, 1).contiguous().to_vector();
      double m = 0, s = 0;
      for (double e : v) m += e / v.size();
      for (double e : v) s += (e - m) * (e - m) / (v.size() - 1);
      mean += m / 2;
      var += s / 2;
    }
    CHECK(bn.running_mean().to_vector()[ch] == doctest::Approx(mean).epsilon(1e-12));
    CHECK(bn.running_var().to_vector()[ch] == doctest::Approx(var).epsilon(1e-12));
  }
}
}
