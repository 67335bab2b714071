// bench/micro/bench_norm_pool.cpp — the memory-bound kernels of W1's blocks: batch norm (stats +
// apply forward, reduce + apply backward), 2x2 max pool and its scatter backward, leaky_relu,
// each validated first; a STREAM-style triad gives the bandwidth roofline to read them against.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "bench/micro/bench_util.h"
#include "core/rng.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"
#include "kernels/pool.h"

namespace dfx::bench {
namespace {

constexpr int64_t kBatch = 8;
constexpr double kEps = 1e-5;

// ---- roofline: a[i] = b[i] + s c[i] over float arrays of state.range(0) MiB each ----
void BM_triad_roofline(benchmark::State& state) {
  const int64_t n = state.range(0) * (1 << 20) / 4;
  std::unique_ptr<float[]> a(new float[n]), b(new float[n]), c(new float[n]);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    a[i] = 0;
    b[i] = 1;
    c[i] = 2;
  }
  auto triad = [&] {
    float *pa = a.get(), *pb = b.get(), *pc = c.get();
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) pa[i] = pb[i] + 0.5f * pc[i];
  };
  triad();
  if (!validate(state, a[0] == 2 && a[n - 1] == 2, "triad result")) return;
  for (auto _ : state) {
    triad();
    benchmark::ClobberMemory();
  }
  set_rates(state, 2.0 * n, 12.0 * n);
}
// 8 MiB: the size of W1's largest activation [8, 16, 128, 128] (cache-resident on big LLCs);
// 256 MiB: main memory.
BENCHMARK(BM_triad_roofline)->ArgName("MiB")->Arg(8)->Arg(256)->UseRealTime()
    ->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);

// ---- batch norm at [8, C, hw, hw] from Args {C, hw} ----
struct BnCase {
  int64_t c, hw, count;
  Tensor x, g, gamma, beta, mean, invstd;  // mean, invstd: float64 [C]

  explicit BnCase(const benchmark::State& s) : c(s.range(0)), hw(s.range(1)) {
    count = kBatch * hw * hw;
    x = uniform({kBatch, c, hw, hw}, -1, 3, 2, 0);
    g = uniform({kBatch, c, hw, hw}, -1, 1, 2, 1);
    gamma = uniform({c}, 0.5, 1.5, 2, 2);
    beta = uniform({c}, -0.5, 0.5, 2, 3);
    mean = zeros({c}, DType::Float64);
    invstd = zeros({c}, DType::Float64);
  }
  // Training-mode forward: channel sums, then mean and 1/sqrt(var + eps), then normalise.
  Tensor forward() const {
    Tensor s = kernels::channel_sums(x);
    const double* ps = s.data<double>();
    double *pm = mean.data<double>(), *pi = invstd.data<double>();
    for (int64_t ch = 0; ch < c; ++ch) {
      pm[ch] = ps[ch] / count;
      pi[ch] = 1.0 / std::sqrt(std::max(ps[c + ch] / count - pm[ch] * pm[ch], 0.0) + kEps);
    }
    return kernels::bn_apply(x, mean, invstd, gamma, beta);
  }
  Tensor backward() const {
    Tensor sums = kernels::bn_backward_reduce(g, x, mean, invstd);
    return kernels::bn_backward_apply(g, x, mean, invstd, gamma, sums, static_cast<double>(count));
  }
  // Calls f(value index) for every element of channel ch.
  template <class F>
  void for_channel(int64_t ch, F&& f) const {
    for (int64_t b = 0; b < kBatch; ++b)
      for (int64_t i = 0; i < hw * hw; ++i) f((b * c + ch) * hw * hw + i);
  }
  double direct_mean(int64_t ch) const {
    const float* px = x.data<float>();
    double s = 0;
    for_channel(ch, [&](int64_t i) { s += px[i]; });
    return s / count;
  }
};

// y of channel ch has mean beta (a known sum) and each sampled y equals the formula with the
// mean taken directly.
bool check_bn_forward(const BnCase& k, const Tensor& y) {
  if (!all_finite(y)) return false;
  const float *px = k.x.data<float>(), *py = y.data<float>();
  for (int64_t ch : {int64_t{0}, k.c - 1}) {
    const double m = k.direct_mean(ch);
    if (!near(k.mean.data<double>()[ch], m, 1.0, 1e-9)) return false;
    double sy = 0;
    k.for_channel(ch, [&](int64_t i) { sy += py[i]; });
    if (!near(sy / k.count, k.beta.data<float>()[ch], 1.0)) return false;
    const double is = k.invstd.data<double>()[ch], ga = k.gamma.data<float>()[ch];
    const int64_t i0 = ch * k.hw * k.hw + 7;  // sample 0, element 7 of the plane
    if (!near(py[i0], (px[i0] - m) * is * ga + k.beta.data<float>()[ch], 1.0)) return false;
  }
  return true;
}

// The input gradient of batch norm is orthogonal to 1 and to xhat in every channel.
bool check_bn_backward(const BnCase& k, const Tensor& gx) {
  if (!all_finite(gx)) return false;
  const float *px = k.x.data<float>(), *pg = k.g.data<float>(), *pgx = gx.data<float>();
  for (int64_t ch : {int64_t{0}, k.c - 1}) {
    const double m = k.mean.data<double>()[ch], is = k.invstd.data<double>()[ch];
    double s1 = 0, s2 = 0, mag = 0;
    k.for_channel(ch, [&](int64_t i) {
      s1 += pgx[i];
      s2 += pgx[i] * (px[i] - m) * is;
      mag += std::abs(pg[i]) * is;
    });
    if (!near(s1, 0, mag) || !near(s2, 0, 4 * mag)) return false;
  }
  return true;
}

void BM_bn_forward(benchmark::State& state) {
  BnCase k(state);
  Tensor y = k.forward();
  if (!validate(state, check_bn_forward(k, y), "batch-norm forward")) return;
  for (auto _ : state) {
    Tensor out = k.forward();
    benchmark::DoNotOptimize(out.raw_data());
  }
  // channel_sums reads x, bn_apply reads x and writes y.
  set_rates(state, 0, 3 * nbytes(k.x), static_cast<double>(k.x.numel()));
}

void BM_bn_backward(benchmark::State& state) {
  BnCase k(state);
  k.forward();  // the saved mean and invstd
  Tensor gx = k.backward();
  if (!validate(state, check_bn_backward(k, gx), "batch-norm backward")) return;
  for (auto _ : state) {
    Tensor out = k.backward();
    benchmark::DoNotOptimize(out.raw_data());
  }
  // reduce reads g and x; apply reads g and x and writes gx.
  set_rates(state, 0, 5 * nbytes(k.x), static_cast<double>(k.x.numel()));
}

void bn_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"c", "hw"})->Args({16, 128})->Args({64, 32});
  b->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_bn_forward)->Apply(bn_shapes);
BENCHMARK(BM_bn_backward)->Apply(bn_shapes);

// ---- 2x2 max pool at [8, C, hw, hw] ----
kernels::PoolWindow window_2x2() {
  kernels::PoolWindow w;
  w.kernel = {2};
  return w;
}

void BM_max_pool_forward(benchmark::State& state) {
  const int64_t c = state.range(0), hw = state.range(1), ho = hw / 2;
  Tensor x = uniform({kBatch, c, hw, hw}, -1, 1, 3, 0);
  const auto win = window_2x2();
  kernels::MaxPoolResult r = kernels::max_pool(x, win);
  // Every output is the largest of its window and its index points at it.
  const float *px = x.data<float>(), *pv = r.values.data<float>();
  const int64_t* pi = r.indices.data<int64_t>();
  bool ok = r.values.numel() == kBatch * c * ho * ho;
  for (int64_t plane = 0; ok && plane < kBatch * c; ++plane)
    for (int64_t i = 0; ok && i < ho; ++i)
      for (int64_t j = 0; ok && j < ho; ++j) {
        const float* q = px + plane * hw * hw + 2 * i * hw + 2 * j;
        const float m = std::max(std::max(q[0], q[1]), std::max(q[hw], q[hw + 1]));
        const int64_t o = (plane * ho + i) * ho + j;
        ok = pv[o] == m && pi[o] >= 0 && pi[o] < hw * hw && px[plane * hw * hw + pi[o]] == m;
      }
  if (!validate(state, ok, "max_pool values or indices")) return;
  for (auto _ : state) {
    kernels::MaxPoolResult out = kernels::max_pool(x, win);
    benchmark::DoNotOptimize(out.values.raw_data());
  }
  set_rates(state, 0, nbytes(x) + nbytes(r.values) + nbytes(r.indices),
            static_cast<double>(x.numel()));
}

void BM_max_pool_backward(benchmark::State& state) {
  const int64_t c = state.range(0), hw = state.range(1);
  Tensor x = uniform({kBatch, c, hw, hw}, -1, 1, 3, 0);
  kernels::MaxPoolResult r = kernels::max_pool(x, window_2x2());
  Tensor g = uniform(r.values.shape(), -1, 1, 3, 1);
  Tensor gx = kernels::pool_scatter(g, r.indices, x.shape());
  // Disjoint windows: gx holds each g exactly once, at its index, and zeros elsewhere.
  const float *pg = g.data<float>(), *pgx = gx.data<float>();
  const int64_t* pi = r.indices.data<int64_t>();
  const int64_t ng = g.numel(), ngx = gx.numel(), per = ng / (kBatch * c);
  double sg = 0, sgx = 0, mag = 0;
  bool ok = all_finite(gx);
  for (int64_t o = 0; ok && o < ng; ++o) {
    ok = pgx[(o / per) * hw * hw + pi[o]] == pg[o];
    sg += pg[o];
    mag += std::abs(pg[o]);
  }
  for (int64_t i = 0; i < ngx; ++i) sgx += pgx[i];
  ok = ok && near(sgx, sg, mag, 1e-9);
  if (!validate(state, ok, "pool_scatter")) return;
  for (auto _ : state) {
    Tensor out = kernels::pool_scatter(g, r.indices, x.shape());
    benchmark::DoNotOptimize(out.raw_data());
  }
  set_rates(state, 0, nbytes(g) + nbytes(r.indices) + nbytes(gx), static_cast<double>(x.numel()));
}

void pool_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"c", "hw"})->Args({16, 128});
  b->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_max_pool_forward)->Apply(pool_shapes);
BENCHMARK(BM_max_pool_backward)->Apply(pool_shapes);

// ---- leaky_relu(0.2) at [8, C, hw, hw] ----
void BM_leaky_relu_forward(benchmark::State& state) {
  const int64_t c = state.range(0), hw = state.range(1);
  Tensor x = uniform({kBatch, c, hw, hw}, -1, 1, 4, 0);
  Tensor y = kernels::unary(kernels::UnaryOp::LeakyRelu, x, 0.2);
  const float *px = x.data<float>(), *py = y.data<float>();
  const int64_t n = x.numel();
  bool ok = y.numel() == n;
  for (int64_t i = 0; ok && i < n; ++i)
    ok = near(py[i], px[i] > 0 ? px[i] : 0.2 * px[i], std::abs(px[i]), 1e-6, 0);
  if (!validate(state, ok, "leaky_relu")) return;
  for (auto _ : state) {
    Tensor out = kernels::unary(kernels::UnaryOp::LeakyRelu, x, 0.2);
    benchmark::DoNotOptimize(out.raw_data());
  }
  set_rates(state, 0, nbytes(x) + nbytes(y), static_cast<double>(x.numel()));
}
BENCHMARK(BM_leaky_relu_forward)->Apply(pool_shapes);

}  // namespace
}  // namespace dfx::bench
