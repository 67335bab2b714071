// tests/gpu/test_cuda_ops.cpp — every CUDA op family against its CPU kernel on random (never
// all-zero) inputs: reductions, batch norm, the FEM stencils, pooling/upsampling with adjoints,
// convolutions (1-3 spatial dims, stride, padding, dilation, transposed, weight and bias
// gradients) and concat/stack/split, in several shapes including odd sizes and non-contiguous
// inputs. float64 must agree to 1e-12 (relative to the result's largest magnitude, since sums run
// in another order), float32 to 1e-5; indices and max/min values exactly. Skips without a device
// (tests/gpu/main_gpu.cpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/conv.h"
#include "kernels/conv_config.h"
#include "kernels/elementwise.h"
#include "kernels/fem.h"
#include "kernels/norm.h"
#include "kernels/pool.h"
#include "kernels/reduce.h"
#include "kernels/shape_ops.h"

using namespace dfx;
namespace k = dfx::kernels;

namespace {

const Device kDev = Device::cuda(0);
const DType kFloats[] = {DType::Float64, DType::Float32};

double tol_for(DType t) { return t == DType::Float32 ? 1e-5 : 1e-12; }

// |got - want| <= tol * (|want| + max |want|) element by element, on the CPU in float64; NaNs
// match NaNs. One CHECK per tensor naming the first mismatch.
void check_close(const Tensor& got_dev, const Tensor& want, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(got_dev.defined());
  CHECK(got_dev.device() == kDev);
  REQUIRE(got_dev.shape() == want.shape());
  CHECK(got_dev.dtype() == want.dtype());
  const std::vector<double> g = got_dev.to_vector(), w = want.to_vector();
  double scale = 0;
  for (double v : w)
    if (std::isfinite(v)) scale = std::max(scale, std::fabs(v));
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < g.size(); ++i) {
    const bool ok = (std::isnan(g[i]) && std::isnan(w[i])) || g[i] == w[i] ||
                    std::fabs(g[i] - w[i]) <= tol * (std::fabs(w[i]) + scale);
    if (!ok && bad++ == 0) first = static_cast<int64_t>(i);
  }
  std::string detail = "mismatches: " + std::to_string(bad) + " of " + std::to_string(g.size());
  if (first >= 0)
    detail += "; first at flat index " + std::to_string(first) + ": got " +
              std::to_string(g[first]) + ", want " + std::to_string(w[first]);
  INFO(detail);
  CHECK(bad == 0);
}

void check_exact(const Tensor& got_dev, const Tensor& want, const std::string& what) {
  check_close(got_dev, want, 0.0, what);
}

std::string label(const std::string& op, const Shape& s, DType dt) {
  return op + " on " + dtype_name(dt) + " " + ::dfx::detail::cat(s);
}

// Normal values offset so no tensor is all zero; dtype dt on the CPU.
Tensor rnd(const Shape& shape, uint64_t seed, DType dt, double shift = 0.1) {
  std::vector<double> v = randn(shape, seed, 0, 0, DType::Float64).to_vector();
  for (double& x : v) x += shift;
  return from_vector<double>(v, shape).to(dt);
}

Tensor pos(const Shape& shape, uint64_t seed, DType dt) {
  return uniform(shape, 0.5, 2.0, seed, 0, 0, dt);
}

Tensor gpu(const Tensor& t) { return t.to(kDev); }

}  // namespace

TEST_SUITE("gpu") {

TEST_CASE("cuda ops: sum, mean, max, min, var and argmax match the CPU over any dims") {
  struct Case {
    Shape shape;
    std::vector<std::vector<int64_t>> dims;
  };
  const std::vector<Case> cases = {
      {{7}, {{}, {0}}},
      {{3, 5}, {{}, {0}, {1}}},
      {{4, 6, 5}, {{}, {0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1}}},
      {{2, 3, 4, 5}, {{0, 2, 3}, {1}, {-1}, {0, 1}}},
      {{3, 40001}, {{1}, {}}},         // long rows: split into chunks, then combined
      {{50001, 3}, {{0}}},             // leading dims of a contiguous tensor: the column path
      {{2, 9000, 7}, {{0, 1}, {1}}},   // columns with chunks; a middle dim
  };
  uint64_t seed = 1;
  for (DType dt : kFloats) {
    for (const Case& c : cases) {
      const Tensor x = rnd(c.shape, seed++, dt);
      const Tensor xg = gpu(x);
      for (const auto& d : c.dims) {
        const std::string at = label("reduce dims " + ::dfx::detail::cat(Shape(d)), c.shape, dt);
        check_close(k::sum(xg, d), k::sum(x, d), tol_for(dt), "sum " + at);
        check_close(k::mean(xg, d, true), k::mean(x, d, true), tol_for(dt), "mean " + at);
        check_exact(k::amax(xg, d), k::amax(x, d), "max " + at);
        check_exact(k::amin(xg, d), k::amin(x, d), "min " + at);
        check_close(k::var(xg, d, 1), k::var(x, d, 1), tol_for(dt), "var " + at);
        check_close(k::var(xg, d, 0, true), k::var(x, d, 0, true), tol_for(dt), "var0 " + at);
      }
      for (int a = 0; a < x.dim(); ++a)
        check_exact(k::argmax(xg, a), k::argmax(x, a), "argmax dim " + std::to_string(a) +
                                                           " " + label("", c.shape, dt));
    }
    // Non-contiguous inputs: a transpose and a stride-2 slice.
    const Tensor base = rnd({6, 9, 5}, seed++, dt);
    const Tensor bg = gpu(base);
    const std::pair<Tensor, Tensor> views[] = {{base.transpose(0, 2), bg.transpose(0, 2)},
                                               {base.slice(1, 0, 9, 2), bg.slice(1, 0, 9, 2)}};
    for (const auto& [v, vg] : views) {
      for (const std::vector<int64_t>& d : {std::vector<int64_t>{}, {0}, {1, 2}, {2}}) {
        const std::string at = label("strided dims " + ::dfx::detail::cat(Shape(d)), v.shape(), dt);
        check_close(k::sum(vg, d), k::sum(v, d), tol_for(dt), "sum " + at);
        check_exact(k::amax(vg, d), k::amax(v, d), "max " + at);
        check_close(k::var(vg, d), k::var(v, d), tol_for(dt), "var " + at);
      }
      check_exact(k::argmax(vg, 1), k::argmax(v, 1), label("strided argmax", v.shape(), dt));
    }
  }
  // int64 sums and extremes, and ties/NaN in argmax and max.
  std::vector<int64_t> iv;
  for (double v : rnd({5, 33}, 77, DType::Float64).to_vector()) iv.push_back(std::lround(v * 20));
  const Tensor xi = from_vector<int64_t>(iv, {5, 33});
  check_exact(k::sum(gpu(xi), {1}), k::sum(xi, {1}), "int64 sum");
  check_exact(k::mean(gpu(xi), {0}), k::mean(xi, {0}), "int64 mean");
  check_exact(k::amax(gpu(xi), {1}), k::amax(xi, {1}), "int64 max");
  check_exact(k::argmax(gpu(xi), 1), k::argmax(xi, 1), "int64 argmax");
  Tensor t = from_vector<double>({1, 3, 3, 2, NAN, 5, 0, 1, NAN, 2, 2, 1}, {3, 4});
  check_exact(k::argmax(gpu(t), 1), k::argmax(t, 1), "argmax with ties and NaN");
  check_exact(k::amax(gpu(t), {1}), k::amax(t, {1}), "max with NaN");
  check_exact(k::amin(gpu(t), {1}), k::amin(t, {1}), "min with NaN");
}

TEST_CASE("cuda ops: batch-norm sums, apply and backward match the CPU") {
  // Channels-last inputs (the last three) are read in place as [N*S, C] rows
  // (rows_partials_kernel for the sums: C > 256 in two channel groups, several row chunks) and
  // keep their layout.
  struct Case {
    Shape shape;
    bool channels_last;
  };
  const Case cases[] = {{{4, 3}, false},           {{2, 5, 7}, false},
                        {{3, 4, 6, 5}, false},      {{2, 3, 4, 5, 6}, false},
                        {{2, 3, 9001}, false},      {{2, 300, 30, 20}, true},
                        {{3, 16, 40, 40}, true},    {{2, 8, 3, 4, 5}, true}};
  uint64_t seed = 100;
  for (DType dt : kFloats) {
    for (const Case& c : cases) {
      const Shape& s = c.shape;
      const MemoryFormat fmt =
          c.channels_last ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
      const std::string tag = c.channels_last ? " channels-last" : "";
      const int64_t C = s[1];
      const Tensor x = rnd(s, seed++, dt, 0.7), g = rnd(s, seed++, dt);
      const Tensor mean = rnd({C}, seed++, DType::Float64), invstd = pos({C}, seed++, DType::Float64);
      const Tensor gamma = rnd({C}, seed++, dt, 1.0), beta = rnd({C}, seed++, dt);
      const Tensor xg = gpu(x).contiguous(fmt), gg = gpu(g).contiguous(fmt);
      const Tensor mg = gpu(mean), ig = gpu(invstd), gag = gpu(gamma), bg = gpu(beta);
      const double t = tol_for(dt);
      check_close(k::channel_sums(xg), k::channel_sums(x), 1e-12,
                  label("channel_sums" + tag, s, dt));
      const Tensor y = k::bn_apply(xg, mg, ig, gag, bg);
      CHECK(y.suggest_memory_format() == xg.suggest_memory_format());
      check_close(y, k::bn_apply(x, mean, invstd, gamma, beta), t,
                  label("bn_apply" + tag, s, dt));
      check_close(k::bn_apply(xg, mg, ig, Tensor(), Tensor()),
                  k::bn_apply(x, mean, invstd, Tensor(), Tensor()), t,
                  label("bn_apply without affine" + tag, s, dt));
      // The fused activation: the GPU's unfused pair bit for bit, the CPU's to tolerance.
      for (double slope : {0.2, 0.0}) {
        const k::FusedLeakyRelu act{true, slope};
        const Tensor z = k::bn_apply(xg, mg, ig, gag, bg, act);
        check_exact(z, k::unary(k::UnaryOp::LeakyRelu, y, slope),
                    label("bn_apply + leaky_relu vs unfused" + tag, s, dt));
        check_close(z, k::bn_apply(x, mean, invstd, gamma, beta, act), t,
                    label("bn_apply + leaky_relu" + tag, s, dt));
      }
      const Tensor sums = k::bn_backward_reduce(g, x, mean, invstd);
      check_close(k::bn_backward_reduce(gg, xg, mg, ig), sums, 1e-12,
                  label("bn_backward_reduce" + tag, s, dt));
      const double count = static_cast<double>(x.numel() / C);
      check_close(k::bn_backward_apply(gg, xg, mg, ig, gag, gpu(sums), count),
                  k::bn_backward_apply(g, x, mean, invstd, gamma, sums, count), t,
                  label("bn_backward_apply" + tag, s, dt));
      // The fused leaky ReLU's backward (g: the gradient of z), reading x or rebuilding it
      // from z, against the CPU's (rebuilt x carries z's rounding: looser in float32).
      const k::FusedLeakyRelu act{true, 0.2};
      const Tensor z = k::bn_apply(x, mean, invstd, gamma, beta, act);
      const Tensor zg = gpu(z).contiguous(fmt);
      for (bool rebuild : {false, true}) {
        const std::string how = rebuild ? " (x rebuilt)" : " (fused leaky ReLU)";
        const k::LeakyReluOutput oc{z, 0.2, rebuild, gamma, beta}, og{zg, 0.2, rebuild, gag, bg};
        const Tensor sc = k::bn_backward_reduce(g, rebuild ? Tensor() : x, mean, invstd, oc);
        const double ts = !rebuild ? 1e-12 : dt == DType::Float32 ? 2e-5 : 1e-9;
        check_close(k::bn_backward_reduce(gg, rebuild ? Tensor() : xg, mg, ig, og), sc, ts,
                    label("bn_backward_reduce" + how + tag, s, dt));
        const Tensor ac =
            k::bn_backward_apply(g, rebuild ? Tensor() : x, mean, invstd, gamma, sc, count, oc);
        const Tensor ag = k::bn_backward_apply(gg, rebuild ? Tensor() : xg, mg, ig, gag,
                                               gpu(sc), count, og);
        CHECK(ag.suggest_memory_format() == xg.suggest_memory_format());
        check_close(ag, ac, rebuild && dt == DType::Float32 ? 1e-4 : t,
                    label("bn_backward_apply" + how + tag, s, dt));
      }
    }
    // A non-contiguous input: channels taken from a transposed tensor.
    const Tensor base = rnd({5, 3, 4}, seed++, dt);
    const Tensor xv = base.transpose(0, 1);  // [3, 5, 4], channel = 5
    check_close(k::channel_sums(gpu(base).transpose(0, 1)), k::channel_sums(xv), 1e-12,
                label("channel_sums transposed", xv.shape(), dt));
  }
  // An empty batch gives zeros.
  check_exact(k::channel_sums(Tensor::empty({0, 3, 4}, DType::Float32, kDev)),
              zeros({2, 3}, DType::Float64), "channel_sums of an empty batch");
}

TEST_CASE("cuda ops: FEM energy, apply and bilinear match the CPU in 2-d and 3-d") {
  const Shape shapes[] = {{2, 1, 5, 7}, {1, 1, 33, 17}, {3, 6, 4}, {2, 1, 5, 5, 5},
                          {1, 9, 9, 9}, {1, 1, 70, 90}};
  uint64_t seed = 200;
  for (DType dt : kFloats) {
    for (const Shape& s : shapes) {
      const Tensor u = rnd(s, seed++, dt), nu = pos(s, seed++, dt), h = rnd(s, seed++, dt);
      const Tensor ug = gpu(u), nug = gpu(nu), hg = gpu(h);
      const double t = tol_for(dt);
      check_close(k::fem_energy(ug, nug), k::fem_energy(u, nu), t, label("fem_energy", s, dt));
      check_close(k::fem_apply(nug, ug), k::fem_apply(nu, u), t, label("fem_apply", s, dt));
      check_close(k::fem_bilinear(hg, ug), k::fem_bilinear(h, u), t,
                  label("fem_bilinear", s, dt));
    }
    // A non-contiguous field (a transposed square grid).
    const Tensor u = rnd({2, 1, 6, 6}, seed++, dt), nu = pos({2, 1, 6, 6}, seed++, dt);
    check_close(k::fem_apply(gpu(nu).transpose(2, 3), gpu(u).transpose(2, 3)),
                k::fem_apply(nu.transpose(2, 3), u.transpose(2, 3)), tol_for(dt),
                label("fem_apply transposed", u.shape(), dt));
  }
}

TEST_CASE("cuda ops: pooling, upsampling and their adjoints match the CPU") {
  struct Case {
    Shape shape;
    k::PoolWindow w;
  };
  const std::vector<Case> cases = {
      {{2, 3, 11}, {{3}, {2}, {1}}},                 // 1-d, overlapping, padded
      {{2, 3, 8, 8}, {{2}, {}, {0}}},                // the U-Net's 2x2
      {{1, 2, 9, 7}, {{3}, {2}, {1}}},               // odd sizes, overlap, padding
      {{2, 2, 7, 10}, {{3, 2}, {1, 2}, {1, 0}}},     // stride 1 in one dim
      {{1, 2, 5, 6, 7}, {{2}, {}, {0}}},             // 3-d
      {{1, 1, 7, 5, 6}, {{3}, {2}, {1}}},            // 3-d, overlap, padding
  };
  uint64_t seed = 300;
  for (DType dt : kFloats) {
    const double t = tol_for(dt);
    for (const Case& c : cases) {
      const Tensor x = rnd(c.shape, seed++, dt);
      const Tensor xg = gpu(x);
      const k::MaxPoolResult want = k::max_pool(x, c.w);
      const k::MaxPoolResult got = k::max_pool(xg, c.w);
      check_exact(got.values, want.values, label("max_pool values", c.shape, dt));
      check_exact(got.indices, want.indices, label("max_pool indices", c.shape, dt));
      const Tensor x2 = rnd(c.shape, seed++, dt);
      check_exact(k::pool_gather(gpu(x2), got.indices), k::pool_gather(x2, want.indices),
                  label("pool_gather", c.shape, dt));
      const Tensor g = rnd(want.values.shape(), seed++, dt);
      check_close(k::pool_scatter(gpu(g), got.indices, c.shape),
                  k::pool_scatter(g, want.indices, c.shape), t, label("pool_scatter", c.shape, dt));
      check_close(k::avg_pool(xg, c.w), k::avg_pool(x, c.w), t, label("avg_pool", c.shape, dt));
      check_close(k::avg_pool_adjoint(gpu(g), c.shape, c.w), k::avg_pool_adjoint(g, c.shape, c.w),
                  t, label("avg_pool_adjoint", c.shape, dt));
      // Channels-last on the GPU (the coalesced NHWC kernels): the CPU's NCHW results as above,
      // those of the GPU's NCHW kernels, and the result channels-last (is_contiguous(CL): with one
      // channel both layouts are dense and suggest_memory_format may name either).
      const MemoryFormat CL = MemoryFormat::ChannelsLast;
      const Tensor xgc = xg.contiguous(CL), ggc = gpu(g).contiguous(CL);
      const k::MaxPoolResult gotc = k::max_pool(xgc, c.w);
      CHECK(gotc.values.is_contiguous(CL));
      CHECK(gotc.indices.is_contiguous(CL));
      check_exact(gotc.values, want.values, label("channels-last max_pool values", c.shape, dt));
      check_exact(gotc.indices, want.indices, label("channels-last max_pool indices", c.shape, dt));
      const Tensor gatc = k::pool_gather(gpu(x2).contiguous(CL), gotc.indices);
      CHECK(gatc.is_contiguous(CL));
      check_exact(gatc, k::pool_gather(x2, want.indices),
                  label("channels-last pool_gather", c.shape, dt));
      const Tensor scc = k::pool_scatter(ggc, gotc.indices, c.shape);
      CHECK(scc.is_contiguous(CL));
      check_close(scc, k::pool_scatter(g, want.indices, c.shape), t,
                  label("channels-last pool_scatter", c.shape, dt));
      check_exact(scc, k::pool_scatter(gpu(g), got.indices, c.shape),
                  label("channels-last pool_scatter vs NCHW on the GPU", c.shape, dt));
      // Disjoint windows (stride >= kernel): the direct scatter, bit for bit the sorted one.
      if (want.disjoint) {
        check_exact(k::pool_scatter(gpu(g), got.indices, c.shape, true),
                    k::pool_scatter(gpu(g), got.indices, c.shape),
                    label("direct pool_scatter", c.shape, dt));
        check_exact(k::pool_scatter(ggc, gotc.indices, c.shape, true), scc,
                    label("channels-last direct pool_scatter", c.shape, dt));
      }
      // Mixed: NCHW indices with channels-last gradients.
      check_exact(k::pool_scatter(ggc, got.indices, c.shape), scc,
                  label("channels-last pool_scatter, NCHW indices", c.shape, dt));
      const Tensor avc = k::avg_pool(xgc, c.w);
      CHECK(avc.is_contiguous(CL));
      check_close(avc, k::avg_pool(x, c.w), t, label("channels-last avg_pool", c.shape, dt));
      // Within one rounding of the GPU's NCHW kernel (nvcc may contract multiply-adds differently
      // in the two template instances, so not bit for bit).
      const double t1 = dt == DType::Float32 ? 1e-6 : 1e-15;
      check_close(avc, k::avg_pool(xg, c.w), t1,
                  label("channels-last avg_pool vs NCHW on the GPU", c.shape, dt));
      const Tensor aac = k::avg_pool_adjoint(ggc, c.shape, c.w);
      CHECK(aac.is_contiguous(CL));
      check_close(aac, k::avg_pool_adjoint(g, c.shape, c.w), t,
                  label("channels-last avg_pool_adjoint", c.shape, dt));
      check_close(aac, k::avg_pool_adjoint(gpu(g), c.shape, c.w), t1,
                  label("channels-last avg_pool_adjoint vs NCHW on the GPU", c.shape, dt));
    }
    // Ties: constant windows pick the first index.
    const Tensor flat = full({1, 2, 6, 6}, 1.5, dt);
    check_exact(k::max_pool(gpu(flat), {{3}, {1}, {1}}).indices,
                k::max_pool(flat, {{3}, {1}, {1}}).indices, "max_pool ties");
    // A non-contiguous input.
    const Tensor base = rnd({2, 3, 9, 8}, seed++, dt);
    check_exact(k::max_pool(gpu(base).transpose(2, 3), {{2}, {}, {0}}).values,
                k::max_pool(base.transpose(2, 3), {{2}, {}, {0}}).values,
                label("max_pool transposed", base.shape(), dt));
    // Upsampling by 2 and 3 in 1-3 spatial dims, both modes, and the adjoints.
    const Shape ushapes[] = {{2, 3, 7}, {1, 2, 5, 6}, {1, 2, 3, 4, 5}};
    for (const Shape& s : ushapes) {
      for (k::UpsampleMode mode : {k::UpsampleMode::Nearest, k::UpsampleMode::Linear}) {
        for (int64_t f : {2, 3}) {
          const std::string name =
              std::string(mode == k::UpsampleMode::Linear ? "linear" : "nearest") + " x" +
              std::to_string(f);
          const Tensor x = rnd(s, seed++, dt);
          const Tensor up = k::upsample(x, {f}, mode);
          check_close(k::upsample(gpu(x), {f}, mode), up, t, label("upsample " + name, s, dt));
          const Tensor g = rnd(up.shape(), seed++, dt);
          check_close(k::upsample_adjoint(gpu(g), {f}, mode), k::upsample_adjoint(g, {f}, mode),
                      t, label("upsample_adjoint " + name, s, dt));
          // Channels-last on the GPU: the CPU's NCHW values, and the GPU's NCHW ones to within one
          // rounding (multiply-add contraction may differ between the two kernel instances).
          const double t1 = dt == DType::Float32 ? 1e-6 : 1e-15;
          const MemoryFormat CL = MemoryFormat::ChannelsLast;
          const Tensor upc = k::upsample(gpu(x).contiguous(CL), {f}, mode);
          CHECK(upc.suggest_memory_format() == CL);
          check_close(upc, up, t, label("channels-last upsample " + name, s, dt));
          check_close(upc, k::upsample(gpu(x), {f}, mode), t1,
                      label("channels-last upsample vs NCHW on the GPU " + name, s, dt));
          const Tensor adc = k::upsample_adjoint(gpu(g).contiguous(CL), {f}, mode);
          CHECK(adc.suggest_memory_format() == CL);
          check_close(adc, k::upsample_adjoint(g, {f}, mode), t,
                      label("channels-last upsample_adjoint " + name, s, dt));
          check_close(adc, k::upsample_adjoint(gpu(g), {f}, mode), t1,
                      label("channels-last upsample_adjoint vs NCHW on the GPU " + name, s, dt));
        }
      }
    }
  }
}

TEST_CASE("cuda ops: conv, conv_transpose and the weight and bias gradients match the CPU") {
  struct Case {
    Shape x, w;
    std::vector<int64_t> stride, padding, dilation;
    bool bias;
  };
  const std::vector<Case> cases = {
      {{2, 3, 17}, {4, 3, 3}, {1}, {1}, {1}, true},                 // 1-d
      {{2, 3, 18}, {5, 3, 4}, {2}, {2}, {2}, false},                // 1-d stride/pad/dilation
      {{2, 3, 9, 11}, {5, 3, 3, 3}, {1}, {1}, {1}, true},           // 2-d, odd sizes
      {{1, 4, 16, 15}, {6, 4, 3, 3}, {2}, {1}, {1}, true},          // stride 2
      {{2, 2, 13, 12}, {3, 2, 3, 2}, {2, 1}, {2, 0}, {2, 3}, false},  // mixed per-dim
      {{3, 5, 8, 8}, {7, 5, 1, 1}, {1}, {0}, {1}, true},            // pointwise
      {{1, 3, 7, 8, 9}, {4, 3, 3, 3, 3}, {1}, {1}, {1}, true},      // 3-d
      {{2, 2, 9, 8, 7}, {3, 2, 2, 3, 2}, {2}, {1}, {1, 2, 1}, false},  // 3-d stride/dilation
      {{4, 16, 40, 40}, {16, 16, 3, 3}, {1}, {1}, {1}, true},       // split-K weight gradient
      // Channel counts divisible by 4: conv.cu's 16-byte channels-last gathers (float32).
      {{2, 8, 11, 9}, {12, 8, 3, 3}, {1}, {1}, {1}, true},
      {{2, 4, 13, 12}, {8, 4, 3, 2}, {2, 1}, {2, 0}, {2, 3}, false},
      {{1, 4, 5, 6, 7}, {8, 4, 3, 3, 3}, {1}, {1}, {1}, true},
  };
  uint64_t seed = 400;
  for (DType dt : kFloats) {
    const double t = tol_for(dt);
    for (const Case& c : cases) {
      const int nd = static_cast<int>(c.x.size()) - 2;
      const k::ConvGeometry g = k::ConvGeometry::make(nd, c.stride, c.padding, c.dilation);
      const Tensor x = rnd(c.x, seed++, dt), w = rnd(c.w, seed++, dt);
      const Tensor b = c.bias ? rnd({c.w[0]}, seed++, dt) : Tensor();
      const Tensor y = k::conv(x, w, b, g);
      const std::string at = label("conv " + g.str(), c.x, dt);
      check_close(k::conv(gpu(x), gpu(w), c.bias ? gpu(b) : Tensor(), g), y, t, at);
      const Tensor gy = rnd(y.shape(), seed++, dt);
      const Tensor bt = c.bias ? rnd({c.x[1]}, seed++, dt) : Tensor();
      check_close(k::conv_transpose(gpu(gy), gpu(w), c.bias ? gpu(bt) : Tensor(), c.x, g),
                  k::conv_transpose(gy, w, bt, c.x, g), t, "conv_transpose: " + at);
      check_close(k::conv_weight_grad(gpu(gy), gpu(x), c.w, g),
                  k::conv_weight_grad(gy, x, c.w, g), t, "conv_weight_grad: " + at);
      check_close(k::conv_bias_grad(gpu(gy)), k::conv_bias_grad(gy), t, "conv_bias_grad: " + at);
      // Channels-last operands, read and written in place by the GPU kernels.
      const MemoryFormat cl = MemoryFormat::ChannelsLast;
      const Tensor xc = gpu(x).contiguous(cl), wc = gpu(w).contiguous(cl);
      const Tensor gyc = gpu(gy).contiguous(cl);
      const Tensor yc = k::conv(xc, wc, c.bias ? gpu(b) : Tensor(), g);
      const Tensor dxc = k::conv_transpose(gyc, wc, c.bias ? gpu(bt) : Tensor(), c.x, g);
      const Tensor dwc = k::conv_weight_grad(gyc, xc, c.w, g);
      CHECK(yc.is_contiguous(cl));
      CHECK(dxc.is_contiguous(cl));
      CHECK(dwc.is_contiguous(cl));
      check_close(yc, y, t, "channels-last conv: " + at);
      check_close(dxc, k::conv_transpose(gy, w, bt, c.x, g), t,
                  "channels-last conv_transpose: " + at);
      check_close(dwc, k::conv_weight_grad(gy, x, c.w, g), t,
                  "channels-last conv_weight_grad: " + at);
      check_close(k::conv_bias_grad(gyc), k::conv_bias_grad(gy), t,
                  "channels-last conv_bias_grad: " + at);
    }
    // ConvTranspose with output padding (x larger than the minimum) and a non-contiguous input.
    const k::ConvGeometry g2 = k::ConvGeometry::make(2, {2}, {1}, {1});
    const Tensor w = rnd({4, 3, 3, 3}, seed++, dt);
    const Tensor y = rnd({2, 4, 5, 6}, seed++, dt);
    const Shape xs{2, 3, 10, 12};
    check_close(k::conv_transpose(gpu(y), gpu(w), Tensor(), xs, g2),
                k::conv_transpose(y, w, Tensor(), xs, g2), t, label("output padding", xs, dt));
    const Tensor base = rnd({2, 3, 12, 10}, seed++, dt);
    const Tensor wt = rnd({4, 3, 3, 3}, seed++, dt).transpose(2, 3);  // a non-contiguous weight
    check_close(k::conv(gpu(base).transpose(2, 3), gpu(wt.contiguous()).transpose(2, 3), Tensor(),
                        g2),
                k::conv(base.transpose(2, 3), wt.contiguous().transpose(2, 3), Tensor(), g2), t,
                label("conv transposed input and weight", base.shape(), dt));
  }
}

TEST_CASE("cuda ops: the native TF32 tensor-core convolutions match the CPU to TF32 accuracy") {
  // TF32 keeps 10 mantissa bits of each product's operands: about 1e-3 relative error per
  // product, shrinking in long sums. The tolerance (scaled by the largest |value|, as
  // check_close does) is 5e-3; float32 FMA must stay within 1e-5, so a TF32 path that silently
  // ran in FP32 shows up in the bitwise comparison below and one that is wrong misses 5e-3.
  const bool was_tf32 = k::allow_tf32();
  const k::ConvBackend was_backend = k::conv_backend();
  k::set_conv_backend(k::ConvBackend::Native);
  struct Case {
    Shape x, w;
    std::vector<int64_t> stride, padding;
  };
  const std::vector<Case> cases = {
      {{2, 16, 33, 31}, {24, 16, 3, 3}, {1}, {1}},  // K = 144: a partial last tile in M, N, K
      {{1, 8, 20, 20}, {4, 8, 3, 3}, {2}, {1}},     // stride 2, M < 16
      {{1, 3, 6, 7, 8}, {5, 3, 3, 3, 3}, {1}, {1}}, // 3-d
      {{4, 32, 48, 48}, {32, 32, 3, 3}, {1}, {1}},  // split-K weight gradient
  };
  uint64_t seed = 900;
  for (const Case& c : cases) {
    const int nd = static_cast<int>(c.x.size()) - 2;
    const k::ConvGeometry g = k::ConvGeometry::make(nd, c.stride, c.padding, {1});
    const Tensor x = rnd(c.x, seed++, DType::Float32), w = rnd(c.w, seed++, DType::Float32);
    const Tensor b = rnd({c.w[0]}, seed++, DType::Float32);
    const Tensor x64 = x.to(DType::Float64), w64 = w.to(DType::Float64);
    const Tensor y64 = k::conv(x64, w64, b.to(DType::Float64), g);
    const Tensor gy = rnd(y64.shape(), seed++, DType::Float32);
    const std::string at = label("tf32 conv " + g.str(), c.x, DType::Float32);
    k::set_allow_tf32(false);
    const Tensor y_fp32 = k::conv(gpu(x), gpu(w), gpu(b), g).cpu();
    k::set_allow_tf32(true);
    const Tensor y_tf32 = k::conv(gpu(x), gpu(w), gpu(b), g);
    check_close(y_tf32.to(DType::Float64), y64, 5e-3, at);
    CHECK(y_tf32.cpu().to_vector() != y_fp32.to_vector());  // the tensor cores really ran
    check_close(k::conv_transpose(gpu(gy), gpu(w), Tensor(), c.x, g).to(DType::Float64),
                k::conv_transpose(gy.to(DType::Float64), w64, Tensor(), c.x, g), 5e-3,
                "conv_transpose: " + at);
    check_close(k::conv_weight_grad(gpu(gy), gpu(x), c.w, g).to(DType::Float64),
                k::conv_weight_grad(gy.to(DType::Float64), x64, c.w, g), 5e-3,
                "conv_weight_grad: " + at);
    // Deterministic: the same bits twice.
    CHECK(k::conv(gpu(x), gpu(w), gpu(b), g).cpu().to_vector() == y_tf32.cpu().to_vector());
    // Channels-last: the same bound, with the reduction in (tap, channel) order.
    const MemoryFormat cl = MemoryFormat::ChannelsLast;
    const Tensor xc = gpu(x).contiguous(cl), wc = gpu(w).contiguous(cl);
    const Tensor gyc = gpu(gy).contiguous(cl);
    check_close(k::conv(xc, wc, gpu(b), g).to(DType::Float64), y64, 5e-3, "channels-last " + at);
    check_close(k::conv_transpose(gyc, wc, Tensor(), c.x, g).to(DType::Float64),
                k::conv_transpose(gy.to(DType::Float64), w64, Tensor(), c.x, g), 5e-3,
                "channels-last conv_transpose: " + at);
    check_close(k::conv_weight_grad(gyc, xc, c.w, g).to(DType::Float64),
                k::conv_weight_grad(gy.to(DType::Float64), x64, c.w, g), 5e-3,
                "channels-last conv_weight_grad: " + at);
  }
  k::set_allow_tf32(was_tf32);
  k::set_conv_backend(was_backend);
}

TEST_CASE("cuda ops: the fused Adam update matches the CPU's, in both layouts") {
  uint64_t seed = 950;
  for (DType dt : kFloats) {
    for (bool cl : {false, true}) {
      const MemoryFormat fmt = cl ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
      const Shape shape{3, 7, 5, 9};
      const Tensor p = rnd(shape, seed++, dt).contiguous(fmt);
      const Tensor m = rnd(shape, seed++, dt).contiguous(fmt);
      const Tensor v = pos(shape, seed++, dt).contiguous(fmt);
      const Tensor g = rnd(shape, seed++, dt);
      k::AdamUpdate u;
      u.step = 0.02;
      u.inv_sqrt_bc2 = 3.0;
      u.weight_decay = 0.01;
      const Tensor pc = p.clone().contiguous(fmt), mc = m.clone().contiguous(fmt),
                   vc = v.clone().contiguous(fmt);
      const Tensor pg = gpu(p).contiguous(fmt), mg = gpu(m).contiguous(fmt),
                   vg = gpu(v).contiguous(fmt);
      k::adam_update_(pc, g, mc, vc, u);
      k::adam_update_(pg, gpu(g), mg, vg, u);
      const std::string at = label(cl ? "adam_update_ channels-last" : "adam_update_", shape, dt);
      const double t = dt == DType::Float32 ? 1e-6 : 1e-13;
      check_close(pg, pc, t, at + " p");
      check_close(mg, mc, t, at + " m");
      check_close(vg, vc, t, at + " v");
    }
  }
}

TEST_CASE("cuda ops: the fused leaky-ReLU backward matches the CPU's, in both layouts") {
  uint64_t seed = 970;
  for (DType dt : kFloats) {
    for (bool cl : {false, true}) {
      const MemoryFormat fmt = cl ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
      const Shape shape{3, 6, 5, 7};
      const Tensor y = rnd(shape, seed++, dt).contiguous(fmt), g = rnd(shape, seed++, dt);
      const Tensor want = k::leaky_relu_backward(g, y, 0.2);
      const Tensor got = k::leaky_relu_backward(gpu(g), gpu(y).contiguous(fmt), 0.2);
      CHECK(got.is_contiguous(fmt));
      check_exact(got, want, label(cl ? "leaky_relu_backward channels-last" : "leaky_relu_backward",
                                   shape, dt));
    }
  }
}

TEST_CASE("cuda ops: concat, stack and split work on the device") {
  const Tensor a = rnd({2, 3, 4}, 500, DType::Float32), b = rnd({2, 5, 4}, 501, DType::Float32);
  check_exact(k::concat({gpu(a), gpu(b)}, 1), k::concat({a, b}, 1), "concat dim 1");
  const Tensor at = gpu(a.transpose(0, 2).contiguous()).transpose(0, 2);  // a on the device, strided
  check_exact(k::stack({gpu(a), at}, 0), k::stack({a, a}, 0), "stack with a non-contiguous operand");
  check_exact(k::concat({at, gpu(b)}, 1), k::concat({a, b}, 1), "concat of a strided operand");
  const std::vector<Tensor> parts = k::split(gpu(b), {1, 4}, 1);
  const std::vector<Tensor> want = k::split(b, {1, 4}, 1);
  REQUIRE(parts.size() == 2);
  check_exact(parts[0], want[0], "split part 0");
  check_exact(parts[1], want[1], "split part 1");
}

TEST_CASE("cuda ops: compare, where, clamp and clamp_mask match the CPU with broadcasting") {
  uint64_t seed = 600;
  for (DType dt : {DType::Float64, DType::Float32, DType::Int64}) {
    Tensor a = rnd({4, 5, 3}, seed++, DType::Float64), b = rnd({5, 1}, seed++, DType::Float64);
    if (dt == DType::Int64) {  // small integers, so equal values occur
      std::vector<int64_t> av, bv;
      for (double v : a.to_vector()) av.push_back(std::lround(v * 2));
      for (double v : b.to_vector()) bv.push_back(std::lround(v * 2));
      a = from_vector<int64_t>(av, a.shape());
      b = from_vector<int64_t>(bv, b.shape());
    } else {
      a = a.to(dt);
      b = b.to(dt);
    }
    const Tensor at = a.transpose(0, 2);  // [3, 5, 4], non-contiguous
    const Tensor bt = b.reshape({5, 1});
    for (k::CompareOp op : {k::CompareOp::Eq, k::CompareOp::Ne, k::CompareOp::Lt,
                            k::CompareOp::Le, k::CompareOp::Gt, k::CompareOp::Ge}) {
      check_exact(k::compare(op, gpu(a), gpu(b)), k::compare(op, a, b),
                  label("compare " + std::to_string(static_cast<int>(op)), a.shape(), dt));
      check_exact(k::compare(op, gpu(a).transpose(0, 2), gpu(b).reshape({5, 1})),
                  k::compare(op, at, bt), label("compare strided", at.shape(), dt));
    }
    const Tensor cond = k::compare(k::CompareOp::Gt, a, b);
    check_exact(k::where(gpu(cond), gpu(a), gpu(b)), k::where(cond, a, b),
                label("where", a.shape(), dt));
    check_exact(k::clamp(gpu(at), -0.5, 0.75), k::clamp(at, -0.5, 0.75), label("clamp", at.shape(), dt));
    check_exact(k::clamp_mask(gpu(at), -0.5, 0.75), k::clamp_mask(at, -0.5, 0.75),
                label("clamp_mask", at.shape(), dt));
  }
}

TEST_CASE("cuda ops: int64 add, sub, mul, maximum and minimum match the CPU; division throws") {
  // Counters (BatchNorm's num_batches_tracked) live on the model's device. Values beyond 2^53
  // catch a kernel that computes through double, so the comparison is on the integers.
  std::vector<int64_t> av, bv;
  const std::vector<double> ra = rnd({6, 7}, 650, DType::Float64).to_vector();
  const std::vector<double> rb = rnd({6, 7}, 651, DType::Float64).to_vector();
  for (size_t i = 0; i < ra.size(); ++i) {
    av.push_back((int64_t{1} << 53) + 2 * std::llround(ra[i] * 1000) + 1);
    bv.push_back(std::llround(rb[i] * 3) | 1);  // odd, |b| <= ~13: products stay in range
  }
  const Tensor a = from_vector<int64_t>(av, {6, 7}), b = from_vector<int64_t>(bv, {6, 7});
  const Tensor three = scalar_tensor(3.0, DType::Int64);
  const Tensor row = b.slice(0, 0, 1);  // [1, 7]: broadcast over rows (the strided kernel)
  auto check_ints = [](const Tensor& got_dev, const Tensor& want, const std::string& what) {
    INFO(what);
    CHECK(got_dev.device() == kDev);
    REQUIRE(got_dev.shape() == want.shape());
    REQUIRE(got_dev.dtype() == DType::Int64);
    const Tensor g = got_dev.cpu().contiguous(), w = want.contiguous();
    int64_t bad = 0;
    for (int64_t i = 0; i < g.numel(); ++i) bad += g.data<int64_t>()[i] != w.data<int64_t>()[i];
    CHECK(bad == 0);
  };
  for (k::BinaryOp op : {k::BinaryOp::Add, k::BinaryOp::Sub, k::BinaryOp::Mul,
                         k::BinaryOp::Maximum, k::BinaryOp::Minimum}) {
    const std::string name = std::string("int64 ") + k::binary_name(op);
    check_ints(k::binary(op, gpu(a), gpu(b)), k::binary(op, a, b), name);
    check_ints(k::binary(op, gpu(a), gpu(three)), k::binary(op, a, three), name + ", scalar b");
    check_ints(k::binary(op, gpu(three), gpu(b)), k::binary(op, three, b), name + ", scalar a");
    check_ints(k::binary(op, gpu(a).transpose(0, 1), gpu(row).transpose(0, 1)),
               k::binary(op, a.transpose(0, 1), row.transpose(0, 1)), name + ", strided");
  }
  CHECK_THROWS_WITH_AS(k::binary(k::BinaryOp::Div, gpu(a), gpu(b)),
                       doctest::Contains("int64 for add, sub, mul"), Error);
}

TEST_CASE("cuda ops: sums are bitwise reproducible from run to run (no float atomics)") {
  const Tensor x = gpu(rnd({3, 5, 40, 41}, 700, DType::Float32));
  const Tensor gy = gpu(rnd({3, 6, 40, 41}, 701, DType::Float32));
  const Tensor w = gpu(rnd({6, 5, 3, 3}, 702, DType::Float32));
  const k::ConvGeometry g = k::ConvGeometry::make(2, {1}, {1}, {1});
  check_exact(k::sum(x), k::sum(x).cpu(), "sum of everything, twice");
  check_exact(k::sum(x, {0, 2, 3}), k::sum(x, {0, 2, 3}).cpu(), "sum over (0, 2, 3), twice");
  check_exact(k::channel_sums(x), k::channel_sums(x).cpu(), "channel_sums, twice");
  check_exact(k::conv_weight_grad(gy, x, w.shape(), g), k::conv_weight_grad(gy, x, w.shape(), g).cpu(),
              "conv_weight_grad, twice");
  check_exact(k::conv_transpose(gy, w, Tensor(), x.shape(), g),
              k::conv_transpose(gy, w, Tensor(), x.shape(), g).cpu(), "conv_transpose, twice");
  const k::MaxPoolResult mp = k::max_pool(x, {{3}, {2}, {1}});
  const Tensor gp = gpu(rnd(mp.values.shape(), 703, DType::Float32));
  check_exact(k::pool_scatter(gp, mp.indices, x.shape()),
              k::pool_scatter(gp, mp.indices, x.shape()).cpu(), "pool_scatter, twice");
}

TEST_CASE("cuda ops: errors name the op, the operands and what was expected") {
  const Tensor xi = zeros({1, 2, 5, 5}, DType::Int64, kDev);
  const Tensor wi = zeros({2, 2, 3, 3}, DType::Int64, kDev);
  const k::ConvGeometry g = k::ConvGeometry::make(2, {1}, {0}, {1});
  CHECK_THROWS_WITH_AS(k::conv(xi, wi, Tensor(), g), doctest::Contains("conv"), Error);
  CHECK_THROWS_WITH_AS(k::var(xi, {}), doctest::Contains("var"), Error);
  CHECK_THROWS_WITH_AS(k::amax(Tensor::empty({0, 3}, DType::Float32, kDev), {0}),
                       doctest::Contains("empty"), Error);
  const Tensor bad = from_vector<int64_t>({0, 99}, {1, 1, 2}).to(kDev);
  CHECK_THROWS_WITH_AS(k::pool_scatter(ones({1, 1, 2}, DType::Float32, kDev), bad, {1, 1, 4}),
                       doctest::Contains("pool_scatter"), Error);
  CHECK_THROWS_WITH_AS(k::pool_gather(ones({1, 1, 4}, DType::Float32, kDev), bad),
                       doctest::Contains("pool_gather"), Error);
}

}  // TEST_SUITE
