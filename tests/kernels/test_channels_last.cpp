// tests/kernels/test_channels_last.cpp — the channels-last stride layout (MemoryFormat in
// core/tensor.h): its strides and predicates, and that elementwise ops, batch norm, pooling,
// upsampling and convolution give the same values as on NCHW tensors while keeping the layout.
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/copy.h"
#include "core/rng.h"
#include "kernels/conv.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"
#include "kernels/pool.h"

using namespace dfx;
namespace k = dfx::kernels;

namespace {

const MemoryFormat CL = MemoryFormat::ChannelsLast;

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double m = 0.0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

}  // namespace

TEST_CASE("channels-last: strides, predicates and conversion") {
  CHECK(channels_last_strides({2, 3, 4, 5}) == Shape({60, 1, 15, 3}));
  CHECK(channels_last_strides({2, 3, 7}) == Shape({21, 1, 3}));
  CHECK(channels_last_strides({2, 3, 4, 5, 6}) == Shape({360, 1, 90, 18, 3}));
  CHECK_THROWS_WITH(channels_last_strides({2, 3}), doctest::Contains("3 to 5 dims"));

  Tensor x = randn({2, 3, 4, 5}, 31, 0, 0, DType::Float64);
  CHECK(x.suggest_memory_format() == MemoryFormat::Contiguous);
  CHECK_FALSE(x.is_contiguous(CL));
  Tensor y = x.contiguous(CL);
  CHECK(y.is_contiguous(CL));
  CHECK_FALSE(y.is_contiguous());
  CHECK(y.suggest_memory_format() == CL);
  CHECK(y.strides() == Shape({60, 1, 15, 3}));
  CHECK(max_abs_diff(y, x) == 0.0);
  CHECK(y.contiguous(CL).shares_storage(y));
  CHECK(max_abs_diff(y.contiguous(), x) == 0.0);
  // One channel: both layouts at once, so nothing suggests channels-last.
  Tensor one = randn({2, 1, 4, 5}, 32, 0, 0, DType::Float64).contiguous(CL);
  CHECK(one.is_contiguous());
  CHECK(one.suggest_memory_format() == MemoryFormat::Contiguous);
  // The NHWC permutation of a contiguous [N, H, W, C] tensor is channels-last.
  Tensor nhwc = randn({2, 4, 5, 3}, 33, 0, 0, DType::Float64).permute({0, 3, 1, 2});
  CHECK(nhwc.is_contiguous(CL));
}

TEST_CASE("channels-last: elementwise ops keep the layout and the values") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dt));
    Tensor x = randn({2, 3, 6, 5}, 41, 0, 0, dt);
    Tensor z = randn({2, 3, 6, 5}, 42, 0, 0, dt);
    Tensor bias = randn({1, 3, 1, 1}, 43, 0, 0, dt);
    Tensor xc = x.contiguous(CL);
    Tensor u = k::unary(k::UnaryOp::LeakyRelu, xc, 0.2);
    CHECK(u.suggest_memory_format() == CL);
    CHECK(max_abs_diff(u, k::unary(k::UnaryOp::LeakyRelu, x, 0.2)) == 0.0);
    Tensor b = k::binary(k::BinaryOp::Add, xc, bias);  // broadcast over N, H, W
    CHECK(b.suggest_memory_format() == CL);
    CHECK(max_abs_diff(b, k::binary(k::BinaryOp::Add, x, bias)) == 0.0);
    Tensor m = k::binary(k::BinaryOp::Mul, z, xc);  // mixed layouts: the channels-last one wins
    CHECK(m.suggest_memory_format() == CL);
    CHECK(max_abs_diff(m, k::binary(k::BinaryOp::Mul, z, x)) == 0.0);
    Tensor s = k::binary(k::BinaryOp::Sub, xc, randn({6, 5}, 44, 0, 0, dt));  // fewer dims
    CHECK(max_abs_diff(s, k::binary(k::BinaryOp::Sub, x, randn({6, 5}, 44, 0, 0, dt))) == 0.0);
    Tensor w = k::where(k::compare(k::CompareOp::Gt, xc, z), xc, z);
    CHECK(w.suggest_memory_format() == CL);
    CHECK(max_abs_diff(w, k::where(k::compare(k::CompareOp::Gt, x, z), x, z)) == 0.0);
    Tensor acc = z.contiguous(CL);
    k::axpy_(acc, 0.5, xc);
    CHECK(max_abs_diff(acc, k::binary(k::BinaryOp::Add, z, k::binary(k::BinaryOp::Mul, x,
                                      full({}, 0.5, dt)))) <= (dt == DType::Float32 ? 1e-6 : 1e-15));
  }
}

TEST_CASE("channels-last: batch norm, pooling, upsampling and convolution keep the layout") {
  Tensor x = randn({2, 4, 8, 6}, 51, 0, 0, DType::Float64);
  Tensor xc = x.contiguous(CL);
  // Batch norm: the sums are layout-free; apply and backward-apply keep x's layout.
  Tensor sums = k::channel_sums(xc);
  CHECK(max_abs_diff(sums, k::channel_sums(x)) <= 1e-12);
  Tensor mean = randn({4}, 52, 0, 0, DType::Float64);
  Tensor invstd = k::unary(k::UnaryOp::Exp, randn({4}, 53, 0, 0, DType::Float64), 0.0);
  Tensor gamma = randn({4}, 54, 0, 0, DType::Float64);
  Tensor beta = randn({4}, 55, 0, 0, DType::Float64);
  Tensor y = k::bn_apply(xc, mean, invstd, gamma, beta);
  CHECK(y.suggest_memory_format() == CL);
  CHECK(max_abs_diff(y, k::bn_apply(x, mean, invstd, gamma, beta)) <= 1e-14);
  Tensor g = randn({2, 4, 8, 6}, 56, 0, 0, DType::Float64);
  Tensor red = k::bn_backward_reduce(g.contiguous(CL), xc, mean, invstd);
  CHECK(max_abs_diff(red, k::bn_backward_reduce(g, x, mean, invstd)) <= 1e-12);
  Tensor gx = k::bn_backward_apply(g.contiguous(CL), xc, mean, invstd, gamma, red, 96.0);
  CHECK(gx.suggest_memory_format() == CL);
  CHECK(max_abs_diff(gx, k::bn_backward_apply(g, x, mean, invstd, gamma, red, 96.0)) <= 1e-14);
  // The channels-last (rows) path sums in an order fixed by the shape: the same bits on 1 and 2
  // threads, and within rounding of the NCHW (plane) path.
  Tensor big = randn({4, 16, 32, 32}, 63, 0, 0, DType::Float32);
  Tensor bigc = big.contiguous(CL);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<double> one = k::channel_sums(bigc).to_vector();
  omp_set_num_threads(2);
  CHECK(k::channel_sums(bigc).to_vector() == one);
  omp_set_num_threads(threads);
  CHECK(max_abs_diff(k::channel_sums(bigc), k::channel_sums(big)) <= 1e-9);
  // Pooling and its adjoints.
  k::PoolWindow win{{2}, {2}, {0}};
  k::MaxPoolResult mp = k::max_pool(xc, win), mp0 = k::max_pool(x, win);
  CHECK(mp.values.suggest_memory_format() == CL);
  CHECK(max_abs_diff(mp.values, mp0.values) == 0.0);
  CHECK(max_abs_diff(mp.indices, mp0.indices) == 0.0);
  Tensor gp = randn(mp.values.shape(), 57, 0, 0, DType::Float64);
  Tensor sc = k::pool_scatter(gp.contiguous(CL), mp.indices, x.shape());
  CHECK(sc.suggest_memory_format() == CL);
  CHECK(max_abs_diff(sc, k::pool_scatter(gp, mp0.indices, x.shape())) == 0.0);
  Tensor up = k::upsample(xc, {2}, k::UpsampleMode::Linear);
  CHECK(up.suggest_memory_format() == CL);
  CHECK(max_abs_diff(up, k::upsample(x, {2}, k::UpsampleMode::Linear)) <= 1e-14);
  // Convolution and its two adjoints.
  Tensor w = randn({5, 4, 3, 3}, 58, 0, 0, DType::Float64);
  Tensor bias = randn({5}, 59, 0, 0, DType::Float64);
  const auto geo = k::ConvGeometry::make(2, {1}, {1}, {1});
  Tensor c = k::conv(xc, w, bias, geo);
  CHECK(c.suggest_memory_format() == CL);
  CHECK(max_abs_diff(c, k::conv(x, w, bias, geo)) <= 1e-12);
  Tensor gy = randn(c.shape(), 60, 0, 0, DType::Float64);
  Tensor ct = k::conv_transpose(gy.contiguous(CL), w, Tensor(), x.shape(), geo);
  CHECK(ct.suggest_memory_format() == CL);
  CHECK(max_abs_diff(ct, k::conv_transpose(gy, w, Tensor(), x.shape(), geo)) <= 1e-12);
  // A channels-last weight makes the result channels-last even for a one-channel NCHW input
  // (how Module::to(ChannelsLast) turns a whole network).
  Tensor x1 = randn({2, 1, 8, 6}, 61, 0, 0, DType::Float64);
  Tensor w1 = randn({5, 1, 3, 3}, 62, 0, 0, DType::Float64);
  Tensor w1c = Tensor::empty(w1.shape(), w1.dtype(), w1.device(), CL);
  copy_(w1c, w1);
  CHECK(w1c.suggest_memory_format() == CL);
  Tensor c1 = k::conv(x1, w1c, Tensor(), geo);
  CHECK(c1.suggest_memory_format() == CL);
  CHECK(max_abs_diff(c1, k::conv(x1, w1, Tensor(), geo)) <= 1e-12);
  Tensor gw = k::conv_weight_grad(gy.contiguous(CL), xc, w.shape(), geo);
  CHECK(max_abs_diff(gw, k::conv_weight_grad(gy, x, w.shape(), geo)) <= 1e-11);
}

TEST_CASE("channels-last: the weight and bias gradients read the layout in place") {
  const MemoryFormat CL = MemoryFormat::ChannelsLast;
  const auto geo = k::ConvGeometry::make(2, {2}, {1}, {1});
  Tensor x = randn({3, 4, 9, 7}, 71, 0, 0, DType::Float64);
  Tensor w = randn({6, 4, 3, 3}, 72, 0, 0, DType::Float64);
  Tensor gy = randn(k::conv_output_shape(x.shape(), w.shape(), geo, "test"), 73, 0, 0,
                    DType::Float64);
  // dW comes out in the activations' layout, with the same values.
  Tensor gw = k::conv_weight_grad(gy.contiguous(CL), x.contiguous(CL), w.shape(), geo);
  CHECK(gw.suggest_memory_format() == CL);
  CHECK(max_abs_diff(gw, k::conv_weight_grad(gy, x, w.shape(), geo)) <= 1e-11);
  // The bias gradient of a channels-last gradient sums the same values per channel.
  Tensor gb = k::conv_bias_grad(gy.contiguous(CL));
  Tensor want = k::conv_bias_grad(gy);
  REQUIRE(gb.shape() == Shape{6});
  CHECK(max_abs_diff(gb, want) <= 1e-12);
  CHECK(max_abs_diff(want, zeros({6}, DType::Float64)) > 0.1);  // not a trivial sum
  // 3-d (5-dim tensors) as well.
  const auto g3 = k::ConvGeometry::make(3, {1}, {1}, {1});
  Tensor x3 = randn({2, 3, 5, 4, 6}, 74, 0, 0, DType::Float64);
  Tensor w3 = randn({2, 3, 3, 3, 3}, 75, 0, 0, DType::Float64);
  Tensor g3y = randn(k::conv_output_shape(x3.shape(), w3.shape(), g3, "test"), 76, 0, 0,
                     DType::Float64);
  CHECK(max_abs_diff(k::conv_bias_grad(g3y.contiguous(CL)), k::conv_bias_grad(g3y)) <= 1e-12);
  CHECK(max_abs_diff(k::conv_weight_grad(g3y.contiguous(CL), x3.contiguous(CL), w3.shape(), g3),
                     k::conv_weight_grad(g3y, x3, w3.shape(), g3)) <= 1e-11);
}
