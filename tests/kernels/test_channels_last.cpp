// tests/kernels/test_channels_last.cpp — the channels-last stride layout (MemoryFormat in
// core/tensor.h): its strides and predicates, and that elementwise ops, batch norm, pooling,
// upsampling and convolution give the same values as on NCHW tensors while keeping the layout;
// pooling and upsampling bit for bit, in every op, 1-3 spatial dims and odd windows.
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/copy.h"
#include "core/rng.h"
#include "kernels/conv.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"
#include "tests/tensor_diff.h"
#include "kernels/pool.h"

using namespace dfx;
using dfx::testing::max_abs_diff;
namespace k = dfx::kernels;

namespace {

const MemoryFormat CL = MemoryFormat::ChannelsLast;

// got equals want bit for bit (float32 widens to float64 exactly; NaN payloads and the sign of
// zero count), in the same logical shape and dtype. One CHECK naming the first difference.
void check_bits(const Tensor& got, const Tensor& want, const std::string& what) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  CHECK(got.dtype() == want.dtype());
  const std::vector<double> g = got.to_vector(), w = want.to_vector();
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < g.size(); ++i) {
    uint64_t a, b;
    std::memcpy(&a, &g[i], sizeof a);
    std::memcpy(&b, &w[i], sizeof b);
    if (a != b && bad++ == 0) first = static_cast<int64_t>(i);
  }
  std::string detail = "differences: " + std::to_string(bad) + " of " + std::to_string(g.size());
  if (first >= 0)
    detail += "; first at flat index " + std::to_string(first) + ": got " +
              std::to_string(g[first]) + ", want " + std::to_string(w[first]);
  INFO(detail);
  CHECK(bad == 0);
}

std::string label(const std::string& op, const Shape& s, DType dt) {
  return op + " on " + dtype_name(dt) + " " + ::dfx::detail::cat(s);
}

// Normal values on a grid of 1/4 (many ties in a pooling window), never all zero; dtype dt.
Tensor tied(const Shape& shape, uint64_t seed, DType dt) {
  std::vector<double> v = randn(shape, seed, 0, 0, DType::Float64).to_vector();
  for (double& x : v) x = std::round(x * 4.0) / 4.0 + 0.25;
  return from_vector<double>(v, shape).to(dt);
}

Tensor rnd(const Shape& shape, uint64_t seed, DType dt) {
  return randn(shape, seed, 0, 0, DType::Float64).to(dt);
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
  CHECK(max_abs_diff(up, k::upsample(x, {2}, k::UpsampleMode::Linear)) == 0.0);
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

// Every pooling and upsampling op on channels-last operands: the NCHW result bit for bit (the
// kernels do the same arithmetic in the same order per element), in the channels-last layout.
TEST_CASE("channels-last: every pooling op and its adjoints match NCHW bit for bit") {
  struct Case {
    Shape shape;
    k::PoolWindow w;
  };
  const std::vector<Case> cases = {
      {{2, 6, 13}, {{3}, {2}, {1}}},                  // 1-d, overlapping, padded
      {{2, 5, 9, 7}, {{3}, {2}, {1}}},                // odd sizes, overlap, padding
      {{2, 16, 32, 32}, {{2}, {}, {0}}},              // the U-Net's 2x2, threaded
      {{3, 4, 10, 9}, {{3, 2}, {1, 3}, {1, 0}}},      // per-dim kernel, stride != kernel
      {{2, 7, 17, 15}, {{2}, {3}, {1}}},              // stride > kernel: skipped inputs
      {{2, 3, 7, 6, 5}, {{3}, {2}, {1}}},             // 3-d, overlap, padding
      {{1, 4, 6, 6, 6}, {{2}, {}, {0}}},              // 3-d 2x2x2
      {{2, 9, 5, 8, 7}, {{2, 3, 2}, {2, 1, 3}, {1, 1, 0}}},  // 3-d, per-dim everything
  };
  const MemoryFormat NCHW = MemoryFormat::Contiguous;
  uint64_t seed = 500;
  for (DType dt : {DType::Float64, DType::Float32}) {
    for (const Case& c : cases) {
      Tensor x = tied(c.shape, seed++, dt);
      if (x.numel() > 7) {  // a NaN: it wins its windows in both layouts alike
        std::vector<double> v = x.to_vector();
        v[7] = NAN;
        x = from_vector<double>(v, c.shape).to(dt);
      }
      const Tensor xc = x.contiguous(CL);
      const k::MaxPoolResult mp0 = k::max_pool(x, c.w), mp = k::max_pool(xc, c.w);
      CHECK(mp.values.suggest_memory_format() == CL);
      CHECK(mp.indices.is_contiguous(CL));
      CHECK(mp0.indices.is_contiguous());
      check_bits(mp.values, mp0.values, label("max_pool values", c.shape, dt));
      check_bits(mp.indices, mp0.indices, label("max_pool indices", c.shape, dt));

      const Tensor x2 = rnd(c.shape, seed++, dt), x2c = x2.contiguous(CL);
      const Tensor gat0 = k::pool_gather(x2, mp0.indices);
      const Tensor gat = k::pool_gather(x2c, mp.indices);
      CHECK(gat.suggest_memory_format() == CL);
      check_bits(gat, gat0, label("pool_gather", c.shape, dt));
      // Indices in the other layout than x: the result still follows x.
      const Tensor gat_mixed = k::pool_gather(x2c, mp0.indices);
      CHECK(gat_mixed.suggest_memory_format() == CL);
      check_bits(gat_mixed, gat0, label("pool_gather, NCHW indices", c.shape, dt));
      check_bits(k::pool_gather(x2, mp.indices), gat0,
                 label("pool_gather, channels-last indices", c.shape, dt));

      const Tensor g = rnd(mp0.values.shape(), seed++, dt), gc = g.contiguous(CL);
      const Tensor sc0 = k::pool_scatter(g, mp0.indices, c.shape);
      const Tensor sc = k::pool_scatter(gc, mp.indices, c.shape);
      CHECK(sc.suggest_memory_format() == CL);
      check_bits(sc, sc0, label("pool_scatter", c.shape, dt));
      const Tensor sc_mixed = k::pool_scatter(gc, mp0.indices, c.shape);
      CHECK(sc_mixed.suggest_memory_format() == CL);
      check_bits(sc_mixed, sc0, label("pool_scatter, NCHW indices", c.shape, dt));
      const Tensor sc_nchw = k::pool_scatter(g, mp.indices, c.shape);
      CHECK(sc_nchw.suggest_memory_format() == NCHW);
      check_bits(sc_nchw, sc0, label("pool_scatter, channels-last indices", c.shape, dt));

      const Tensor av = k::avg_pool(x2c, c.w);
      CHECK(av.suggest_memory_format() == CL);
      check_bits(av, k::avg_pool(x2, c.w), label("avg_pool", c.shape, dt));
      const Tensor aa = k::avg_pool_adjoint(gc, c.shape, c.w);
      CHECK(aa.suggest_memory_format() == CL);
      check_bits(aa, k::avg_pool_adjoint(g, c.shape, c.w), label("avg_pool_adjoint", c.shape, dt));
    }
    // A view that is dense in neither layout is copied to NCHW (what it suggests) first.
    const Tensor base = rnd({2, 5, 9, 8}, seed++, dt).contiguous(CL);
    const Tensor view = base.transpose(2, 3);
    REQUIRE_FALSE(view.is_contiguous());
    REQUIRE_FALSE(view.is_contiguous(CL));
    const k::MaxPoolResult mt = k::max_pool(view, {{2}, {}, {0}});
    CHECK(mt.values.suggest_memory_format() == NCHW);
    check_bits(mt.values, k::max_pool(view.contiguous(), {{2}, {}, {0}}).values,
               label("max_pool of a transposed view", view.shape(), dt));
    const Tensor ut = k::upsample(view, {2}, k::UpsampleMode::Linear);
    CHECK(ut.suggest_memory_format() == NCHW);
    check_bits(ut, k::upsample(view.contiguous(), {2}, k::UpsampleMode::Linear),
               label("upsample of a transposed view", view.shape(), dt));
  }
}

TEST_CASE("channels-last: upsampling (nearest, linear) and its adjoint match NCHW bit for bit") {
  struct Case {
    Shape shape;
    std::vector<int64_t> scale;
  };
  const std::vector<Case> cases = {
      {{2, 5, 7}, {2}},  {{2, 3, 9}, {3}},          {{2, 6, 5, 7}, {2}},
      {{1, 5, 4, 3}, {3}}, {{2, 4, 5, 6}, {2, 3}},  {{2, 16, 16, 16}, {2}},  // threaded
      {{1, 3, 3, 4, 5}, {2}}, {{2, 4, 3, 2, 4}, {3, 2, 2}},
  };
  uint64_t seed = 700;
  for (DType dt : {DType::Float64, DType::Float32}) {
    for (const Case& c : cases) {
      for (k::UpsampleMode mode : {k::UpsampleMode::Nearest, k::UpsampleMode::Linear}) {
        const std::string name =
            std::string(mode == k::UpsampleMode::Linear ? "linear" : "nearest") + " x" +
            ::dfx::detail::cat(Shape(c.scale));
        const Tensor x = rnd(c.shape, seed++, dt), xc = x.contiguous(CL);
        const Tensor up0 = k::upsample(x, c.scale, mode);
        const Tensor up = k::upsample(xc, c.scale, mode);
        CHECK(up.suggest_memory_format() == CL);
        check_bits(up, up0, label("upsample " + name, c.shape, dt));
        const Tensor g = rnd(up0.shape(), seed++, dt), gc = g.contiguous(CL);
        const Tensor ad = k::upsample_adjoint(gc, c.scale, mode);
        CHECK(ad.suggest_memory_format() == CL);
        check_bits(ad, k::upsample_adjoint(g, c.scale, mode),
                   label("upsample_adjoint " + name, c.shape, dt));
      }
    }
  }
}

TEST_CASE("channels-last: pooling results do not depend on the thread count") {
  const Tensor x = rnd({3, 24, 34, 30}, 800, DType::Float32).contiguous(CL);
  const k::PoolWindow w{{3}, {2}, {1}};
  const int threads = omp_get_max_threads();
  auto run = [&] {
    const k::MaxPoolResult mp = k::max_pool(x, w);
    const Tensor g = rnd(mp.values.shape(), 801, DType::Float32).contiguous(CL);
    return std::vector<Tensor>{mp.values, mp.indices, k::pool_scatter(g, mp.indices, x.shape()),
                               k::avg_pool_adjoint(g, x.shape(), w),
                               k::upsample(x, {2}, k::UpsampleMode::Linear)};
  };
  omp_set_num_threads(1);
  const std::vector<Tensor> one = run();
  omp_set_num_threads(2);
  const std::vector<Tensor> two = run();
  omp_set_num_threads(threads);
  for (size_t i = 0; i < one.size(); ++i) check_bits(two[i], one[i], "result " + std::to_string(i));
}
