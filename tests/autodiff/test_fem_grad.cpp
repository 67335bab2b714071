// tests/autodiff/test_fem_grad.cpp — the Q1 stencil ops through the gradient/HVP harness.
#include "gradcheck.h"
#include "autodiff/fem_ops.h"

using namespace dfx;
using namespace dfx::testing;
namespace A = dfx::ad;
using V = std::vector<Var>;

namespace {
const Register kFem({
    {"fem_energy 2d", {{2, 1, 5, 6}, {2, 1, 5, 6}},
     [](const V& x) { return A::fem_energy(x[0], A::exp(x[1])); }},
    {"fem_energy 3d", {{1, 1, 3, 3, 3}, {1, 1, 3, 3, 3}},
     [](const V& x) { return A::fem_energy(x[0], A::exp(x[1])); }},
    {"fem_apply 2d", {{1, 1, 4, 5}, {1, 1, 4, 5}},
     [](const V& x) { return A::fem_apply(A::exp(x[0]), x[1]); }},
    {"fem_bilinear 3d", {{1, 1, 3, 3, 3}, {1, 1, 3, 3, 3}},
     [](const V& x) { return A::fem_bilinear(x[0], x[1]); }},
});
}  // namespace
