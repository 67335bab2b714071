// tests/autodiff/test_ops_grad.cpp — gradient and second-order checks of every primitive op in
// autodiff/op_list.h (and the composites built from them), through the shared harness.
#include <doctest/doctest.h>

#include <set>

#include "autodiff/op_list.h"
#include "gradcheck.h"

using namespace dfx;
using namespace dfx::testing;
namespace A = dfx::ad;
using V = std::vector<Var>;

namespace {
const Register kElementwise({
    {"add broadcast", {{3, 4}, {4}}, [](const V& x) { return x[0] + x[1]; }},
    {"add broadcast both", {{2, 1, 3}, {4, 1}}, [](const V& x) { return x[0] + x[1]; }},
    {"sub", {{3, 4}, {3, 1}}, [](const V& x) { return x[0] - x[1]; }},
    {"mul", {{2, 3}, {2, 3}}, [](const V& x) { return x[0] * x[1]; }},
    {"mul broadcast scalar-like", {{2, 3}, {1}}, [](const V& x) { return x[0] * x[1]; }},
    {"div", {{2, 3}, {2, 3}}, [](const V& x) { return x[0] / (A::abs(x[1]) + 0.5); }},
    {"neg", {{5}}, [](const V& x) { return -x[0]; }},
    {"exp", {{2, 3}}, [](const V& x) { return A::exp(x[0]); }},
    {"log", {{2, 3}}, [](const V& x) { return A::log(x[0]); }, 0.5, 2.0},
    {"sqrt", {{2, 3}}, [](const V& x) { return A::sqrt(x[0]); }, 0.5, 2.0},
    {"rsqrt", {{2, 3}}, [](const V& x) { return A::rsqrt(x[0]); }, 0.5, 2.0},
    {"pow 2.5", {{2, 3}}, [](const V& x) { return A::pow(x[0], 2.5); }, 0.5, 2.0},
    {"pow 3", {{2, 3}}, [](const V& x) { return A::pow(x[0], 3.0); }},
    {"square", {{2, 3}}, [](const V& x) { return A::square(x[0]); }},
    {"pow tensor", {{2, 3}, {2, 3}}, [](const V& x) { return A::pow(x[0], x[1]); }, 0.5, 2.0},
    {"abs", {{2, 3}}, [](const V& x) { return A::abs(x[0]); }},
    {"tanh", {{2, 3}}, [](const V& x) { return A::tanh(x[0]); }},
    {"sigmoid", {{2, 3}}, [](const V& x) { return A::sigmoid(x[0]); }},
    {"relu", {{3, 4}}, [](const V& x) { return A::relu(x[0]); }},
    {"leaky_relu", {{3, 4}}, [](const V& x) { return A::leaky_relu(x[0], 0.2); }},
    {"leaky_relu negative slope", {{3, 4}}, [](const V& x) { return A::leaky_relu(x[0], -0.3); }},
    // The rule relu and leaky_relu record, with a fixed output of mixed signs.
    {"leaky_relu_backward", {{3, 4}},
     [](const V& x) {
       return A::leaky_relu_backward(x[0], randn({3, 4}, 17, 0, 0, DType::Float64), 0.2);
     }},
    {"where",
     {{3, 4}, {4}},
     [](const V& x) {
       Tensor c = kernels::compare(kernels::CompareOp::Gt, rand({3, 4}, 77, 0, 0, DType::Float64),
                                   full({}, 0.5, DType::Float64));
       return A::where(c, x[0], x[1]);
     }},
    {"clamp", {{3, 4}}, [](const V& x) { return A::clamp(x[0], -0.5, 0.5); }},
    {"maximum", {{3, 4}, {3, 4}}, [](const V& x) { return A::maximum(x[0], x[1]); }},
    {"minimum", {{3, 4}, {4}}, [](const V& x) { return A::minimum(x[0], x[1]); }},
    {"scalar ops", {{4}}, [](const V& x) { return (2.0 - x[0]) * 3.0 / (x[0] * x[0] + 1.0); }},
});

const Register kReductions({
    {"sum all", {{3, 4}}, [](const V& x) { return A::sum(x[0]); }},
    {"sum dims", {{2, 3, 4}}, [](const V& x) { return A::sum(x[0], {0, 2}); }},
    {"sum keepdim", {{2, 3, 4}}, [](const V& x) { return A::sum(x[0], {1}, true); }},
    {"mean", {{2, 3, 4}}, [](const V& x) { return A::mean(x[0], {-1}); }},
    {"var", {{3, 5}}, [](const V& x) { return A::var(x[0], {1}); }},
    {"var population", {{2, 3, 4}}, [](const V& x) { return A::var(x[0], {0, 2}, 0, true); }},
    {"amax", {{3, 5}}, [](const V& x) { return A::amax(x[0], {1}); }},
    {"amin all", {{3, 5}}, [](const V& x) { return A::amin(x[0]); }},
    {"sum_to", {{2, 3, 4}}, [](const V& x) { return A::sum_to(x[0], {3, 1}); }},
    {"dot", {{3, 4}, {3, 4}}, [](const V& x) { return A::dot(x[0], x[1]); }},
});

const Register kLinalgShape({
    {"matmul", {{3, 4}, {4, 2}}, [](const V& x) { return A::matmul(x[0], x[1]); }},
    {"matmul batched broadcast", {{2, 3, 4}, {4, 5}}, [](const V& x) { return A::matmul(x[0], x[1]); }},
    {"matmul batch both", {{2, 1, 3, 4}, {3, 4, 2}}, [](const V& x) { return A::matmul(x[0], x[1]); }},
    {"matmul vectors", {{4}, {4, 3}}, [](const V& x) { return A::matmul(x[0], x[1]); }},
    {"matmul mat-vec", {{3, 4}, {4}}, [](const V& x) { return A::matmul(x[0], x[1]); }},
    {"matmul transposed view", {{4, 3}, {4, 2}},
     [](const V& x) { return A::matmul(A::transpose(x[0], 0, 1), x[1]); }},
    {"reshape", {{2, 6}}, [](const V& x) { return A::reshape(x[0], {3, 4}); }},
    {"permute", {{2, 3, 4}}, [](const V& x) { return A::permute(x[0], {2, 0, 1}); }},
    {"transpose+contiguous", {{3, 4}}, [](const V& x) { return A::contiguous(A::transpose(x[0], 0, 1)); }},
    {"narrow", {{4, 5}}, [](const V& x) { return A::narrow(x[0], 1, 1, 3); }},
    {"unnarrow", {{4, 2}}, [](const V& x) { return A::unnarrow(x[0], {4, 5}, 1, 2); }},
    {"expand", {{3, 1}}, [](const V& x) { return A::expand(x[0], {2, 3, 4}); }},
    {"squeeze/unsqueeze", {{3, 1}}, [](const V& x) { return A::unsqueeze(A::squeeze(x[0], 1), 0); }},
    {"concat", {{2, 3}, {2, 2}}, [](const V& x) { return A::concat({x[0], x[1]}, 1); }},
    {"stack", {{2, 3}, {2, 3}}, [](const V& x) { return A::stack({x[0], x[1]}, 0); }},
    {"split", {{5, 2}},
     [](const V& x) {
       auto p = A::split(x[0], {2, 3}, 0);
       return A::sum(p[0], {0}) * A::sum(p[1], {0});
     }},
});

// A composite resembling one network layer: matmul, bias, normalisation, activation, loss.
const Register kComposite({
    {"layer composite",
     {{4, 3}, {3, 5}, {5}},
     [](const V& x) {
       Var h = A::matmul(x[0], x[1]) + x[2];
       Var m = A::mean(h, {0}, true);
       Var v = A::var(h, {0}, 0, true);
       return A::tanh((h - m) * A::rsqrt(v + 1e-3));
     }},
});
}  // namespace

TEST_SUITE("autodiff") {
TEST_CASE("every op passes the float64 finite-difference gradient check") {
  for (const OpCase& c : registry()) {
    CAPTURE(c.name);
    CheckResult r = check_gradient(c);
    CAPTURE(r.worst);
    CHECK(r.max_err <= 1.0);
  }
}

TEST_CASE("every op passes the forward-mode check (JVP vs differences of outputs)") {
  for (const OpCase& c : registry()) {
    CAPTURE(c.name);
    CheckResult r = check_jvp(c);
    CAPTURE(r.worst);
    CHECK(r.max_err <= 1.0);
  }
}

TEST_CASE("the harness fails a rule that is wrong: gradient and forward-mode checks") {
  // y = x^2 whose backward says 2.1 x: both first-order checks must see it.
  OpCase bad{"wrong square",
             {{2, 3}},
             [](const V& x) {
               Var in = x[0];
               return A::record("wrong_square", A::mul(in, in).data(), {in},
                                [in](const Var&, const Var& g) {
                                  return std::vector<Var>{A::mul(A::mul(g, in), 2.1)};
                                });
             }};
  CHECK(check_gradient(bad).max_err > 100);
  CHECK(check_jvp(bad).max_err > 100);
}

TEST_CASE("ad::Jacobian: J v and J^T w are adjoint, and every product at the point agrees") {
  // A two-output, two-input composite, so the per-output and per-input bookkeeping is exercised.
  Var a(uniform({3, 4}, -1, 1, 7, 0, 0, DType::Float64), true);
  Var b(uniform({4, 2}, -1, 1, 7, 1, 0, DType::Float64), true);
  Var y1 = A::tanh(A::matmul(a, b)), y2 = A::sum(A::mul(a, a), {1}, false);
  A::Jacobian jac({y1, y2}, {a, b});
  std::vector<Tensor> v = {uniform({3, 4}, -1, 1, 8, 0, 0, DType::Float64),
                           uniform({4, 2}, -1, 1, 8, 1, 0, DType::Float64)};
  std::vector<Tensor> w = {uniform(y1.shape(), -1, 1, 9, 0, 0, DType::Float64),
                           uniform(y2.shape(), -1, 1, 9, 1, 0, DType::Float64)};
  std::vector<Tensor> jv = jac.apply(v), jtw = jac.transpose_apply(w);
  auto dot = [](const Tensor& p, const Tensor& q) { return A::sum(A::mul(Var(p), Var(q))).item(); };
  const double lhs = dot(w[0], jv[0]) + dot(w[1], jv[1]), rhs = dot(jtw[0], v[0]) + dot(jtw[1], v[1]);
  CHECK(std::abs(lhs) > 1e-3);
  CHECK(lhs == doctest::Approx(rhs).epsilon(1e-12));
  std::vector<Tensor> again = jac.apply(v), fresh = A::jvp({y1, y2}, {a, b}, v);
  for (size_t k = 0; k < 2; ++k) {
    CHECK(A::amax(A::abs(Var(again[k]) - Var(jv[k]))).item() == 0.0);
    CHECK(A::amax(A::abs(Var(fresh[k]) - Var(jv[k]))).item() < 1e-14);
  }
}

TEST_CASE("every op passes the second-order check (HVP vs differences of gradients)") {
  for (const OpCase& c : registry()) {
    CAPTURE(c.name);
    CheckResult r = check_hvp(c);
    CAPTURE(r.worst);
    CHECK(r.max_err <= 1.0);
  }
}

TEST_CASE("every primitive op has a gradient check, and every recorded op is a listed primitive") {
  std::set<std::string> covered;
  for (const OpCase& c : registry()) {
    std::vector<Var> xs;
    uint64_t s = 0;
    for (const Shape& sh : c.shapes)
      xs.emplace_back(uniform(sh, c.lo, c.hi, c.seed, s++, 0, DType::Float64), true);
    for (const std::string& op : recorded_ops(c.f(xs))) covered.insert(op);
  }
  std::set<std::string> listed;
  for (auto op : A::primitive_ops()) {
    listed.insert(std::string(op));
    CAPTURE(op);
    CHECK_MESSAGE(covered.count(std::string(op)), "primitive op without a gradient check");
  }
  for (const std::string& op : covered) {
    CAPTURE(op);
    CHECK_MESSAGE(listed.count(op), "op recorded on the tape but missing from autodiff/op_list.h");
  }
}
}
