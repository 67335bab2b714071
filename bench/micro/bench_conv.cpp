// bench/micro/bench_conv.cpp — conv, conv_transpose (its adjoint in x) and conv_weight_grad (its
// adjoint in w) at W1's shapes for N = 128, batch 8, each checked at sampled points against a
// direct float64 sum before it is timed. Also main(), which records the threads and BLAS core.
#include <omp.h>

#include <cstdlib>
#include <string>

#include "bench/micro/bench_util.h"
#include "core/rng.h"
#include "kernels/conv.h"
#include "kernels/conv_config.h"
#if DFX_BENCH_OPENBLAS
#include <cblas.h>
#endif

namespace dfx::bench {
namespace {

constexpr int64_t kBatch = 8;

// The check's relative tolerance: float32's, or bf16's when DFX_AMX_BF16=1 puts the kernels on
// AMX tiles (operands rounded to 8-bit mantissas: at most ~4e-3 of the sum of |terms|).
double conv_rtol() { return kernels::amx_bf16_active() ? 1e-2 : 1e-4; }

// x [8, cin, hw, hw] * w [cout, cin, k, k], stride 1, padding k / 2, from state's Args
// {cin, cout, hw, k}; the 1x1 head has a bias, as in the network.
struct ConvCase {
  int64_t n = kBatch, cin, cout, hw, k, p;
  Tensor x, w, bias, gy;  // gy: y-shaped, the incoming gradient of the two adjoints
  kernels::ConvGeometry g;

  explicit ConvCase(const benchmark::State& s)
      : cin(s.range(0)), cout(s.range(1)), hw(s.range(2)), k(s.range(3)), p(k / 2) {
    const double a = 1.0 / std::sqrt(static_cast<double>(cin * k * k));
    x = uniform({n, cin, hw, hw}, -1, 1, 1, 0);
    w = uniform({cout, cin, k, k}, -a, a, 1, 1);
    gy = uniform({n, cout, hw, hw}, -1, 1, 1, 2);
    if (k == 1) bias = uniform({cout}, -0.1, 0.1, 1, 3);
    g = kernels::ConvGeometry::make(2, {1}, {p}, {1}, "bench conv");
  }
  double flop() const { return 2.0 * n * cout * cin * k * k * hw * hw; }
  int64_t xi(int64_t b, int64_t c, int64_t i, int64_t j) const {
    return ((b * cin + c) * hw + i) * hw + j;
  }
  int64_t yi(int64_t b, int64_t o, int64_t i, int64_t j) const {
    return ((b * cout + o) * hw + i) * hw + j;
  }
  int64_t wi(int64_t o, int64_t c, int64_t ki, int64_t kj) const {
    return ((o * cin + c) * k + ki) * k + kj;
  }
  bool inside(int64_t i, int64_t j) const { return i >= 0 && i < hw && j >= 0 && j < hw; }

  // y[b, o, i, j] of the convolution, in float64; *mag gets the sum of |terms|.
  double conv_at(int64_t b, int64_t o, int64_t i, int64_t j, double* mag) const {
    const float *px = x.data<float>(), *pw = w.data<float>();
    double s = bias.defined() ? bias.data<float>()[o] : 0.0;
    *mag = std::abs(s);
    for (int64_t c = 0; c < cin; ++c)
      for (int64_t ki = 0; ki < k; ++ki)
        for (int64_t kj = 0; kj < k; ++kj) {
          const int64_t si = i - p + ki, sj = j - p + kj;
          if (!inside(si, sj)) continue;
          const double t = static_cast<double>(px[xi(b, c, si, sj)]) * pw[wi(o, c, ki, kj)];
          s += t;
          *mag += std::abs(t);
        }
    return s;
  }
  // z[b, c, i, j] of the adjoint in x applied to gy.
  double transpose_at(int64_t b, int64_t c, int64_t i, int64_t j, double* mag) const {
    const float *py = gy.data<float>(), *pw = w.data<float>();
    double s = 0;
    *mag = 0;
    for (int64_t o = 0; o < cout; ++o)
      for (int64_t ki = 0; ki < k; ++ki)
        for (int64_t kj = 0; kj < k; ++kj) {
          const int64_t oi = i + p - ki, oj = j + p - kj;
          if (!inside(oi, oj)) continue;
          const double t = static_cast<double>(py[yi(b, o, oi, oj)]) * pw[wi(o, c, ki, kj)];
          s += t;
          *mag += std::abs(t);
        }
    return s;
  }
  // dw[o, c, ki, kj] of the adjoint in w applied to (gy, x), summed over the batch.
  double weight_grad_at(int64_t o, int64_t c, int64_t ki, int64_t kj, double* mag) const {
    const float *py = gy.data<float>(), *px = x.data<float>();
    double s = 0;
    *mag = 0;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t oi = 0; oi < hw; ++oi)
        for (int64_t oj = 0; oj < hw; ++oj) {
          const int64_t si = oi - p + ki, sj = oj - p + kj;
          if (!inside(si, sj)) continue;
          const double t = static_cast<double>(py[yi(b, o, oi, oj)]) * px[xi(b, c, si, sj)];
          s += t;
          *mag += std::abs(t);
        }
    return s;
  }
  // Twelve sampled (batch, channel, i, j) points, corners and edges included.
  template <class F>
  bool check_points(int64_t channels, F&& f) const {
    const int64_t pos[4] = {0, 1, hw / 2 + 1, hw - 1};
    for (int q = 0; q < 12; ++q)
      if (!f(q % n, (q * 5 + 1) % channels, pos[q % 4], pos[(q / 4 + q) % 4])) return false;
    return true;
  }
};

void BM_conv_forward(benchmark::State& state) {
  ConvCase c(state);
  Tensor y = kernels::conv(c.x, c.w, c.bias, c.g);
  const float* py = y.data<float>();
  const bool ok = all_finite(y) && c.check_points(c.cout, [&](auto b, auto o, auto i, auto j) {
    double mag;
    const double want = c.conv_at(b, o, i, j, &mag);
    return near(py[c.yi(b, o, i, j)], want, mag, conv_rtol());
  });
  if (!validate(state, ok, "conv differs from the direct sum")) return;
  for (auto _ : state) {
    Tensor out = kernels::conv(c.x, c.w, c.bias, c.g);
    benchmark::DoNotOptimize(out.raw_data());
  }
  const double b = nbytes(c.x) + nbytes(c.w) + nbytes(y) + (c.bias.defined() ? nbytes(c.bias) : 0);
  set_rates(state, c.flop(), b);
}

void BM_conv_transpose(benchmark::State& state) {
  ConvCase c(state);
  const Shape x_shape = c.x.shape();
  Tensor z = kernels::conv_transpose(c.gy, c.w, Tensor(), x_shape, c.g);
  const float* pz = z.data<float>();
  const bool ok = all_finite(z) && c.check_points(c.cin, [&](auto b, auto ch, auto i, auto j) {
    double mag;
    const double want = c.transpose_at(b, ch, i, j, &mag);
    return near(pz[c.xi(b, ch, i, j)], want, mag, conv_rtol());
  });
  if (!validate(state, ok, "conv_transpose differs from the direct sum")) return;
  for (auto _ : state) {
    Tensor out = kernels::conv_transpose(c.gy, c.w, Tensor(), x_shape, c.g);
    benchmark::DoNotOptimize(out.raw_data());
  }
  set_rates(state, c.flop(), nbytes(c.gy) + nbytes(c.w) + nbytes(z));
}

void BM_conv_weight_grad(benchmark::State& state) {
  ConvCase c(state);
  const Shape w_shape = c.w.shape();
  Tensor dw = kernels::conv_weight_grad(c.gy, c.x, w_shape, c.g);
  const float* pdw = dw.data<float>();
  bool ok = all_finite(dw);
  for (int q = 0; ok && q < 6; ++q) {
    const int64_t o = (q * 3) % c.cout, ch = (q * 5) % c.cin, ki = q % c.k, kj = (q / 2) % c.k;
    double mag;
    const double want = c.weight_grad_at(o, ch, ki, kj, &mag);
    ok = near(pdw[c.wi(o, ch, ki, kj)], want, mag, conv_rtol());
  }
  if (!validate(state, ok, "conv_weight_grad differs from the direct sum")) return;
  for (auto _ : state) {
    Tensor out = kernels::conv_weight_grad(c.gy, c.x, w_shape, c.g);
    benchmark::DoNotOptimize(out.raw_data());
  }
  set_rates(state, c.flop(), nbytes(c.gy) + nbytes(c.x) + nbytes(dw));
}

// W1 at N = 128: the first layer (1 -> 16), the square 3x3 convs of the four levels, the 1x1 head.
void w1_conv_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"cin", "cout", "hw", "k"});
  b->Args({1, 16, 128, 3});
  b->Args({16, 16, 128, 3});
  b->Args({32, 32, 64, 3});
  b->Args({64, 64, 32, 3});
  b->Args({128, 128, 16, 3});
  b->Args({16, 1, 128, 1});
  b->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_conv_forward)->Apply(w1_conv_shapes);
BENCHMARK(BM_conv_transpose)->Apply(w1_conv_shapes);
BENCHMARK(BM_conv_weight_grad)->Apply(w1_conv_shapes);

}  // namespace
}  // namespace dfx::bench

// Google Benchmark's main plus context lines: OpenMP threads (set OMP_NUM_THREADS to change them)
// and the core OpenBLAS picked, which decides the conv numbers (OPENBLAS_CORETYPE overrides it),
// and whether the convolutions run on AMX bf16 tiles (DFX_AMX_BF16=1).
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("omp_threads", std::to_string(omp_get_max_threads()));
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  benchmark::AddCustomContext("OPENBLAS_CORETYPE", coretype ? coretype : "(unset)");
  benchmark::AddCustomContext("amx_bf16", dfx::kernels::amx_bf16_active() ? "on" : "off");
#if DFX_BENCH_OPENBLAS
  benchmark::AddCustomContext("openblas_core", openblas_get_corename());
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
