// tests/kernels/test_amx_gemm.cpp — the AMX bf16 GEMM (kernels/cpu/amx_gemm.h) against a float64
// product of the bf16-rounded operands, for every transpose combination, edge-sized shapes (rows,
// columns and depth that are not whole tiles) and beta; the rounding itself against hand-worked
// values; and the CPU convolutions with allow_amx_bf16() against the float32 path fed the rounded
// operands, with the same bits on 1 and 2 threads. On a CPU without AMX the GEMM cases say so
// and check that the switch is inert.
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "kernels/conv.h"
#include "kernels/conv_config.h"
#include "kernels/cpu/amx_gemm.h"
#include "kernels/elementwise.h"

using namespace dfx;
namespace k = dfx::kernels;
using k::cpu::round_to_bf16;

namespace {

std::vector<float> random_vec(int64_t n, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(philox_normal(seed, 0, i));
  return v;
}

Tensor rounded(const Tensor& t) {
  Tensor r = t.clone();
  float* p = r.data<float>();
  for (int64_t i = 0; i < r.numel(); ++i) p[i] = round_to_bf16(p[i]);
  return r;
}

// max |a - b| / max(1, max |b|)
double rel_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  const float *pa = ac.data<float>(), *pb = bc.data<float>();
  double d = 0, m = 1;
  for (int64_t i = 0; i < ac.numel(); ++i) {
    d = std::max(d, std::fabs(double(pa[i]) - double(pb[i])));
    m = std::max(m, std::fabs(double(pb[i])));
  }
  return d / m;
}

struct AmxSwitch {  // restores the process-wide switch whatever the test does
  bool saved = k::allow_amx_bf16();
  explicit AmxSwitch(bool on) { k::set_allow_amx_bf16(on); }
  ~AmxSwitch() { k::set_allow_amx_bf16(saved); }
};

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("round_to_bf16: nearest, ties to even, subnormals to zero") {
    CHECK(round_to_bf16(1.0f) == 1.0f);
    CHECK(round_to_bf16(1.0f + 0x1p-8f) == 1.0f);                   // tie, 1.0 is even
    CHECK(round_to_bf16(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f);     // tie, rounds up to even
    CHECK(round_to_bf16(1.0f + 0x1p-8f + 0x1p-12f) == 1.0f + 0x1p-7f);  // above the tie
    CHECK(round_to_bf16(-3.140625f) == -3.140625f);                 // representable: unchanged
    CHECK(round_to_bf16(1e-40f) == 0.0f);                           // subnormal
    CHECK(std::isnan(round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
    CHECK(std::isinf(round_to_bf16(std::numeric_limits<float>::infinity())));
  }

  TEST_CASE("amx_round_bf16 gives round_to_bf16's bits, the tail of an odd length included") {
    if (!k::cpu::amx_usable()) {
      MESSAGE("this CPU has no usable AMX-BF16: the vector rounding is never called");
      return;
    }
    const int64_t n = 37;  // two full vectors and a masked tail of 5
    std::vector<float> x = random_vec(n, 7);
    x[3] = 1.0f + 0x1p-8f;       // ties: to even, down and up
    x[4] = 1.0f + 3 * 0x1p-8f;
    x[n - 1] = 1.0f + 0x1p-8f + 0x1p-12f;  // above a tie, in the tail
    std::vector<uint16_t> out(n + 1, 0xabcd);
    k::cpu::amx_round_bf16(x.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const float r = round_to_bf16(x[i]);
      uint32_t bits;
      std::memcpy(&bits, &r, 4);
      INFO("element ", i, " = ", x[i]);
      CHECK(out[i] == static_cast<uint16_t>(bits >> 16));
    }
    CHECK(out[n] == 0xabcd);  // nothing written past n
  }

  TEST_CASE("amx_gemm equals the float64 product of the bf16-rounded operands") {
    if (!k::cpu::amx_usable()) {
      MESSAGE("this CPU has no usable AMX-BF16: only the fallback is checked here");
      AmxSwitch on(true);
      CHECK_FALSE(k::amx_bf16_active());
      return;
    }
    struct Case {
      int64_t M, N, K;
    };
    const Case cases[] = {{1, 1, 1},   {16, 16, 32}, {17, 33, 45}, {40, 70, 100},
                          {5, 300, 9}, {64, 48, 288}, {33, 17, 1}};
    uint64_t seed = 1;
    for (const Case& cs : cases)
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
          for (float beta : {0.0f, 1.0f, 0.5f}) {
            const int64_t M = cs.M, N = cs.N, K = cs.K;
            const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
            const auto a = random_vec((ta ? K : M) * lda, seed++);
            const auto b = random_vec((tb ? N : K) * ldb, seed++);
            auto c = random_vec(M * ldc, seed++);
            if (beta == 0.0f)  // beta 0 overwrites: NaNs in C must not leak
              for (auto& x : c) x = std::numeric_limits<float>::quiet_NaN();
            const auto c0 = c;
            k::cpu::amx_gemm(ta, tb, M, N, K, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
            double worst = 0;
            for (int64_t m = 0; m < M; ++m)
              for (int64_t n = 0; n < N; ++n) {
                double s = 0, mag = 0;
                for (int64_t kk = 0; kk < K; ++kk) {
                  const double av = round_to_bf16(ta ? a[kk * lda + m] : a[m * lda + kk]);
                  const double bv = round_to_bf16(tb ? b[n * ldb + kk] : b[kk * ldb + n]);
                  s += av * bv;
                  mag += std::fabs(av * bv);
                }
                if (beta != 0.0f) {
                  s += double(beta) * c0[m * ldc + n];
                  mag += std::fabs(double(beta) * c0[m * ldc + n]);
                }
                const double err = std::fabs(c[m * ldc + n] - s) / (mag + 1e-30);
                worst = std::max(worst, std::isnan(err) ? 1e30 : err);
              }
            INFO("M ", M, " N ", N, " K ", K, " ta ", ta, " tb ", tb, " beta ", beta);
            CHECK(worst < 1e-5);  // float32 sums of exact bf16 products
            // C's padding columns (n >= N) are never written
            for (int64_t m = 0; m < M; ++m)
              for (int64_t n = N; n < ldc; ++n)
                CHECK(std::memcmp(&c[m * ldc + n], &c0[m * ldc + n], sizeof(float)) == 0);
          }
  }

  TEST_CASE("CPU convolutions on AMX: the float32 path on rounded operands, and near float32") {
    if (!k::cpu::amx_usable()) {
      MESSAGE("this CPU has no usable AMX-BF16: the convolutions stay float32");
      return;
    }
    struct Case {
      Shape x, w;
      int stride, pad;
    };
    // W1-like: a 3x3 level conv (several column blocks), 2x2 stride-2 down/up, odd sizes; 3-d.
    // Stride-1 transposes run as convolutions of the flipped kernel, the others as scatters.
    const Case cases[] = {{{3, 16, 24, 24}, {32, 16, 3, 3}, 1, 1},
                          {{2, 3, 9, 7}, {5, 3, 3, 3}, 1, 1},
                          {{2, 8, 12, 12}, {16, 8, 2, 2}, 2, 0},
                          {{2, 40, 40, 40}, {24, 40, 3, 3}, 1, 1},
                          {{2, 3, 9, 8}, {6, 3, 3, 3}, 1, 0},   // the transpose pads by 2
                          {{2, 3, 8, 7}, {5, 3, 2, 2}, 1, 0},   // even kernel, stride 1
                          {{2, 4, 6, 5, 7}, {8, 4, 3, 3, 3}, 1, 1}};  // W2's 3-d kind
    uint64_t seed = 100;
    for (const Case& cs : cases) {
      const auto g = k::ConvGeometry::make(static_cast<int>(cs.x.size()) - 2, {cs.stride},
                                           {cs.pad}, {1}, "test");
      const Tensor x = randn(cs.x, seed++);
      const Tensor w = randn(cs.w, seed++);
      Tensor y_ref, xr_ref, dw_ref, y_f32;
      {
        AmxSwitch off(false);
        y_f32 = k::conv(x, w, Tensor(), g);
        y_ref = k::conv(rounded(x), rounded(w), Tensor(), g);
      }
      const Tensor gy = randn(y_ref.shape(), seed++);
      {
        AmxSwitch off(false);
        xr_ref = k::conv_transpose(rounded(gy), rounded(w), Tensor(), cs.x, g);
        dw_ref = k::conv_weight_grad(rounded(gy), rounded(x), cs.w, g);
      }
      AmxSwitch on(true);
      REQUIRE(k::amx_bf16_active());
      const Tensor y = k::conv(x, w, Tensor(), g);
      const Tensor xr = k::conv_transpose(gy, w, Tensor(), cs.x, g);
      const Tensor dw = k::conv_weight_grad(gy, x, cs.w, g);
      INFO("x ", cs.x, " w ", cs.w);
      CHECK(rel_diff(y, y_ref) < 1e-5);
      CHECK(rel_diff(xr, xr_ref) < 1e-5);
      CHECK(rel_diff(dw, dw_ref) < 1e-5);
      // and bf16's rounding is visible against plain float32, but small
      const double d = rel_diff(y, y_f32);
      CHECK(d > 1e-6);
      CHECK(d < 3e-2);
      // each block's product runs on one thread in a fixed order: 2 threads give the same bits
      const int saved = omp_get_max_threads();
      omp_set_num_threads(saved == 1 ? 2 : 1);
      const Tensor y2 = k::conv(x, w, Tensor(), g);
      const Tensor xr2 = k::conv_transpose(gy, w, Tensor(), cs.x, g);
      const Tensor dw2 = k::conv_weight_grad(gy, x, cs.w, g);
      omp_set_num_threads(saved);
      CHECK(std::memcmp(y.raw_data(), y2.raw_data(), y.numel() * 4) == 0);
      CHECK(std::memcmp(xr.raw_data(), xr2.raw_data(), xr.numel() * 4) == 0);
      CHECK(std::memcmp(dw.raw_data(), dw2.raw_data(), dw.numel() * 4) == 0);
    }
  }
}
