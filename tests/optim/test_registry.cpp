// tests/optim/test_registry.cpp — every optimiser in the registry, by name: it is created with
// its default rate, declares what it needs of the objective, and resumes bit for bit from its
// saved state. The loop runs over the registry itself, so a method added there without a
// working resume fails here.
#include <doctest/doctest.h>

#include "dfx.h"
#include "tests/tensor_diff.h"

using namespace dfx;

namespace {
using testing::deep_copy;
// A small non-convex objective of 6 parameters with exact HVPs: sum (tanh(c x) - t)^2 + 0.1 |x|^2.
Var loss_of(const Var& x) {
  Tensor c = from_vector<double>({1.5, -0.7, 2.0, 0.3, -1.1, 0.9}, {6});
  Tensor t = from_vector<double>({0.2, -0.5, 0.7, 0.1, -0.3, 0.4}, {6});
  return ad::add(ad::sum(ad::square(ad::sub(ad::tanh(ad::mul(x, Var(c))), Var(t)))),
                 ad::mul(ad::sum(ad::square(x)), 0.1));
}

optim::FunctionObjective objective_for(Var& x) {
  return optim::FunctionObjective(
      [&x](bool need_grad) {
        Var l = loss_of(x);
        if (need_grad) x.set_grad(ad::grad({l}, {x})[0]);
        return l.item();
      },
      [&x](const std::vector<Tensor>& v) { return ad::hvp([&] { return loss_of(x); }, {x}, v); },
      [&x](const std::vector<Tensor>& v) {
        // Gauss-Newton of the residual tanh(c x) - t: 2 J^T J v + 0.2 v, J = diag(c sech^2(c x)).
        ad::NoGradGuard ng;
        Tensor c = from_vector<double>({1.5, -0.7, 2.0, 0.3, -1.1, 0.9}, {6});
        Var s = ad::tanh(ad::mul(x, Var(c)));
        Var j = ad::mul(Var(c), ad::sub(1.0, ad::square(s)));
        Var jv = ad::mul(j, Var(v[0]));
        return std::vector<Tensor>{ad::add(ad::mul(ad::mul(j, jv), 2.0), ad::mul(Var(v[0]), 0.2)).data()};
      },
      [&x](uint64_t draw) {
        // K-FAC: x as one [6, 1] "weight", left = the same Gauss-Newton diagonal, right = 1, and
        // a sampled gradient that varies with the draw.
        Tensor c = from_vector<double>({1.5, -0.7, 2.0, 0.3, -1.1, 0.9}, {6});
        Tensor s = kernels::unary(kernels::UnaryOp::Tanh, kernels::mul(x.data(), c));
        std::vector<double> left(36, 0.0), sampled;
        for (int64_t i = 0; i < 6; ++i) {
          const double j = c.get({i}) * (1 - s.get({i}) * s.get({i}));
          left[i * 6 + i] = 2 * j * j + 0.2;
          sampled.push_back(j * (philox_uniform(3, draw, i) - 0.5));
        }
        optim::KroneckerStatistics st;
        st.blocks.push_back({0, -1, from_vector<double>(left, {6, 6}), full({1, 1}, 1.0, DType::Float64)});
        st.sampled_gradient.push_back(from_vector<double>(sampled, {6}));
        return st;
      });
}

}  // namespace

TEST_SUITE("optim") {
TEST_CASE("every registered optimiser resumes bit for bit from its state, by name") {
  REQUIRE(optim::optimizers().size() >= 8);
  for (const optim::OptimizerInfo& info : optim::optimizers()) {
    CAPTURE(info.name);
    optim::OptimizerConfig cfg;
    cfg.name = info.name;
    cfg.seed = 5;
    cfg.hessian_every = 2;  // AdaHessian: resume at a step that reuses the estimate
    CHECK(optim::resolved_lr(cfg) == info.default_lr);
    Var a(from_vector<double>({0.5, -0.4, 0.3, 0.9, -0.8, 0.2}, {6}), true);
    auto A = optim::make_optimizer({a}, cfg);
    CHECK(A->name() == info.name);
    CHECK((A->needs_hvp() || A->needs_gauss_newton() || A->needs_kronecker_factors()) ==
          info.second_order);
    auto fa = objective_for(a);
    const double first = A->step(fa);
    for (int s = 1; s < 3; ++s) A->step(fa);
    auto saved = deep_copy(A->state());
    Tensor saved_x = a.data().clone();
    std::vector<double> la;
    for (int s = 0; s < 3; ++s) la.push_back(A->step(fa));
    CHECK(la.back() < first);  // it optimises

    Var b(saved_x, true);
    auto B = optim::make_optimizer({b}, cfg);
    B->load_state(saved);
    CHECK(B->steps() == A->steps() - 3);
    auto fb = objective_for(b);
    for (int s = 0; s < 3; ++s) CHECK(B->step(fb) == la[s]);
    for (int64_t i = 0; i < 6; ++i) CHECK(a.data().get({i}) == b.data().get({i}));
  }
}

TEST_CASE("an unknown optimiser name lists the registered ones") {
  optim::OptimizerConfig cfg;
  cfg.name = "rmsprop";
  Var x(zeros({2}, DType::Float64), true);
  try {
    optim::make_optimizer({x}, cfg);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("unknown optimizer 'rmsprop'; expected one of adam|") !=
          std::string::npos);
  }
}
}
