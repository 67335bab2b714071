// tests/optim/test_kfac.cpp — K-FAC: the im2col rows of every convolution kind multiply to the
// tape's weight gradient; the step solves the damped Kronecker system (checked against a dense
// solve) and keeps running averages of the factors; the Trainer's K-FAC trains W1.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "dfx.h"
#include "tests/dense_solve.h"
#include "tests/tensor_diff.h"

using namespace dfx;

namespace {
using testing::dense_solve;
using testing::max_abs_diff;

struct ConvCase {
  const char* what;
  int dims;
  bool transposed, bias;
  std::vector<int64_t> kernel;
  ad::ConvParams p;
  std::vector<int64_t> output_padding;
  int64_t size;
};

// A random symmetric positive definite n x n matrix.
Tensor spd(int64_t n, uint64_t stream) {
  Tensor m = uniform({n, n}, -1, 1, 31, stream, 0, DType::Float64);
  std::vector<double> s = kernels::matmul(m, m.t()).contiguous().to_vector();
  for (int64_t i = 0; i < n; ++i) s[i * n + i] += 0.5;
  return from_vector<double>(s, {n, n});
}
}  // namespace

TEST_SUITE("optim") {
TEST_CASE("K-FAC rows: left_rows^T right_rows is the weight gradient of every convolution kind") {
  const std::vector<ConvCase> cases = {
      {"2-d, 3x3, padding 1, bias folded", 2, false, true, {3}, {{1}, {1}, {1}}, {0}, 5},
      {"1-d, stride 2, dilation 2, padding 1", 1, false, false, {3}, {{2}, {1}, {2}}, {0}, 9},
      {"3-d, 3x3x3, padding 1, bias folded", 3, false, true, {3}, {{1}, {1}, {1}}, {0}, 4},
      {"2-d, 1x1 head", 2, false, true, {1}, {{1}, {0}, {1}}, {0}, 4},
      {"2-d transposed, 2x2 stride 2", 2, true, true, {2}, {{2}, {0}, {1}}, {0}, 3},
      {"2-d transposed, 3x3 stride 2, padding 1, output padding 1", 2, true, false, {3},
       {{2}, {1}, {1}}, {1}, 3},
  };
  for (const ConvCase& c : cases) {
    CAPTURE(c.what);
    const int64_t n = 2, cin = 3, cout = 2;
    Shape xs = {n, cin}, ws = c.transposed ? Shape{cin, cout} : Shape{cout, cin};
    for (int d = 0; d < c.dims; ++d) xs.push_back(c.size), ws.push_back(c.kernel[0]);
    Var x(uniform(xs, -1, 1, 5, 0, 0, DType::Float64));
    Var w(uniform(ws, -1, 1, 5, 1, 0, DType::Float64), true);
    Var b(uniform({cout}, -1, 1, 5, 2, 0, DType::Float64), true);
    Var y = c.transposed ? ad::conv_transpose(x, w, c.bias ? b : Var(), c.p, c.output_padding)
                         : ad::conv(x, w, c.bias ? b : Var(), c.p);
    Tensor gy = uniform(y.shape(), -1, 1, 5, 3, 0, DType::Float64);
    std::vector<Var> wrt = {w};
    if (c.bias) wrt.push_back(b);
    std::vector<Var> g = ad::grad({y}, wrt, {Var(gy)});
    const bool fold = c.bias && !c.transposed;
    optim::ConvRows rows = optim::conv_rows(x.data(), gy, c.transposed, fold, c.kernel, c.p.stride,
                                            c.p.padding, c.p.dilation);
    CHECK(rows.activation_left == c.transposed);
    Tensor m = kernels::matmul(rows.left_rows.t(), rows.right_rows).contiguous();
    const int64_t cols = w.numel() / w.size(0);
    REQUIRE(m.shape() == Shape{w.size(0), cols + (fold ? 1 : 0)});
    Tensor mw = m.narrow(1, 0, cols).contiguous().reshape(w.shape());
    CHECK(max_abs_diff(mw, g[0].data()) <= 1e-12);
    CHECK(max_abs_diff(mw, zeros_like(mw)) > 0.1);
    if (fold) CHECK(max_abs_diff(m.narrow(1, cols, 1).contiguous().reshape({cout}), g[1].data()) <= 1e-12);
    // A float32 network's rows stay float32 (its factor products run in float32) and hold the
    // same numbers rounded.
    optim::ConvRows r32 = optim::conv_rows(x.data().to(DType::Float32), gy.to(DType::Float32),
                                           c.transposed, fold, c.kernel, c.p.stride, c.p.padding,
                                           c.p.dilation);
    CHECK(r32.left_rows.dtype() == DType::Float32);
    CHECK(r32.right_rows.dtype() == DType::Float32);
    CHECK(max_abs_diff(r32.right_rows.to(DType::Float64), rows.right_rows) <= 1e-6);
    CHECK(max_abs_diff(kernels::gram(r32.right_rows).to(DType::Float64),
                       kernels::gram(rows.right_rows)) <= 1e-4);
  }
}

TEST_CASE("K-FAC steps along the damped Kronecker solve and averages its factors") {
  // W [3, 2] with bias b [3] folded in (block 0), and c [4] on the diagonal.
  Var W(uniform({3, 2}, -1, 1, 7, 0, 0, DType::Float64), true);
  Var b(uniform({3}, -1, 1, 7, 1, 0, DType::Float64), true);
  Var c(uniform({4}, -1, 1, 7, 2, 0, DType::Float64), true);
  Tensor target = uniform({3, 2}, -1, 1, 7, 3, 0, DType::Float64);
  auto loss = [&] {
    return ad::add(ad::add(ad::sum(ad::square(ad::sub(W, Var(target)))), ad::sum(ad::square(b))),
                   ad::sum(ad::square(ad::mul(c, 2.0))));
  };
  optim::FunctionObjective obj(
      [&](bool need_grad) {
        Var l = loss();
        if (need_grad) {
          auto g = ad::grad({l}, {W, b, c});
          W.set_grad(g[0]), b.set_grad(g[1]), c.set_grad(g[2]);
        }
        return l.item();
      },
      {}, {},
      [&](uint64_t draw) {
        optim::KroneckerStatistics s;
        s.blocks.push_back({0, 1, spd(3, 10 + draw), spd(3, 20 + draw)});
        s.sampled_gradient = {uniform({3, 2}, -1, 1, 8, draw, 0, DType::Float64),
                              uniform({3}, -1, 1, 8, 10 + draw, 0, DType::Float64),
                              uniform({4}, -1, 1, 8, 20 + draw, 0, DType::Float64)};
        return s;
      });
  optim::KFACOptions o;
  o.lr = 0.3, o.damping = 0.05, o.momentum = 0, o.kl_clip = 0, o.inverse_every = 1, o.ema = 0.9;
  optim::KFAC k({W, b, c}, o);
  CHECK(k.needs_kronecker_factors());
  const Tensor W0 = W.data().clone(), b0 = b.data().clone(), c0 = c.data().clone();
  obj.evaluate(true);
  const std::vector<Tensor> g0 = {W.grad().data().clone(), b.grad().data().clone(), c.grad().data().clone()};
  k.step(obj);

  // The dense solve of (L + pi sqrt(l) I) kron (R + sqrt(l) / pi I) vec(D) = vec([gW | gb]).
  const Tensor L = spd(3, 10), R = spd(3, 20);
  double tl = 0, tr = 0;
  for (int64_t i = 0; i < 3; ++i) tl += L.get({i, i}) / 3, tr += R.get({i, i}) / 3;
  const double pi = std::sqrt(tl / tr), root = std::sqrt(o.damping);
  std::vector<double> kron(81), rhs(9);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t p = 0; p < 3; ++p)
        for (int64_t q = 0; q < 3; ++q)
          kron[(i * 3 + j) * 9 + p * 3 + q] = (L.get({i, p}) + (i == p) * pi * root) *
                                              (R.get({j, q}) + (j == q) * root / pi);
  for (int64_t i = 0; i < 3; ++i) {
    rhs[i * 3 + 0] = g0[0].get({i, 0}), rhs[i * 3 + 1] = g0[0].get({i, 1});
    rhs[i * 3 + 2] = g0[1].get({i});
  }
  const std::vector<double> d = dense_solve(kron, rhs);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 2; ++j)
      CHECK(W.data().get({i, j}) == doctest::Approx(W0.get({i, j}) - o.lr * d[i * 3 + j]).epsilon(1e-12));
    CHECK(b.data().get({i}) == doctest::Approx(b0.get({i}) - o.lr * d[i * 3 + 2]).epsilon(1e-12));
  }
  // c: the gradient over the sampled diagonal plus the damping.
  const Tensor sc = uniform({4}, -1, 1, 8, 20, 0, DType::Float64);
  for (int64_t i = 0; i < 4; ++i) {
    const double s2 = sc.get({i}) * sc.get({i});
    CHECK(c.data().get({i}) == doctest::Approx(c0.get({i}) - o.lr * g0[2].get({i}) / (s2 + o.damping)).epsilon(1e-12));
  }
  // The second step averages: left = 0.9 L(draw 0) + 0.1 L(draw 1).
  k.step(obj);
  const Tensor left = k.state().at("kfac_left.0"), L1 = spd(3, 11);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 3; ++j)
      CHECK(left.get({i, j}) == doctest::Approx(0.9 * L.get({i, j}) + 0.1 * L1.get({i, j})).epsilon(1e-12));
  CHECK(k.state().at("kfac_bias.0").get({0}) == 1);
}

TEST_CASE("Trainer: K-FAC trains W1 and resumes bit for bit") {
  const std::string dir = (std::filesystem::temp_directory_path() / "dfx_test_kfac").string();
  std::filesystem::remove_all(dir);
  train::TrainConfig c;
  c.model = {.depth = 2, .width = 4, .dtype = DType::Float64, .seed = 3};
  c.batch = 4, c.samples = 8, c.steps = 12, c.seed = 3, c.eval_samples = 4;
  c.optimizer.name = "kfac";
  c.optimizer.hessian_every = 3;  // inversions at steps 0, 3, 6, 9: the resume at 4 reuses one
  c.checkpoint_every = 4;
  c.out = dir + "/a";
  auto problem = [] { return pde::make_problem({.name = "poisson2d", .res = 16, .seed = 3}); };
  auto run = [&](const train::TrainConfig& cfg, std::vector<double>& losses) {
    auto t = std::make_unique<train::Trainer>(cfg, train::build_unet(cfg.model, 2, Device::cpu(), "kfac"),
                                              problem(), dist::make_local());
    t->callbacks().on_step = [&losses](const train::StepInfo& s) { losses.push_back(s.loss); };
    t->fit();
    return t;
  };
  std::vector<double> a, r;
  auto ta = run(c, a);
  REQUIRE(a.size() == 12);
  // Against the same steps of Adam at its default rate, from the same initial weights.
  train::TrainConfig ad = c;
  ad.optimizer.name = "adam", ad.out = "", ad.checkpoint_every = 0;
  std::vector<double> la;
  run(ad, la);
  CAPTURE(a.back());
  CAPTURE(la.back());
  // The same global batches in the same order: K-FAC's last loss is far below Adam's.
  CHECK(a.back() < 0.5 * a.front());
  CHECK(a.back() < 0.5 * la.back());
  train::TrainConfig cr = c;
  cr.out = "";
  cr.checkpoint_every = 0;
  cr.resume = dir + "/a/checkpoints/step_000004.safetensors";
  auto tr = run(cr, r);
  REQUIRE(r.size() == 8);
  for (size_t i = 0; i < 8; ++i) CHECK(r[i] == a[4 + i]);
  std::filesystem::remove_all(dir);
}

TEST_CASE("Trainer: K-FAC on the output-preconditioned gradient trains W1 (factors in the L2 metric)") {
  train::TrainConfig c;
  c.model = {.depth = 2, .width = 4, .dtype = DType::Float64, .seed = 3};
  c.batch = 4, c.samples = 8, c.steps = 12, c.seed = 3, c.eval_samples = 0;
  c.optimizer.name = "kfac";
  c.optimizer.hessian_every = 3;
  auto losses = [](const train::TrainConfig& cfg) {
    std::vector<double> l;
    train::Trainer t(cfg, train::build_unet(cfg.model, 2, Device::cpu(), cfg.optimizer.name),
                     pde::make_problem({.name = "poisson2d", .res = 16, .seed = 3}),
                     dist::make_local());
    t.callbacks().on_step = [&l](const train::StepInfo& s) { l.push_back(s.loss); };
    t.fit();
    return l;
  };
  train::TrainConfig pc = c;
  pc.output_precondition = true;
  const std::vector<double> plain = losses(c), pre = losses(pc);
  REQUIRE(pre.size() == 12);
  CAPTURE(pre.back());
  CHECK(pre.front() == plain.front());  // the same start; the directions differ from there
  CHECK(pre[1] != plain[1]);
  CHECK(pre.back() < 0.5 * pre.front());
}

TEST_CASE("K-FAC refuses a problem that cannot sample its curvature, naming it") {
  struct NoSample : pde::Problem {
    std::unique_ptr<pde::Problem> base = pde::make_problem({.name = "poisson2d", .res = 8});
    NoSample() : pde::Problem({.name = "poisson2d-nosample", .res = 8}) {}
    int dims() const override { return 2; }
    const char* input_name() const override { return "omega"; }
    Tensor input(const std::vector<uint64_t>& s, DType d) const override { return base->input(s, d); }
    Var loss(const Var& u, const Tensor& in, int64_t n) const override { return base->loss(u, in, n); }
    Tensor prediction(const Tensor& u) const override { return base->prediction(u); }
    Tensor reference(const Tensor& in, const std::vector<uint64_t>& s) const override { return base->reference(in, s); }
    pde::OutputCurvature curvature(const Tensor& u, const Tensor& in, int64_t n) const override {
      return base->curvature(u, in, n);
    }
  };
  train::TrainConfig c;
  c.model = {.depth = 2, .width = 4, .dtype = DType::Float64, .seed = 3};
  c.batch = 2, c.samples = 4, c.steps = 1, c.eval_samples = 0;
  c.optimizer.name = "kfac";
  train::Trainer t(c, train::build_unet(c.model, 2, Device::cpu(), "kfac"), std::make_shared<NoSample>(),
                   dist::make_local());
  CHECK_THROWS_WITH_AS(t.train(1), doctest::Contains("cannot sample its curvature"), std::exception);
}
}
