// tests/autodiff/test_nn_conv.cpp — convolutions through the shared gradient/HVP harness
// (float64): conv 1d/2d/3d with and without bias, stride, padding and dilation; conv_transpose
// with stride 2 and output_padding; and the adjoint primitives called directly, so every conv
// primitive in autodiff/op_list.h is covered.
#include <doctest/doctest.h>

#include <string>

#include "autodiff/nn_conv.h"
#include "autodiff/nn_ops.h"
#include "gradcheck.h"

using namespace dfx;
using namespace dfx::testing;
namespace A = dfx::ad;
namespace k = dfx::kernels;
using V = std::vector<Var>;

namespace {

A::ConvParams params(std::vector<int64_t> stride, std::vector<int64_t> padding,
                     std::vector<int64_t> dilation = {1}) {
  return A::ConvParams{std::move(stride), std::move(padding), std::move(dilation)};
}

k::ConvGeometry geo(int nd, std::vector<int64_t> stride, std::vector<int64_t> padding,
                    std::vector<int64_t> dilation) {
  return k::ConvGeometry::make(nd, stride, padding, dilation, "test");
}

const Register kConv({
    {"conv1d stride 2 pad 1 dilation 2", {{2, 2, 9}, {3, 2, 3}},
     [](const V& x) { return A::conv(x[0], x[1], Var(), params({2}, {1}, {2})); }},
    {"conv1d bias pad 1", {{2, 2, 6}, {3, 2, 3}, {3}},
     [](const V& x) { return A::conv(x[0], x[1], x[2], params({1}, {1})); }},
    {"conv2d 3x3 pad 1 (W1 block)", {{2, 2, 5, 5}, {3, 2, 3, 3}},
     [](const V& x) { return A::conv(x[0], x[1], Var(), params({1}, {1})); }},
    {"conv2d bias non-square stride dilation", {{2, 2, 7, 6}, {2, 2, 3, 2}, {2}},
     [](const V& x) { return A::conv(x[0], x[1], x[2], params({2, 1}, {1, 0}, {2, 1})); }},
    {"conv2d 1x1 bias (W1 head)", {{2, 3, 4, 4}, {1, 3, 1, 1}, {1}},
     [](const V& x) { return A::conv(x[0], x[1], x[2]); }},
    {"conv3d 3x3x3 pad 1", {{1, 2, 4, 4, 3}, {2, 2, 3, 3, 3}},
     [](const V& x) { return A::conv(x[0], x[1], Var(), params({1}, {1})); }},
    {"conv3d bias stride 2 dilation", {{2, 1, 5, 5, 5}, {2, 1, 2, 3, 2}, {2}},
     [](const V& x) { return A::conv(x[0], x[1], x[2], params({2}, {1}, {1, 1, 2})); }},
    {"conv block: conv -> leaky_relu -> conv", {{2, 1, 5, 5}, {2, 1, 3, 3}, {2, 2, 3, 3}},
     [](const V& x) {
       Var h = A::leaky_relu(A::conv(x[0], x[1], Var(), params({1}, {1})), 0.2);
       return A::conv(h, x[2], Var(), params({1}, {1}));
     }},
});

const Register kConvTranspose({
    {"conv_transpose2d 2x2 stride 2 bias (W1 up)", {{2, 3, 3, 3}, {3, 2, 2, 2}, {2}},
     [](const V& x) { return A::conv_transpose(x[0], x[1], x[2], params({2}, {0})); }},
    {"conv_transpose2d 3x3 stride 2 pad 1 output_padding 1", {{2, 2, 3, 4}, {2, 3, 3, 3}},
     [](const V& x) { return A::conv_transpose(x[0], x[1], Var(), params({2}, {1}), {1}); }},
    {"conv_transpose3d stride 2 output_padding (1, 0, 1) bias",
     {{1, 2, 2, 3, 2}, {2, 2, 3, 3, 3}, {2}},
     [](const V& x) {
       return A::conv_transpose(x[0], x[1], x[2], params({2}, {1}), {1, 0, 1});
     }},
    {"conv_transpose1d stride 2 dilation 2 output_padding 1", {{2, 2, 4}, {2, 3, 2}},
     [](const V& x) { return A::conv_transpose(x[0], x[1], Var(), params({2}, {0}, {2}), {1}); }},
});

// The adjoint primitives directly (otherwise they appear only inside backward passes).
const Register kConvAdjoints({
    {"conv_weight_grad 2d", {{2, 3, 4, 4}, {2, 2, 5, 5}},
     [](const V& x) {
       return A::prim::conv_weight_grad(x[0], x[1], {3, 2, 2, 2}, geo(2, {1}, {0}, {1}));
     }},
    {"conv_weight_grad 2d stride 2 pad 1", {{2, 2, 3, 3}, {2, 2, 5, 5}},
     [](const V& x) {
       return A::prim::conv_weight_grad(x[0], x[1], {2, 2, 3, 3}, geo(2, {2}, {1}, {1}));
     }},
    {"conv_weight_grad 3d dilation 2", {{1, 2, 1, 2, 2}, {1, 1, 3, 4, 4}},
     [](const V& x) {
       return A::prim::conv_weight_grad(x[0], x[1], {2, 1, 3, 2, 2}, geo(3, {1}, {0}, {1, 2, 2}));
     }},
    {"conv_bias_grad", {{2, 3, 4}},
     [](const V& x) { return A::prim::conv_bias_grad(x[0]); }},
    {"conv_transpose primitive 1x1 with bias", {{2, 3, 2, 3}, {3, 2, 1, 1}, {2}},
     [](const V& x) {
       return A::prim::conv_transpose(x[0], x[1], x[2], {2, 2, 2, 3}, geo(2, {1}, {0}, {1}));
     }},
});

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

Var leaf(const Shape& s, uint64_t stream) {
  return Var(uniform(s, -1, 1, 5, stream, 0, DType::Float64), true);
}

}  // namespace

TEST_SUITE("autodiff") {
TEST_CASE("conv_transpose output sizes follow PyTorch's ConvTranspose formula") {
  // (S - 1) * stride - 2 * padding + dilation * (K - 1) + output_padding + 1
  Var x = leaf({2, 3, 4, 5}, 0), w = leaf({3, 6, 3, 2}, 1);
  CHECK(A::conv_transpose(x, w, Var(), params({2}, {1}), {1, 0}).shape() == Shape{2, 6, 8, 8});
  CHECK(A::conv_transpose(x, w, Var(), params({1}, {0}, {2})).shape() == Shape{2, 6, 8, 7});
  // Up-sampling by 2 exactly, as in the U-Net decoder.
  Var u = leaf({1, 4, 2, 3, 4}, 2), wu = leaf({4, 2, 2, 2, 2}, 3);
  CHECK(A::conv_transpose(u, wu, Var(), params({2}, {0})).shape() == Shape{1, 2, 4, 6, 8});
}

TEST_CASE("conv's gradients are the kernels' adjoints, and the bias gradient is a channel sum") {
  Var x = leaf({2, 2, 5, 4}, 0), w = leaf({3, 2, 3, 3}, 1), b = leaf({3}, 2);
  k::ConvGeometry g = geo(2, {2}, {1}, {1});
  Var y = A::conv(x, w, b, params({2}, {1}));
  Tensor gy = uniform(y.shape(), -1, 1, 9, 0, 0, DType::Float64);
  std::vector<Var> gs = A::grad({y}, {x, w, b}, {Var(gy)});
  auto same = [](const Tensor& a, const Tensor& r) {
    return k::amax(k::unary(k::UnaryOp::Abs, k::sub(a, r))).item() < 1e-13;
  };
  CHECK(same(gs[0].data(), k::conv_transpose(gy, w.data(), Tensor(), x.shape(), g)));
  CHECK(same(gs[1].data(), k::conv_weight_grad(gy, x.data(), w.shape(), g)));
  CHECK(same(gs[2].data(), k::sum(gy, {0, 2, 3})));
}

TEST_CASE("conv ops record their primitive names and need no grad when nothing requires it") {
  Var x = leaf({1, 2, 4, 4}, 0), w = leaf({2, 2, 3, 3}, 1);
  CHECK(std::string(A::conv(x, w).op_name()) == "conv");
  CHECK(std::string(A::conv_transpose(x, w).op_name()) == "conv_transpose");
  Var c = A::conv(x.detach(), w.detach());
  CHECK_FALSE(c.requires_grad());
  A::NoGradGuard ng;
  CHECK_FALSE(A::conv(x, w).requires_grad());
}

TEST_CASE("conv and conv_transpose errors name the op, shapes and expectation") {
  Var x = leaf({2, 3, 5, 5}, 0);
  std::string e = error_of([&] { A::conv(leaf({2, 3}, 0), leaf({4, 3}, 1)); });
  CHECK(contains(e, "conv: input float64[2, 3] on cpu has rank 2; expected [N, C, *S]"));
  e = error_of([&] { A::conv(x, leaf({4, 3, 3}, 1)); });
  CHECK(contains(e, "conv: weight float64[4, 3, 3] on cpu has rank 3"));
  e = error_of([&] { A::conv(x, leaf({4, 2, 3, 3}, 1)); });
  CHECK(contains(e, "has 3 channels but weight [4, 2, 3, 3] expects 2"));
  e = error_of([&] { A::conv(x, leaf({4, 3, 3, 3}, 1), Var(), params({1, 1, 1}, {0})); });
  CHECK(contains(e, "conv: stride [1, 1, 1] has 3 values; expected 1 or 2"));
  e = error_of([&] { A::conv_transpose(x, leaf({3, 2, 2, 2}, 1), Var(), params({2}, {0}), {2}); });
  CHECK(contains(e, "conv_transpose: output_padding [2]"));
  CHECK(contains(e, "expected 0 <= output_padding < stride"));
  e = error_of([&] { A::conv_transpose(x, leaf({2, 2, 2, 2}, 1), Var(), params({2}, {0})); });
  CHECK(contains(e, "conv_transpose: input float64[2, 3, 5, 5] on cpu has 3 channels"));
}
}  // TEST_SUITE
