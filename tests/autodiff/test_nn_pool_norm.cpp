// tests/autodiff/test_nn_pool_norm.cpp — pooling, upsampling and batch norm through the gradient
// harness (float64 gradient and HVP checks of every primitive), plus SyncBatchNorm run as two
// threaded "ranks" against one batch-norm over the concatenated batch, and running statistics.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "autodiff/nn_norm.h"
#include "autodiff/nn_pool.h"
#include "gradcheck.h"
#include "tests/tensor_diff.h"
#include "kernels/pool.h"

using namespace dfx;
using dfx::testing::max_abs_diff;
using namespace dfx::testing;
namespace A = dfx::ad;
using V = std::vector<Var>;

namespace {

constexpr DType F64 = DType::Float64;

// Indices of a max pooling of a fixed random input: fixed inputs of pool_gather / pool_scatter.
// Overlapping windows, so some input positions are picked more than once (scatter must add).
Tensor fixed_indices(const Shape& in) {
  return kernels::max_pool(uniform(in, -1, 1, 900, 0, 0, F64), {{3}, {1}, {1}}).indices;
}

// v itself when it is part of a graph, else a fresh leaf with its values (see the cases below).
Var leaf(const Var& v) { return v.requires_grad() ? v : Var(v.data(), true); }

// d<batch_norm(x), g>/dx with create_graph: records batch_norm_backward.
Var bn_input_grad(const Var& x, const Var& g, const Var& gamma) {
  A::EnableGradGuard on(true);
  Var xx = leaf(x);
  Var y = A::batch_norm(xx, gamma, Var(), Tensor(), Tensor(), true);
  return A::grad({y}, {xx}, {g}, true, true)[0];
}

const Register kPooling({
    {"max_pool 2d 2x2", {{2, 2, 4, 6}}, [](const V& x) { return A::max_pool(x[0], {2}, {2}); }},
    {"max_pool 2d overlapping padded", {{1, 2, 5, 5}},
     [](const V& x) { return A::max_pool(x[0], {3}, {2}, {1}); }},
    {"max_pool 3d", {{1, 2, 4, 4, 5}}, [](const V& x) { return A::max_pool(x[0], {2}, {2}); }},
    {"max_pool 3d stride != kernel", {{1, 1, 3, 4, 5}},
     [](const V& x) { return A::max_pool(x[0], {2, 3, 2}, {1, 1, 2}, {1, 1, 0}); }},
    {"max_pool 1d", {{2, 2, 7}}, [](const V& x) { return A::max_pool(x[0], {3}, {2}, {1}); }},
    {"pool_gather", {{1, 2, 5, 5}},
     [](const V& x) { return A::pool_gather(x[0], fixed_indices({1, 2, 5, 5})); }},
    {"pool_scatter", {{1, 2, 5, 5}},
     [](const V& x) { return A::pool_scatter(x[0], fixed_indices({1, 2, 5, 5}), {1, 2, 5, 5}); }},
    {"avg_pool 2d padded", {{2, 2, 5, 6}},
     [](const V& x) { return A::avg_pool(x[0], {3, 2}, {2, 2}, {1, 0}); }},
    {"avg_pool 3d", {{1, 2, 4, 4, 4}}, [](const V& x) { return A::avg_pool(x[0], {2}, {2}); }},
    {"avg_pool_adjoint", {{1, 2, 3, 3}},
     [](const V& x) { return A::avg_pool_adjoint(x[0], {1, 2, 5, 6}, {3, 2}, {2, 2}, {1, 0}); }},
    {"upsample nearest 2d", {{1, 2, 3, 2}},
     [](const V& x) { return A::upsample(x[0], {2}, A::UpsampleMode::Nearest); }},
    {"upsample nearest 3d", {{1, 2, 2, 3, 2}},
     [](const V& x) { return A::upsample(x[0], {2, 1, 3}, A::UpsampleMode::Nearest); }},
    {"upsample linear 1d x3", {{2, 2, 4}},
     [](const V& x) { return A::upsample(x[0], {3}, A::UpsampleMode::Linear); }},
    {"upsample linear 2d", {{1, 2, 3, 4}},
     [](const V& x) { return A::upsample(x[0], {2}, A::UpsampleMode::Linear); }},
    {"upsample linear 3d", {{1, 1, 2, 3, 3}},
     [](const V& x) { return A::upsample(x[0], {2}, A::UpsampleMode::Linear); }},
    {"upsample_adjoint linear 2d", {{1, 2, 6, 4}},
     [](const V& x) { return A::upsample_adjoint(x[0], {2}, A::UpsampleMode::Linear); }},
    {"upsample_adjoint nearest 3d", {{1, 1, 4, 2, 6}},
     [](const V& x) { return A::upsample_adjoint(x[0], {2, 1, 3}, A::UpsampleMode::Nearest); }},
    {"pool-upsample chain times input", {{1, 2, 4, 4}},
     [](const V& x) {
       Var p = A::max_pool(A::tanh(x[0]), {2}, {2});
       return A::upsample(p, {2}, A::UpsampleMode::Linear) * x[0];
     }},
});

Tensor eval_mean() { return from_vector<double>({0.2, -0.3, 0.1}, {3}); }
Tensor eval_var() { return from_vector<double>({0.5, 1.5, 2.0}, {3}); }

const Register kNorm({
    {"batch_norm train affine 2d", {{3, 2, 2, 3}, {2}, {2}},
     [](const V& x) { return A::batch_norm(x[0], x[1], x[2], Tensor(), Tensor(), true); }},
    {"batch_norm train no affine 2d", {{3, 2, 2, 3}},
     [](const V& x) { return A::batch_norm(x[0], Var(), Var(), Tensor(), Tensor(), true); }},
    {"batch_norm train affine 3d", {{2, 2, 2, 2, 3}, {2}, {2}},
     [](const V& x) { return A::batch_norm(x[0], x[1], x[2], Tensor(), Tensor(), true); }},
    {"batch_norm train features [N, C]", {{6, 3}, {3}, {3}},
     [](const V& x) { return A::batch_norm(x[0], x[1], x[2], Tensor(), Tensor(), true); }},
    {"batch_norm train gamma only (x constant)", {{3}},
     [](const V& x) {
       Tensor in = uniform({3, 3, 2, 2}, -1, 1, 33, 0, 0, F64);
       return A::batch_norm(Var(in), x[0], Var(), Tensor(), Tensor(), true);
     }},
    {"batch_norm_leaky_relu train affine 2d", {{3, 2, 2, 3}, {2}, {2}},
     [](const V& x) {
       return A::batch_norm_leaky_relu(x[0], x[1], x[2], Tensor(), Tensor(), true, 0.1, 1e-5, {},
                                       0.2);
     }},
    {"batch_norm_leaky_relu train relu 3d", {{2, 2, 2, 2, 3}, {2}, {2}},
     [](const V& x) {
       return A::batch_norm_leaky_relu(x[0], x[1], x[2], Tensor(), Tensor(), true, 0.1, 1e-5, {},
                                       0.0);
     }},
    {"batch_norm eval", {{2, 3, 2, 2}, {3}, {3}},
     [](const V& x) { return A::batch_norm(x[0], x[1], x[2], eval_mean(), eval_var(), false); }},
    {"batch_norm eval no affine", {{2, 3, 4}},
     [](const V& x) { return A::batch_norm(x[0], Var(), Var(), eval_mean(), eval_var(), false); }},
    {"channel_sum", {{2, 3, 2, 2}}, [](const V& x) { return A::channel_sum(x[0]); }},
    {"channel_bcast", {{3}}, [](const V& x) { return A::channel_bcast(x[0], {2, 3, 2, 2}); }},
    // The recorded backward of training-mode batch norm (create_graph): its input gradient and
    // gamma gradient as functions of (x, g, gamma). Their gradients are the fused second-order
    // rules; their HVPs go through the composite fallback (third order of batch norm). The
    // harness also evaluates f on constants (finite differences): differentiate a fresh leaf then.
    {"batch_norm_backward", {{3, 2, 2, 3}, {3, 2, 2, 3}, {2}},
     [](const V& x) { return bn_input_grad(x[0], x[1], x[2]); }},
    {"batch_norm_backward no affine 3d", {{2, 2, 2, 2, 3}, {2, 2, 2, 2, 3}},
     [](const V& x) { return bn_input_grad(x[0], x[1], Var()); }},
    {"batch_norm_gamma_grad", {{3, 2, 2, 3}, {3, 2, 2, 3}, {2}, {2}},
     [](const V& x) {
       A::EnableGradGuard on(true);
       Var gamma = leaf(x[2]);
       Var y = A::batch_norm(x[0], gamma, x[3], Tensor(), Tensor(), true);
       return A::grad({y}, {gamma}, {x[1]}, true, true)[0];
     }},
    {"block: batch_norm, leaky_relu, max_pool", {{2, 2, 4, 4}, {2}, {2}},
     [](const V& x) {
       Var y = A::batch_norm(x[0], x[1], x[2], Tensor(), Tensor(), true);
       return A::max_pool(A::leaky_relu(y, 0.2), {2}, {2});
     }},
});

// Two data-parallel "ranks" as threads: all_reduce sums both ranks' tensors (rank 0 + rank 1, a
// fixed order) and hands the sum back in place, like MPI_Allreduce. A rank that waits more than a
// minute, or whose partner failed, throws instead of hanging the suite.
class TwoRanks {
 public:
  A::ChannelAllReduce reducer(int rank) {
    return [this, rank](Tensor& t) { reduce(rank, t); };
  }
  void abort() {
    std::lock_guard<std::mutex> lk(m_);
    aborted_ = true;
    cv_.notify_all();
  }
  std::vector<Shape> shapes[2];  // what each rank reduced, in order
  bool all_float64 = true;

 private:
  void reduce(int rank, Tensor& t) {
    std::unique_lock<std::mutex> lk(m_);
    shapes[rank].push_back(t.shape());
    all_float64 = all_float64 && t.dtype() == F64 && t.is_contiguous();
    DFX_CHECK(!aborted_, "TwoRanks: the other rank failed");
    buf_[rank] = t.clone();
    const uint64_t gen = gen_;
    if (++arrived_ == 2) {
      if (buf_[0].shape() != buf_[1].shape()) {
        aborted_ = true;
        cv_.notify_all();
        DFX_FAIL("TwoRanks: ranks reduced different shapes ", buf_[0].shape(), " and ",
                 buf_[1].shape());
      }
      result_ = kernels::add(buf_[0], buf_[1]);
      arrived_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      bool done = cv_.wait_for(lk, std::chrono::seconds(60),
                               [&] { return gen_ != gen || aborted_; });
      if (!done || aborted_) {
        aborted_ = true;
        cv_.notify_all();
        DFX_FAIL("TwoRanks: rank ", rank, " waited for its partner in vain");
      }
    }
    copy_(t, result_);
  }

  std::mutex m_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t gen_ = 0;
  bool aborted_ = false;
  Tensor buf_[2], result_;
};

struct Step {
  Tensor y, gx, gg, gb, hx, hg, hb, rm, rv;
  std::string error;
};

// One training step of batch norm on x (with the given reducer): output, first derivatives of
// L = sum(w y^2) + sum(w2 y) and the HVP in direction (vx, vg, vb), and updated running stats.
Step bn_step(const Tensor& xin, const Tensor& gamma0, const Tensor& beta0, const Tensor& w,
             const Tensor& w2, const Tensor& vx, const Tensor& vg, const Tensor& vb,
             const A::ChannelAllReduce& ar) {
  Step s;
  Var x(xin, true), gamma(gamma0, true), beta(beta0, true);
  s.rm = from_vector<double>({0.1, -0.2, 0.3}, {3});
  s.rv = from_vector<double>({1.5, 0.5, 2.0}, {3});
  auto loss = [&](const Var& y) {
    return A::sum(Var(w) * y * y) + A::sum(Var(w2) * y);
  };
  Var y = A::batch_norm(x, gamma, beta, s.rm, s.rv, true, 0.1, 1e-5, ar);
  s.y = y.data();
  std::vector<Var> g = A::grad({loss(y)}, {x, gamma, beta});
  s.gx = g[0].data();
  s.gg = g[1].data();
  s.gb = g[2].data();
  std::vector<Tensor> h = A::hvp(
      [&] { return loss(A::batch_norm(x, gamma, beta, Tensor(), Tensor(), true, 0.1, 1e-5, ar)); },
      {x, gamma, beta}, {vx, vg, vb});
  s.hx = h[0];
  s.hg = h[1];
  s.hb = h[2];
  return s;
}

}  // namespace

TEST_SUITE("autodiff") {

TEST_CASE("batch_norm over two threaded ranks equals batch_norm over the concatenated batch") {
  const int64_t C = 3;
  // Uneven shards, an empty shard on either side, and an even split.
  for (auto [n0, n1] : {std::pair<int64_t, int64_t>{2, 3}, {0, 4}, {4, 0}, {3, 3}}) {
    CAPTURE(n0);
    CAPTURE(n1);
    const int64_t N = n0 + n1;
    const Shape xs{N, C, 3, 2};
    Tensor x = uniform(xs, -1, 2, 21, 0, 0, F64);
    Tensor w = uniform(xs, 0.5, 1.5, 22, 0, 0, F64), w2 = uniform(xs, -1, 1, 23, 0, 0, F64);
    Tensor vx = uniform(xs, -1, 1, 24, 0, 0, F64);
    Tensor gamma = uniform({C}, 0.5, 1.5, 25, 0, 0, F64), beta = uniform({C}, -1, 1, 26, 0, 0, F64);
    Tensor vg = uniform({C}, -1, 1, 27, 0, 0, F64), vb = uniform({C}, -1, 1, 28, 0, 0, F64);
    Step ref = bn_step(x, gamma, beta, w, w2, vx, vg, vb, {});

    TwoRanks comm;
    Step rank[2];
    const int64_t off[2] = {0, n0}, len[2] = {n0, n1};
    auto shard = [&](const Tensor& t, int r) { return t.narrow(0, off[r], len[r]).contiguous(); };
    std::vector<std::thread> threads;
    for (int r = 0; r < 2; ++r) {
      threads.emplace_back([&, r] {
        try {
          rank[r] = bn_step(shard(x, r), gamma, beta, shard(w, r), shard(w2, r), shard(vx, r), vg,
                            vb, comm.reducer(r));
        } catch (const std::exception& e) {
          rank[r].error = e.what();
          comm.abort();
        }
      });
    }
    for (auto& t : threads) t.join();
    REQUIRE(rank[0].error == "");
    REQUIRE(rank[1].error == "");

    // One all-reduce of packed float64 (count, sum, sumsq) forward, one of (sum g, sum g xhat)
    // in the fast backward; both ranks made the same calls.
    CHECK(comm.all_float64);
    CHECK(comm.shapes[0] == comm.shapes[1]);
    REQUIRE(comm.shapes[0].size() >= 2);
    CHECK(comm.shapes[0][0] == Shape{3, C});
    CHECK(comm.shapes[0][1] == Shape{2, C});

    auto cat = [](const Tensor& a, const Tensor& b) { return kernels::concat({a, b}, 0); };
    CHECK(max_abs_diff(cat(rank[0].y, rank[1].y), ref.y) <= 1e-12);
    CHECK(max_abs_diff(cat(rank[0].gx, rank[1].gx), ref.gx) <= 1e-11);
    // Parameter gradients are local partial sums: the data-parallel reducer adds them up.
    CHECK(max_abs_diff(kernels::add(rank[0].gg, rank[1].gg), ref.gg) <= 1e-11);
    CHECK(max_abs_diff(kernels::add(rank[0].gb, rank[1].gb), ref.gb) <= 1e-11);
    // Second order across ranks: the Hessian-vector product of the global loss.
    CHECK(max_abs_diff(cat(rank[0].hx, rank[1].hx), ref.hx) <= 1e-10);
    CHECK(max_abs_diff(kernels::add(rank[0].hg, rank[1].hg), ref.hg) <= 1e-10);
    CHECK(max_abs_diff(kernels::add(rank[0].hb, rank[1].hb), ref.hb) <= 1e-10);
    // Running statistics use the global moments and count on every rank.
    for (int r = 0; r < 2; ++r) {
      CHECK(max_abs_diff(rank[r].rm, ref.rm) <= 1e-14);
      CHECK(max_abs_diff(rank[r].rv, ref.rv) <= 1e-14);
    }
  }
}

TEST_CASE("batch_norm running statistics after one step follow PyTorch's formula") {
  const Shape xs{4, 3, 5, 5};
  Tensor x = uniform(xs, -1, 3, 41, 0, 0, DType::Float32);
  Tensor rm = from_vector<float>({0.1f, -0.2f, 0.3f}, {3});
  Tensor rv = from_vector<float>({1.5f, 0.5f, 2.0f}, {3});
  const std::vector<double> rm0 = rm.to_vector(), rv0 = rv.to_vector();
  const double momentum = 0.1, eps = 1e-5;
  Var gamma(uniform({3}, 0.5, 1.5, 42, 0, 0, DType::Float32), true);
  Var beta(uniform({3}, -1, 1, 43, 0, 0, DType::Float32), true);
  Var y = A::batch_norm(Var(x, true), gamma, beta, rm, rv, true, momentum, eps);
  // Two-pass moments in float64 here.
  std::vector<double> xv = x.to_vector(), mean(3, 0), ss(3, 0);
  const int64_t n = 4 * 25;
  auto ch = [](size_t i) { return (i / 25) % 3; };
  for (size_t i = 0; i < xv.size(); ++i) mean[ch(i)] += xv[i] / n;
  for (size_t i = 0; i < xv.size(); ++i) ss[ch(i)] += (xv[i] - mean[ch(i)]) * (xv[i] - mean[ch(i)]);
  std::vector<double> rmv = rm.to_vector(), rvv = rv.to_vector(), yv = y.data().to_vector();
  std::vector<double> gv = gamma.data().to_vector(), bv = beta.data().to_vector();
  for (int c = 0; c < 3; ++c) {
    CHECK(rmv[c] == doctest::Approx((1 - momentum) * rm0[c] + momentum * mean[c]).epsilon(1e-6));
    CHECK(rvv[c] ==
          doctest::Approx((1 - momentum) * rv0[c] + momentum * ss[c] / (n - 1)).epsilon(1e-6));
  }
  double err = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    const int64_t c = ch(i);
    const double ref = (xv[i] - mean[c]) / std::sqrt(ss[c] / n + eps) * gv[c] + bv[c];
    err = std::max(err, std::abs(yv[i] - ref));
  }
  CHECK(err <= 1e-5);
  // Evaluation mode normalises with the running statistics and leaves them alone.
  Var ye = A::batch_norm(Var(x), gamma, beta, rm, rv, false, momentum, eps);
  std::vector<double> yev = ye.data().to_vector();
  err = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    const int64_t c = ch(i);
    const double ref = (xv[i] - rmv[c]) / std::sqrt(rvv[c] + eps) * gv[c] + bv[c];
    err = std::max(err, std::abs(yev[i] - ref));
  }
  CHECK(err <= 1e-5);
  CHECK(rm.to_vector() == rmv);
  CHECK(rv.to_vector() == rvv);
}

TEST_CASE("batch_norm: the fused backward equals the composite (create_graph) backward") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    Tensor xin = uniform({3, 4, 3, 3}, -1, 2, 51, 0, 0, dt);
    Tensor g0 = uniform({3, 4, 3, 3}, -1, 1, 52, 0, 0, dt);
    Tensor ga = uniform({4}, 0.5, 1.5, 53, 0, 0, dt), be = uniform({4}, -1, 1, 54, 0, 0, dt);
    std::vector<Tensor> res[2];
    for (bool create : {false, true}) {
      Var x(xin, true), gamma(ga, true), beta(be, true);
      Var y = A::batch_norm(x, gamma, beta, Tensor(), Tensor(), true);
      std::vector<Var> g = A::grad({y}, {x, gamma, beta}, {Var(g0)}, false, create);
      // With create_graph the x and gamma gradients are differentiable (beta's, sum(g), is
      // constant here because g is).
      CHECK(g[0].requires_grad() == create);
      CHECK(g[1].requires_grad() == create);
      for (const Var& v : g) res[create].push_back(v.data());
    }
    const double tol = dt == F64 ? 1e-12 : 2e-5;
    for (int i = 0; i < 3; ++i) CHECK(max_abs_diff(res[0][i], res[1][i]) <= tol);
  }
}

TEST_CASE("batch_norm_leaky_relu equals leaky_relu(batch_norm) bit for bit, with its gradients") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    for (double slope : {0.2, 0.0}) {
      CAPTURE(slope);
      Tensor xin = uniform({3, 4, 5, 3}, -1, 2, 55, 0, 0, dt);
      Tensor g0 = uniform({3, 4, 5, 3}, -1, 1, 56, 0, 0, dt);
      Tensor ga = uniform({4}, 0.5, 1.5, 57, 0, 0, dt), be = uniform({4}, -1, 1, 58, 0, 0, dt);
      std::vector<Tensor> got[2];
      Tensor rm[2], rv[2];
      for (int fused : {0, 1}) {
        rm[fused] = zeros({4}, dt);
        rv[fused] = ones({4}, dt);
        Var x(xin, true), gamma(ga, true), beta(be, true);
        Var y = fused ? A::batch_norm_leaky_relu(x, gamma, beta, rm[fused], rv[fused], true, 0.1,
                                                 1e-5, {}, slope)
                      : A::leaky_relu(A::batch_norm(x, gamma, beta, rm[fused], rv[fused], true),
                                      slope);
        got[fused].push_back(y.data());
        for (const Var& v : A::grad({y}, {x, gamma, beta}, {Var(g0)}))
          got[fused].push_back(v.data());
      }
      for (size_t i = 0; i < got[0].size(); ++i) {
        CAPTURE(i);
        CHECK(got[1][i].to_vector() == got[0][i].to_vector());
      }
      CHECK(rm[1].to_vector() == rm[0].to_vector());
      CHECK(rv[1].to_vector() == rv[0].to_vector());
      // Not vacuous: some outputs are negative (the slope acts) and the gradients are nonzero.
      const std::vector<double> y = got[1][0].to_vector();
      CHECK(std::count_if(y.begin(), y.end(), [](double v) { return v < 0 || v == 0; }) > 10);
      CHECK(max_abs_diff(got[1][1], zeros_like(got[1][1])) > 0.01);
    }
  }
}

TEST_CASE("batch_norm: errors name what was expected") {
  Var x(uniform({1, 3}, -1, 1, 61, 0, 0, F64), true);
  CHECK_THROWS_AS(A::batch_norm(x, Var(), Var(), Tensor(), Tensor(), true), Error);  // 1 value
  Var x2(uniform({2, 3, 2}, -1, 1, 62, 0, 0, F64), true);
  CHECK_THROWS_AS(A::batch_norm(x2, Var(), Var(), Tensor(), Tensor(), false), Error);
  CHECK_THROWS_AS(A::batch_norm(x2, Var(ones({2}, F64)), Var(), Tensor(), Tensor(), true), Error);
  Var g32(ones({3}, DType::Float32));
  CHECK_THROWS_AS(A::batch_norm(x2, g32, Var(), Tensor(), Tensor(), true), Error);
  // An all_reduce that breaks the contract (changes the shape) is reported, not trusted.
  A::ChannelAllReduce bad = [](Tensor& t) { t = zeros({1}, F64); };
  CHECK_THROWS_AS(A::batch_norm(x2, Var(), Var(), Tensor(), Tensor(), true, 0.1, 1e-5, bad), Error);
}

}  // TEST_SUITE
