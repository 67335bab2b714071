// tests/gpu/test_cuda_cudnn.cpp — the cuDNN convolution path and the autotuner
// (kernels/cuda/conv_cudnn.cu) against dfx's own CUDA kernels and the CPU on random inputs: conv,
// conv_transpose and conv_weight_grad in 1-3 spatial dims with stride, padding, dilation, bias
// and output padding; channels-last (float32) operands; TF32 (off by default; when allowed,
// 2e-3 relative to the result's largest magnitude, as TF32 keeps 10 mantissa bits); Auto's timed
// choice and its cache; deterministic mode; the per-call backend reaching the backward ops;
// memory returning to its baseline. float64 must agree to 1e-12 and float32 to 1e-5 relative to
// the result's largest magnitude. Skipped without a device (tests/gpu/main_gpu.cpp) and, case by
// case, without cuDNN.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "config.h"
#include "autodiff/nn_conv.h"
#include "autodiff/ops.h"
#include "autodiff/var.h"
#include "core/allocator.h"
#include "core/copy.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/conv.h"
#include "kernels/conv_config.h"
#include "kernels/cuda/conv_cudnn.cuh"

using namespace dfx;
namespace k = dfx::kernels;
using k::ConvBackend;

namespace {

const Device kDev = Device::cuda(0);
const DType kFloats[] = {DType::Float64, DType::Float32};
const bool kNoCudnn = !k::cudnn_available();
constexpr double kTf32Tol = 2e-3;

double tol_for(DType t) { return t == DType::Float32 ? 1e-5 : 1e-12; }

// |got - want| <= tol * (|want| + max |want|) for every element, compared on the CPU in float64.
void check_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(got.defined());
  REQUIRE(got.shape() == want.shape());
  CHECK(got.dtype() == want.dtype());
  const std::vector<double> g = got.to_vector(), w = want.to_vector();
  double scale = 0;
  for (double v : w) scale = std::max(scale, std::fabs(v));
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < g.size(); ++i)
    if (!(std::fabs(g[i] - w[i]) <= tol * (std::fabs(w[i]) + scale)) && bad++ == 0)
      first = static_cast<int64_t>(i);
  INFO("mismatches: ", bad, " of ", g.size(),
       first >= 0
           ? ::dfx::detail::cat("; first at ", first, ": got ", g[first], ", want ", w[first])
           : std::string());
  CHECK(bad == 0);
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector() == b.to_vector();
}

Tensor rnd(const Shape& shape, uint64_t seed, DType dt) {
  std::vector<double> v = randn(shape, seed, 0, 0, DType::Float64).to_vector();
  for (double& x : v) x += 0.1;  // never all zero
  return from_vector<double>(v, shape).to(dt);
}

Tensor gpu(const Tensor& t) { return t.to(kDev); }

k::ConvGeometry on(k::ConvGeometry g, ConvBackend b) {
  g.backend = b;
  return g;
}

// The same values in channels-last storage: shape [N, C, *S], strides with C innermost.
Tensor channels_last(const Tensor& t) {
  std::vector<int> to_last{0}, back{0, t.dim() - 1};
  for (int d = 2; d < t.dim(); ++d) to_last.push_back(d);
  to_last.push_back(1);
  for (int d = 1; d < t.dim() - 1; ++d) back.push_back(d);
  return t.permute(to_last).contiguous().permute(back);
}

// Restores every convolution switch a test changes.
struct SettingsGuard {
  ConvBackend backend = k::conv_backend();
  bool tf32 = k::allow_tf32(), det = k::conv_deterministic(), log = k::conv_log();
  ~SettingsGuard() {
    k::set_conv_backend(backend);
    k::set_allow_tf32(tf32);
    k::set_conv_deterministic(det);
    k::set_conv_log(log);
  }
};

// Autotune records whose key starts with `op` and names `mode`.
std::vector<k::ConvTuneRecord> records_for(const std::string& op, const std::string& mode) {
  std::vector<k::ConvTuneRecord> out;
  for (const k::ConvTuneRecord& r : k::conv_tune_records())
    if (r.key.rfind(op + " ", 0) == 0 && r.key.find("mode " + mode) != std::string::npos)
      out.push_back(r);
  return out;
}

struct Case {
  Shape x, w;
  std::vector<int64_t> stride, padding, dilation;
  bool bias;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> cs = {
      {{2, 3, 17}, {4, 3, 3}, {1}, {1}, {1}, true},                    // 1-d (a unit height)
      {{2, 3, 18}, {5, 3, 4}, {2}, {2}, {2}, false},                   // 1-d stride/pad/dilation
      {{2, 3, 9, 11}, {5, 3, 3, 3}, {1}, {1}, {1}, true},              // 2-d, odd sizes
      {{2, 4, 16, 15}, {6, 4, 3, 3}, {2}, {1}, {1}, true},             // stride 2
      {{2, 2, 13, 12}, {3, 2, 3, 2}, {2, 1}, {2, 0}, {2, 3}, false},   // mixed per-dim
      {{3, 5, 8, 8}, {7, 5, 1, 1}, {1}, {0}, {1}, true},               // pointwise
      {{2, 4, 8, 8}, {4, 4, 2, 2}, {2}, {0}, {1}, true},               // W1's down/up sampling
      {{1, 3, 7, 8, 9}, {4, 3, 3, 3, 3}, {1}, {1}, {1}, true},         // 3-d
      {{2, 2, 9, 8, 7}, {3, 2, 2, 3, 2}, {2}, {1}, {1, 2, 1}, false},  // 3-d stride/dilation
      {{4, 16, 40, 40}, {16, 16, 3, 3}, {1}, {1}, {1}, true},          // a longer reduction
  };
  return cs;
}

}  // namespace

TEST_SUITE("gpu") {

TEST_CASE("cudnn: conv, conv_transpose and conv_weight_grad match dfx's CUDA kernels and the CPU" *
          doctest::skip(kNoCudnn)) {
  SettingsGuard keep;
  k::set_allow_tf32(false);
  k::clear_conv_tune_cache();
  uint64_t seed = 100;
  for (DType dt : kFloats) {
    const double t = tol_for(dt);
    for (const Case& c : cases()) {
      const int nd = static_cast<int>(c.x.size()) - 2;
      const k::ConvGeometry g = k::ConvGeometry::make(nd, c.stride, c.padding, c.dilation);
      const k::ConvGeometry gn = on(g, ConvBackend::Native), gc = on(g, ConvBackend::Cudnn);
      const Tensor x = rnd(c.x, seed++, dt), w = rnd(c.w, seed++, dt);
      const Tensor b = c.bias ? rnd({c.w[0]}, seed++, dt) : Tensor();
      const Tensor gb = c.bias ? gpu(b) : Tensor();
      const std::string at =
          ::dfx::detail::cat(dtype_name(dt), " x ", c.x, " w ", c.w, " ", g.str());

      const Tensor y = k::conv(x, w, b, g);
      const Tensor y_cudnn = k::conv(gpu(x), gpu(w), gb, gc);
      check_close(y_cudnn, y, t, "cudnn conv vs cpu: " + at);
      check_close(y_cudnn, k::conv(gpu(x), gpu(w), gb, gn).cpu(), t, "cudnn conv vs native: " + at);

      const Tensor gy = rnd(y.shape(), seed++, dt);
      const Tensor bt = c.bias ? rnd({c.x[1]}, seed++, dt) : Tensor();
      const Tensor gbt = c.bias ? gpu(bt) : Tensor();
      const Tensor z = k::conv_transpose(gy, w, bt, c.x, g);
      const Tensor z_cudnn = k::conv_transpose(gpu(gy), gpu(w), gbt, c.x, gc);
      check_close(z_cudnn, z, t, "cudnn conv_transpose vs cpu: " + at);
      check_close(z_cudnn, k::conv_transpose(gpu(gy), gpu(w), gbt, c.x, gn).cpu(), t,
                  "cudnn conv_transpose vs native: " + at);

      const Tensor dw = k::conv_weight_grad(gy, x, c.w, g);
      const Tensor dw_cudnn = k::conv_weight_grad(gpu(gy), gpu(x), c.w, gc);
      check_close(dw_cudnn, dw, t, "cudnn conv_weight_grad vs cpu: " + at);
      check_close(dw_cudnn, k::conv_weight_grad(gpu(gy), gpu(x), c.w, gn).cpu(), t,
                  "cudnn conv_weight_grad vs native: " + at);
    }
    // ConvTranspose's output padding: x larger than the smallest input giving y's size.
    const k::ConvGeometry g2 = k::ConvGeometry::make(2, {2}, {1}, {1});
    const Tensor w = rnd({4, 3, 3, 3}, seed++, dt), y = rnd({2, 4, 5, 6}, seed++, dt);
    const Shape xs{2, 3, 10, 12};
    check_close(k::conv_transpose(gpu(y), gpu(w), Tensor(), xs, on(g2, ConvBackend::Cudnn)),
                k::conv_transpose(y, w, Tensor(), xs, g2), t, "cudnn output padding");
    const Tensor xp = rnd(xs, seed++, dt);
    check_close(k::conv_weight_grad(gpu(y), gpu(xp), w.shape(), on(g2, ConvBackend::Cudnn)),
                k::conv_weight_grad(y, xp, w.shape(), g2), t,
                "cudnn weight gradient with output padding");
  }
  // Every Cudnn call went through a cuDNN algorithm (Native calls leave no record).
  const std::vector<k::ConvTuneRecord> rs = k::conv_tune_records();
  CHECK(!rs.empty());
  for (const k::ConvTuneRecord& r : rs) {
    INFO(r.key, " -> ", r.choice, " [", r.candidates, "]");
    CHECK(r.key.find("mode cudnn") != std::string::npos);
    CHECK(r.choice.rfind("cudnn ", 0) == 0);
    CHECK(r.choice.find("tensor-op") == std::string::npos);  // TF32 was off
  }
}

TEST_CASE("cudnn: channels-last operands reach cuDNN through their strides" *
          doctest::skip(kNoCudnn)) {
#if DFX_HAVE_CUDNN  // calls kernels/cuda/conv_cudnn.cu directly: the entry points copy to NCHW
  namespace cd = k::cuda::cudnn;
  SettingsGuard keep;
  k::set_allow_tf32(false);
  k::clear_conv_tune_cache();
  // float32: cuDNN's channels-last kernels are float32/half ones.
  const DType dt = DType::Float32;
  const MemoryFormat CL = MemoryFormat::ChannelsLast;
  const double t = tol_for(dt);
  for (const Case& c : {cases()[0], cases()[3], cases()[7]}) {
    const int nd = static_cast<int>(c.x.size()) - 2;
    const k::ConvGeometry g = k::ConvGeometry::make(nd, c.stride, c.padding, c.dilation);
    const Tensor x = rnd(c.x, 300, dt), w = rnd(c.w, 301, dt), b = rnd({c.w[0]}, 302, dt);
    const Tensor y = k::conv(x, w, b, g);
    const Tensor gy = rnd(y.shape(), 303, dt);
    const Tensor xl = channels_last(gpu(x)), wl = channels_last(gpu(w));
    const Tensor gyl = channels_last(gpu(gy));
    REQUIRE(!xl.is_contiguous());
    REQUIRE(xl.stride(1) == 1);
    const std::string at = ::dfx::detail::cat("x ", c.x, " ", g.str());
    const Tensor yl = cd::conv(xl, wl, gpu(b), y.shape(), g, ConvBackend::Cudnn, CL);
    check_close(yl, y, t, "channels-last conv: " + at);
    CHECK(yl.stride(1) == 1);  // the output follows the input's layout
    check_close(cd::conv_transpose(gyl, wl, Tensor(), c.x, g, ConvBackend::Cudnn, CL),
                k::conv_transpose(gy, w, Tensor(), c.x, g), t,
                "channels-last conv_transpose: " + at);
    check_close(cd::conv_weight_grad(gyl, xl, c.w, g, ConvBackend::Cudnn, CL),
                k::conv_weight_grad(gy, x, c.w, g), t, "channels-last conv_weight_grad: " + at);
    // Mixed layouts: the NCHW weight / gradient is brought to the call's layout.
    check_close(cd::conv(xl, gpu(w), gpu(b), y.shape(), g, ConvBackend::Cudnn, CL), y, t,
                "channels-last input, NCHW weight: " + at);
    check_close(cd::conv_weight_grad(gpu(gy), xl, c.w, g, ConvBackend::Cudnn, CL),
                k::conv_weight_grad(gy, x, c.w, g), t, "NCHW gradient, channels-last input: " + at);
    // Auto may pick dfx's kernel, which reads the call's layout in place too.
    check_close(cd::conv(xl, wl, gpu(b), y.shape(), g, ConvBackend::Auto, CL), y, t,
                "channels-last conv, auto: " + at);
  }
  // One channel: the U-Net's first conv (a [N, 1, H, W] field, NCHW strides, with a channels-last
  // model) and its 1x1 head's input gradient. Both layouts are dense there, so the weights'
  // exact strides decide (kernels/conv.cpp) and the result is channels-last, with no copy.
  {
    const k::ConvGeometry g1 = on(k::ConvGeometry::make(2, {1}, {1}, {1}), ConvBackend::Cudnn);
    const k::ConvGeometry gh = on(k::ConvGeometry::make(2, {1}, {0}, {1}), ConvBackend::Cudnn);
    const Tensor x = rnd({2, 1, 12, 12}, 310, dt), w = rnd({8, 1, 3, 3}, 311, dt);
    const Tensor wh = rnd({1, 8, 1, 1}, 312, dt), gy = rnd({2, 1, 12, 12}, 313, dt);
    const Tensor wl = Tensor::empty(w.shape(), dt, kDev, CL);
    const Tensor whl = Tensor::empty(wh.shape(), dt, kDev, CL);
    copy_(wl, gpu(w));
    copy_(whl, gpu(wh));
    REQUIRE(wl.suggest_memory_format() == CL);
    const Tensor y = k::conv(gpu(x), wl, Tensor(), g1);
    CHECK(y.suggest_memory_format() == CL);
    CHECK(y.is_contiguous(CL));
    check_close(y, k::conv(x, w, Tensor(), g1), t, "one-channel input, channels-last weight");
    const Tensor dx = k::conv_transpose(gpu(gy), whl, Tensor(), {2, 8, 12, 12}, gh);
    CHECK(dx.suggest_memory_format() == CL);
    check_close(dx, k::conv_transpose(gy, wh, Tensor(), {2, 8, 12, 12}, gh), t,
                "one-channel gradient, channels-last 1x1 weight");
  }
  bool saw_channels_last = false;
  for (const k::ConvTuneRecord& r : k::conv_tune_records())
    saw_channels_last = saw_channels_last || r.key.find("channels-last") != std::string::npos;
  CHECK(saw_channels_last);
#endif
}

TEST_CASE("cudnn: TF32 is off by default and, when allowed, stays within 2e-3" *
          doctest::skip(kNoCudnn)) {
  SettingsGuard keep;
  k::clear_conv_tune_cache();
  // A long reduction (K = 64 * 9 = 576), where TF32's 10-bit mantissa shows.
  const k::ConvGeometry g = on(k::ConvGeometry::make(2, {1}, {1}, {1}), ConvBackend::Cudnn);
  const Tensor x64 = rnd({4, 64, 32, 32}, 400, DType::Float64);
  const Tensor w64 = rnd({64, 64, 3, 3}, 401, DType::Float64);
  const Tensor y64 = k::conv(x64, w64, Tensor(), g);
  const Tensor gy64 = rnd(y64.shape(), 402, DType::Float64);
  const Tensor z64 = k::conv_transpose(gy64, w64, Tensor(), x64.shape(), g);
  const Tensor dw64 = k::conv_weight_grad(gy64, x64, w64.shape(), g);
  const Tensor x = gpu(x64.to(DType::Float32)), w = gpu(w64.to(DType::Float32));
  const Tensor gy = gpu(gy64.to(DType::Float32));

  k::set_allow_tf32(false);
  const Tensor y_fp32 = k::conv(x, w, Tensor(), g);
  const Tensor z_fp32 = k::conv_transpose(gy, w, Tensor(), x.shape(), g);
  const Tensor dw_fp32 = k::conv_weight_grad(gy, x, w.shape(), g);
  // float32 inputs rounded from the float64 ones: compare with float32's tolerance.
  check_close(y_fp32, y64.to(DType::Float32), 1e-5, "conv, TF32 off");
  check_close(z_fp32, z64.to(DType::Float32), 1e-5, "conv_transpose, TF32 off");
  check_close(dw_fp32, dw64.to(DType::Float32), 1e-5, "conv_weight_grad, TF32 off");

  k::set_allow_tf32(true);
  const Tensor y_tf32 = k::conv(x, w, Tensor(), g);
  const Tensor z_tf32 = k::conv_transpose(gy, w, Tensor(), x.shape(), g);
  const Tensor dw_tf32 = k::conv_weight_grad(gy, x, w.shape(), g);
  check_close(y_tf32, y64.to(DType::Float32), kTf32Tol, "conv, TF32 on");
  check_close(z_tf32, z64.to(DType::Float32), kTf32Tol, "conv_transpose, TF32 on");
  check_close(dw_tf32, dw64.to(DType::Float32), kTf32Tol, "conv_weight_grad, TF32 on");
  // TF32 took effect unless cuDNN's fastest algorithm for a shape was an FMA one anyway.
  const std::vector<k::ConvTuneRecord> rs = k::conv_tune_records();
  REQUIRE(rs.size() == 6);  // three ops, TF32 off and on: six keys
  for (int i = 3; i < 6; ++i) {
    INFO(rs[i].key, " -> ", rs[i].choice, " [", rs[i].candidates, "]");
    CHECK(rs[i].key.find("tf32 on") != std::string::npos);
  }
  const bool differs = !bitwise_equal(y_tf32, y_fp32) || !bitwise_equal(z_tf32, z_fp32) ||
                       !bitwise_equal(dw_tf32, dw_fp32);
  if (!differs)
    MESSAGE("TF32 results are bitwise equal to FP32 ones: cuDNN chose FMA algorithms (",
            rs[3].choice, ", ", rs[4].choice, ", ", rs[5].choice, ")");
  // float64 ignores the switch: still 1e-12.
  check_close(k::conv(gpu(x64), gpu(w64), Tensor(), g), y64, 1e-12, "float64 conv, TF32 on");
}

TEST_CASE("cudnn: Auto times dfx's kernel and cuDNN once per key, then reuses the winner" *
          doctest::skip(kNoCudnn)) {
  SettingsGuard keep;
  k::set_allow_tf32(false);
  k::set_conv_deterministic(true);
  k::set_conv_backend(ConvBackend::Auto);  // the process default; the geometry leaves it unset
  k::set_conv_log(true);                   // exercises DFX_CONV_LOG's printing
  k::clear_conv_tune_cache();
  for (DType dt : kFloats) {
    const Case& c = cases()[9];
    const k::ConvGeometry g = k::ConvGeometry::make(2, c.stride, c.padding, c.dilation);
    const Tensor x = rnd(c.x, 500, dt), w = rnd(c.w, 501, dt), b = rnd({c.w[0]}, 502, dt);
    const Tensor y = k::conv(x, w, b, g);
    const Tensor gy = rnd(y.shape(), 503, dt);
    const Tensor xg = gpu(x), wg = gpu(w), gyg = gpu(gy);
    const Tensor y1 = k::conv(xg, wg, gpu(b), g);
    const Tensor z1 = k::conv_transpose(gyg, wg, Tensor(), c.x, g);
    const Tensor dw1 = k::conv_weight_grad(gyg, xg, c.w, g);
    check_close(y1, y, tol_for(dt), "auto conv");
    check_close(z1, k::conv_transpose(gy, w, Tensor(), c.x, g), tol_for(dt), "auto conv_transpose");
    check_close(dw1, k::conv_weight_grad(gy, x, c.w, g), tol_for(dt), "auto conv_weight_grad");
    const size_t n = k::conv_tune_records().size();
    // The same keys again: no new decision, and the same (deterministic) bits.
    CHECK(bitwise_equal(k::conv(xg, wg, gpu(b), g).cpu(), y1.cpu()));
    CHECK(bitwise_equal(k::conv_transpose(gyg, wg, Tensor(), c.x, g).cpu(), z1.cpu()));
    CHECK(bitwise_equal(k::conv_weight_grad(gyg, xg, c.w, g).cpu(), dw1.cpu()));
    CHECK(k::conv_tune_records().size() == n);
  }
  const std::vector<k::ConvTuneRecord> rs = k::conv_tune_records();
  REQUIRE(rs.size() == 6);  // three ops, two dtypes
  for (const k::ConvTuneRecord& r : rs) {
    INFO(r.key, " -> ", r.choice, " [", r.candidates, "]");
    CHECK(r.key.find("mode auto") != std::string::npos);
    CHECK(r.candidates.find("native ") != std::string::npos);  // dfx's kernel was timed
    CHECK((r.choice == "native" || r.choice.rfind("cudnn ", 0) == 0));
  }
  // Deterministic mode keeps cuDNN's atomics-based backward algorithms out.
  for (const k::ConvTuneRecord& r : records_for("conv_weight_grad", "auto")) {
    CHECK(r.choice.find("ALGO_0") == std::string::npos);
    CHECK(r.choice.find("ALGO_3") == std::string::npos);
  }
  for (const k::ConvTuneRecord& r : records_for("conv_transpose", "auto"))
    CHECK(r.choice.find("ALGO_0") == std::string::npos);
  // A per-call Native overrides the process default: no new decision.
  const Tensor x = gpu(rnd({1, 2, 6, 6}, 510, DType::Float32));
  const Tensor w = gpu(rnd({3, 2, 3, 3}, 511, DType::Float32));
  const size_t before = k::conv_tune_records().size();
  (void)k::conv(x, w, Tensor(), on(k::ConvGeometry::make(2, {1}, {0}, {1}), ConvBackend::Native));
  CHECK(k::conv_tune_records().size() == before);
}

TEST_CASE("cudnn: the per-call backend reaches the backward ops through autodiff" *
          doctest::skip(kNoCudnn)) {
  SettingsGuard keep;
  k::set_conv_backend(ConvBackend::Native);
  k::clear_conv_tune_cache();
  const k::ConvGeometry g = on(k::ConvGeometry::make(2, {2}, {1}, {1}), ConvBackend::Cudnn);
  const Tensor x0 = rnd({2, 3, 10, 9}, 600, DType::Float64);
  const Tensor w0 = rnd({4, 3, 3, 3}, 601, DType::Float64);
  ad::Var x(gpu(x0), true), w(gpu(w0), true);
  ad::sum(ad::square(ad::prim::conv(x, w, ad::Var(), g))).backward();
  ad::Var xc(x0, true), wc(w0, true);
  ad::sum(ad::square(ad::prim::conv(xc, wc, ad::Var(), g))).backward();
  check_close(x.grad().data(), xc.grad().data(), 1e-12, "dL/dx through cuDNN");
  check_close(w.grad().data(), wc.grad().data(), 1e-12, "dL/dw through cuDNN");
  CHECK(records_for("conv", "cudnn").size() == 1);
  CHECK(records_for("conv_transpose", "cudnn").size() == 1);
  CHECK(records_for("conv_weight_grad", "cudnn").size() == 1);
}

TEST_CASE("cudnn: shapes with no work, memory and errors" * doctest::skip(kNoCudnn)) {
  SettingsGuard keep;
  const k::ConvGeometry g = on(k::ConvGeometry::make(2, {1}, {1}, {1}), ConvBackend::Cudnn);
  // No input channels: the output is the bias (dfx's kernel handles shapes with no work).
  const Tensor x = rnd({2, 0, 5, 5}, 700, DType::Float32);
  const Tensor w = rnd({3, 0, 3, 3}, 701, DType::Float32);
  const Tensor b = rnd({3}, 702, DType::Float32);
  check_close(k::conv(gpu(x), gpu(w), gpu(b), g), k::conv(x, w, b, g), 0.0, "no input channels");
  check_close(k::conv_weight_grad(gpu(rnd({0, 3, 5, 5}, 703, DType::Float32)),
                                  gpu(rnd({0, 2, 5, 5}, 704, DType::Float32)), {3, 2, 3, 3}, g),
              zeros({3, 2, 3, 3}), 0.0, "empty batch: zero weight gradient");

  // Live memory returns to its baseline: workspaces go back to the caching allocator.
  const Tensor xs = gpu(rnd({2, 8, 24, 24}, 705, DType::Float32));
  const Tensor ws = gpu(rnd({8, 8, 3, 3}, 706, DType::Float32));
  (void)k::conv(xs, ws, Tensor(), g);  // tuned here
  const size_t base = memory_stats(kDev).current_bytes;
  {
    const Tensor y = k::conv(xs, ws, Tensor(), g);
    const Tensor z = k::conv_transpose(y, ws, Tensor(), xs.shape(), g);
    const Tensor dw = k::conv_weight_grad(y, xs, ws.shape(), g);
    CHECK(memory_stats(kDev).current_bytes > base);
  }
  CHECK(memory_stats(kDev).current_bytes == base);

#if DFX_HAVE_CUDNN
  // The cuDNN path takes only Auto or Cudnn, and float operands.
  CHECK_THROWS_WITH_AS(
      k::cuda::cudnn::conv(xs, ws, Tensor(), {2, 8, 24, 24}, g, ConvBackend::Native,
                           MemoryFormat::Contiguous),
      doctest::Contains("auto or cudnn"), Error);
  CHECK_THROWS_WITH_AS(k::cuda::cudnn::conv(xs.to(DType::Int64), ws.to(DType::Int64), Tensor(),
                                            {2, 8, 24, 24}, g, ConvBackend::Cudnn,
                                            MemoryFormat::Contiguous),
                       doctest::Contains("float32 or float64"), Error);
#endif
}

TEST_CASE("cudnn: without cuDNN, Cudnn is an error naming the op and Auto runs dfx's kernel" *
          doctest::skip(!kNoCudnn)) {
  SettingsGuard keep;
  const Tensor x = gpu(rnd({1, 2, 6, 6}, 800, DType::Float32));
  const Tensor w = gpu(rnd({3, 2, 3, 3}, 801, DType::Float32));
  const k::ConvGeometry g = k::ConvGeometry::make(2, {1}, {0}, {1});
  CHECK_THROWS_WITH_AS(k::conv(x, w, Tensor(), on(g, ConvBackend::Cudnn)),
                       doctest::Contains("built without cuDNN"), Error);
  CHECK_THROWS_WITH_AS(k::set_conv_backend(ConvBackend::Cudnn),
                       doctest::Contains("built without"), Error);
  check_close(k::conv(x, w, Tensor(), on(g, ConvBackend::Auto)),
              k::conv(x.cpu(), w.cpu(), Tensor(), g), 1e-5, "auto without cuDNN");
  CHECK(k::conv_tune_records().empty());
}

}  // TEST_SUITE
