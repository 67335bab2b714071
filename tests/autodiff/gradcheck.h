// tests/autodiff/gradcheck.h — the one harness every differentiable op goes through: a float64
// central-difference check of the gradient, a JVP (forward-mode) check against differences of
// outputs, and an HVP check against differences of gradients.
// Later layers (nn, pde) register their cases with the same helpers.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "dfx.h"

namespace dfx::testing {

using ad::Var;
using OpFn = std::function<Var(const std::vector<Var>&)>;

struct OpCase {
  std::string name;           // what is being checked
  std::vector<Shape> shapes;  // one per differentiable input
  OpFn f;
  double lo = -1.0, hi = 1.0;  // inputs drawn uniformly from [lo, hi] (never all zero)
  uint64_t seed = 1;
};

struct CheckResult {
  double max_err = 0;      // worst |analytic - numeric| / (atol + rtol |numeric|), <= 1 passes
  std::string worst;       // where it happened
  std::vector<std::string> ops;  // primitive ops recorded by f (graph walk)
};

// Scalar test loss L = sum(w * y * y) + sum(w2 * y), w and w2 fixed random weights: non-linear
// in y so the second-order check exercises every rule's own derivative.
CheckResult check_gradient(const OpCase& c, double eps = 1e-6, double atol = 1e-7,
                           double rtol = 1e-6);
CheckResult check_hvp(const OpCase& c, double eps = 1e-5, double atol = 1e-6, double rtol = 1e-5);
// Forward mode: ad::jvp of the op's output in a random direction against the central difference
// (f(x + eps v) - f(x - eps v)) / (2 eps), element by element of the output.
CheckResult check_jvp(const OpCase& c, double eps = 1e-6, double atol = 1e-7, double rtol = 1e-6);

// Names of the ops on the tape between `out` and the leaves.
std::vector<std::string> recorded_ops(const Var& out);

// Cases registered by test files (static registration), checked together by one test that also
// verifies every primitive in autodiff/op_list.h is covered.
std::vector<OpCase>& registry();
struct Register {
  explicit Register(std::vector<OpCase> cases) {
    for (auto& c : cases) registry().push_back(std::move(c));
  }
};

}  // namespace dfx::testing
