// tests/autodiff/test_tape.cpp — the tape's behaviour: accumulation, grad(), higher orders,
// hooks, release, no-grad scopes and the errors users hit.
#include <doctest/doctest.h>

#include <cmath>

#include "dfx.h"

using namespace dfx;
namespace A = dfx::ad;

TEST_SUITE("autodiff") {
TEST_CASE("backward accumulates into leaves and matches hand derivatives") {
  Var x(from_vector<double>({1.5, -2.0, 0.5}, {3}), true);
  Var y(from_vector<double>({0.25, 3.0, -1.0}, {3}), true);
  Var loss = A::sum(x * x * y + A::exp(y));
  loss.backward();
  for (int i = 0; i < 3; ++i) {
    double xv = x.data().get({i}), yv = y.data().get({i});
    CHECK(x.grad().data().get({i}) == doctest::Approx(2 * xv * yv));
    CHECK(y.grad().data().get({i}) == doctest::Approx(xv * xv + std::exp(yv)));
  }
  // A second forward/backward adds to the existing gradient.
  A::sum(x * 3.0).backward();
  CHECK(x.grad().data().get({0}) == doctest::Approx(2 * 1.5 * 0.25 + 3.0));
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("grad() leaves .grad alone and returns zeros for unused inputs") {
  Var x(from_vector<double>({2.0}, {1}), true), unused(from_vector<double>({7.0}, {1}), true);
  Var y = A::sum(A::pow(x, 3.0));
  auto g = A::grad({y}, {x, unused});
  CHECK(g[0].item() == doctest::Approx(12.0));
  CHECK(g[1].item() == 0.0);
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("create_graph gives derivatives of any order") {
  const double x0 = 1.3;
  Var x(from_vector<double>({x0}, {1}), true);
  Var y = A::sum(A::pow(x, 4.0) * A::exp(x));  // y = x^4 e^x
  Var g1 = A::grad({y}, {x}, {}, true, true)[0];
  Var g2 = A::grad({A::sum(g1)}, {x}, {}, true, true)[0];
  Var g3 = A::grad({A::sum(g2)}, {x}, {}, false, false)[0];
  const double e = std::exp(x0), x2 = x0 * x0, x3 = x2 * x0, x4 = x3 * x0;
  CHECK(g1.item() == doctest::Approx((4 * x3 + x4) * e).epsilon(1e-12));
  CHECK(g2.item() == doctest::Approx((12 * x2 + 8 * x3 + x4) * e).epsilon(1e-12));
  CHECK(g3.item() == doctest::Approx((24 * x0 + 36 * x2 + 12 * x3 + x4) * e).epsilon(1e-12));
}

TEST_CASE("hvp of a composite equals finite differences of its gradient to 1e-6") {
  Var w(uniform({3, 4}, -1, 1, 5, 0, 0, DType::Float64), true);
  Var b(uniform({4}, -1, 1, 5, 1, 0, DType::Float64), true);
  Tensor xin = uniform({6, 3}, -1, 1, 5, 2, 0, DType::Float64);
  auto loss = [&](const Var& ww, const Var& bb) {
    Var h = A::tanh(A::matmul(Var(xin), ww) + bb);
    return A::mean(A::square(h - 0.3)) + 0.1 * A::sum(A::exp(ww * 0.5));
  };
  std::vector<Tensor> v = {uniform({3, 4}, -1, 1, 6, 0, 0, DType::Float64),
                           uniform({4}, -1, 1, 6, 1, 0, DType::Float64)};
  std::vector<Tensor> hv = A::hvp([&] { return loss(w, b); }, {w, b}, v);
  const double eps = 1e-5;
  auto grad_at = [&](double t) {
    Tensor wt = w.data().clone(), bt = b.data().clone();
    kernels::axpy_(wt, t, v[0]);
    kernels::axpy_(bt, t, v[1]);
    Var ww(wt, true), bb(bt, true);
    return A::grad({loss(ww, bb)}, {ww, bb});
  };
  auto gp = grad_at(eps), gm = grad_at(-eps);
  for (int p = 0; p < 2; ++p) {
    std::vector<double> h = hv[p].to_vector(), a = gp[p].data().to_vector(),
                        c = gm[p].data().to_vector();
    for (size_t i = 0; i < h.size(); ++i) CHECK(h[i] == doctest::Approx((a[i] - c[i]) / (2 * eps)).epsilon(1e-6).scale(1));
  }
}

TEST_CASE("the Hessian built from HVPs is symmetric") {
  Var x(uniform({5}, -1, 1, 9, 0, 0, DType::Float64), true);
  Tensor m = uniform({5, 5}, -1, 1, 9, 1, 0, DType::Float64);
  auto f = [&] {
    Var y = A::matmul(Var(m), x);
    return A::sum(A::sigmoid(y) * A::log(A::square(x) + 1.0)) + A::sum(A::amax(A::reshape(x, {1, 5}), {1}));
  };
  double H[5][5];
  for (int j = 0; j < 5; ++j) {
    Tensor e = zeros({5}, DType::Float64);
    e.set({j}, 1.0);
    std::vector<double> col = A::hvp(f, {x}, {e})[0].to_vector();
    for (int i = 0; i < 5; ++i) H[i][j] = col[i];
  }
  double norm = 0;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) {
      norm = std::max(norm, std::abs(H[i][j]));
      CHECK(H[i][j] == doctest::Approx(H[j][i]).epsilon(1e-12).scale(1));
    }
  CHECK(norm > 0.01);  // not a trivially zero Hessian
}

TEST_CASE("grad-ready hooks fire once per leaf, after its gradient is final") {
  Var a(from_vector<double>({1.0, 2.0}, {2}), true), b(from_vector<double>({3.0, -1.0}, {2}), true);
  std::vector<std::pair<char, double>> fired;
  a.register_grad_ready_hook([&](const Var& g) { fired.push_back({'a', g.data().get({0})}); });
  b.register_grad_ready_hook([&](const Var& g) { fired.push_back({'b', g.data().get({0})}); });
  // a is used three times: its hook must see the sum of all three contributions.
  Var loss = A::sum(a * b + a * a + A::exp(a) * 2.0);
  loss.backward();
  REQUIRE(fired.size() == 2);
  for (auto& [who, v] : fired) {
    if (who == 'a') CHECK(v == doctest::Approx(3.0 + 2.0 + 2 * std::exp(1.0)));
    if (who == 'b') CHECK(v == doctest::Approx(1.0));
  }
}

TEST_CASE("clear errors: released graph, non-scalar output, mismatched grad_output") {
  Var x(from_vector<double>({1.0, 2.0}, {2}), true);
  Var y = A::exp(x);
  Var s = A::sum(y);
  s.backward();
  try {
    s.backward();
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("released") != std::string::npos);
  }
  Var z = A::exp(x);
  try {
    z.backward();
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("not a scalar") != std::string::npos);
  }
  try {
    z.backward(Var(ones({3}, DType::Float64)));
    FAIL("expected an error");
  } catch (const Error& e) {
    std::string msg = e.what();
    CHECK(msg.find("[3]") != std::string::npos);
    CHECK(msg.find("[2]") != std::string::npos);
  }
  // retain_graph keeps it usable.
  Var w = A::sum(A::exp(x));
  w.backward(Var(), true);
  w.backward();
  CHECK(x.grad().data().get({1}) == doctest::Approx(1.0 * std::exp(2.0) * 2 + std::exp(2.0)));
}

TEST_CASE("no-grad scopes record nothing; detach cuts the graph") {
  Var x(from_vector<double>({1.0, 2.0}, {2}), true);
  {
    ad::NoGradGuard ng;
    Var y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
  }
  Var y = x * 2.0;
  CHECK(y.requires_grad());
  CHECK(std::string(y.op_name()) == "mul");
  Var d = y.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.data().shares_storage(y.data()));
}

TEST_CASE("float32 gradients agree with float64 ones") {
  Tensor x64 = uniform({4, 3}, -1, 1, 21, 0, 0, DType::Float64);
  Var a(x64, true), b(x64.to(DType::Float32), true);
  A::sum(A::tanh(A::matmul(a, A::transpose(a, 0, 1)))).backward();
  A::sum(A::tanh(A::matmul(b, A::transpose(b, 0, 1)))).backward();
  auto g64 = a.grad().data().to_vector(), g32 = b.grad().data().to_vector();
  for (size_t i = 0; i < g64.size(); ++i) CHECK(g32[i] == doctest::Approx(g64[i]).epsilon(1e-5));
}
}
