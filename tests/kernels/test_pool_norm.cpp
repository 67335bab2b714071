// tests/kernels/test_pool_norm.cpp — pooling, upsampling and batch-norm kernels against naive
// loops written here (PyTorch's semantics), hand-computed PyTorch values, adjoint identities
// <A x, y> = <x, A^T y>, and bitwise equality of results with 1 and 2 OpenMP threads.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"
#include "kernels/pool.h"
#include "tests/tensor_diff.h"

using namespace dfx;
namespace K = dfx::kernels;

namespace {

using Index = std::vector<int64_t>;

// Calls f(index) for every index of `shape` in row-major order.
void walk(const Shape& shape, const std::function<void(const Index&)>& f) {
  if (shape_numel(shape) == 0) return;
  Index i(shape.size(), 0);
  while (true) {
    f(i);
    int d = static_cast<int>(shape.size()) - 1;
    for (; d >= 0; --d) {
      if (++i[d] < shape[d]) break;
      i[d] = 0;
    }
    if (d < 0) return;
  }
}

int64_t flat(const Index& i, const Shape& s) {
  int64_t f = 0;
  for (size_t d = 0; d < s.size(); ++d) f = f * s[d] + i[d];
  return f;
}

// Uniform in [-1, 1] (never all zero), in the given dtype.
Tensor rnd(const Shape& s, uint64_t seed, DType dt = DType::Float64) {
  return uniform(s, -1, 1, seed, 0, 0, dt);
}

// Small positive integers: many ties inside every pooling window.
Tensor ties(const Shape& s, uint64_t seed, DType dt) {
  std::vector<double> v = rand(s, seed, 0, 0, DType::Float64).to_vector();
  for (double& e : v) e = std::floor(e * 3) + 1;
  return from_vector<double>(v, s).to(dt);
}

double dot(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}

// Largest |a - ref| / (1 + |ref|) over all elements.
double max_err(const Tensor& a, const std::vector<double>& ref) {
  std::vector<double> v = a.to_vector();
  REQUIRE(v.size() == ref.size());
  double e = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    double d = std::abs(v[i] - ref[i]) / (1 + std::abs(ref[i]));
    if (std::isnan(d)) d = INFINITY;
    e = std::max(e, d);
  }
  return e;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

double tol_of(DType dt) { return dt == DType::Float64 ? 1e-12 : 2e-6; }

std::vector<int64_t> expand_param(const std::vector<int64_t>& v, size_t n) {
  return v.size() == 1 ? std::vector<int64_t>(n, v[0]) : v;
}

struct Window {
  std::vector<int64_t> k, s, p;
};

// Naive max/avg pooling in PyTorch's semantics: values, indices, output shape.
struct PoolRef {
  Shape shape;
  std::vector<double> max, avg;
  std::vector<int64_t> idx;
};

PoolRef naive_pool(const Tensor& x, const Window& w) {
  const Shape& xs = x.shape();
  const size_t nsp = xs.size() - 2;
  auto k = expand_param(w.k, nsp), s = expand_param(w.s, nsp), p = expand_param(w.p, nsp);
  Shape sp(xs.begin() + 2, xs.end()), os{xs[0], xs[1]};
  for (size_t d = 0; d < nsp; ++d) os.push_back((sp[d] + 2 * p[d] - k[d]) / s[d] + 1);
  std::vector<double> xv = x.to_vector();
  PoolRef r{os, {}, {}, {}};
  const int64_t plane = shape_numel(sp);
  walk(os, [&](const Index& o) {
    const int64_t base = (o[0] * xs[1] + o[1]) * plane;
    double best = -INFINITY, sum = 0;
    int64_t bi = -1;
    walk(Shape(k.begin(), k.end()), [&](const Index& kk) {
      Index pos(nsp);
      for (size_t d = 0; d < nsp; ++d) {
        pos[d] = o[2 + d] * s[d] - p[d] + kk[d];
        if (pos[d] < 0 || pos[d] >= sp[d]) return;  // padding: -inf for max, 0 for the average
      }
      const double v = xv[base + flat(pos, sp)];
      sum += v;
      if (bi < 0 || v > best) {
        best = v;
        bi = flat(pos, sp);
      }
    });
    r.max.push_back(best);
    r.idx.push_back(bi);
    r.avg.push_back(sum / static_cast<double>(shape_numel(Shape(k.begin(), k.end()))));
  });
  return r;
}

// Naive upsampling: nearest reads floor(o / s); linear follows PyTorch's source-index formula.
std::vector<double> naive_upsample(const Tensor& x, const std::vector<int64_t>& scale, bool linear,
                                   Shape& os) {
  const Shape& xs = x.shape();
  const size_t nsp = xs.size() - 2;
  auto s = expand_param(scale, nsp);
  Shape sp(xs.begin() + 2, xs.end());
  os = {xs[0], xs[1]};
  for (size_t d = 0; d < nsp; ++d) os.push_back(sp[d] * s[d]);
  std::vector<double> xv = x.to_vector(), out;
  const int64_t plane = shape_numel(sp);
  walk(os, [&](const Index& o) {
    const int64_t base = (o[0] * xs[1] + o[1]) * plane;
    // Per dim: two source indices and weights.
    std::vector<int64_t> i0(nsp), i1(nsp);
    std::vector<double> l0(nsp), l1(nsp);
    for (size_t d = 0; d < nsp; ++d) {
      if (!linear) {
        i0[d] = i1[d] = o[2 + d] / s[d];
        l0[d] = 1;
        l1[d] = 0;
        continue;
      }
      double src = (o[2 + d] + 0.5) / static_cast<double>(s[d]) - 0.5;
      src = std::max(src, 0.0);
      i0[d] = static_cast<int64_t>(std::floor(src));
      i1[d] = std::min(i0[d] + 1, sp[d] - 1);
      l1[d] = src - static_cast<double>(i0[d]);
      l0[d] = 1 - l1[d];
    }
    double v = 0;
    walk(Shape(nsp, 2), [&](const Index& c) {
      Index pos(nsp);
      double wt = 1;
      for (size_t d = 0; d < nsp; ++d) {
        pos[d] = c[d] ? i1[d] : i0[d];
        wt *= c[d] ? l1[d] : l0[d];
      }
      v += wt * xv[base + flat(pos, sp)];
    });
    out.push_back(v);
  });
  return out;
}

const Window kWindows2d[] = {
    {{2}, {2}, {0}},           // the U-Net's 2x2 pooling
    {{3}, {2}, {1}},           // overlapping, padded
    {{3, 2}, {1, 3}, {1, 0}},  // stride != kernel, per-dim values
};
const Window kWindows3d[] = {
    {{2}, {2}, {0}},
    {{2, 3, 2}, {1, 2, 2}, {1, 1, 0}},
};

struct PoolCase {
  Shape shape;
  Window w;
};

std::vector<PoolCase> pool_cases() {
  std::vector<PoolCase> cs;
  for (const Window& w : kWindows2d) cs.push_back({{2, 3, 7, 9}, w});
  for (const Window& w : kWindows3d) cs.push_back({{2, 2, 5, 6, 7}, w});
  cs.push_back({{2, 2, 9}, {{3}, {2}, {1}}});  // 1-d
  return cs;
}

K::PoolWindow kw(const Window& w) { return {w.k, w.s, w.p}; }

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE("pool: max_pool matches a naive loop, with PyTorch's index semantics and ties") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    uint64_t seed = 10;
    for (const PoolCase& c : pool_cases()) {
      for (bool tie : {false, true}) {
        CAPTURE(c.shape);
        CAPTURE(c.w.k);
        CAPTURE(tie);
        CAPTURE(dtype_name(dt));
        Tensor x = tie ? ties(c.shape, seed++, dt) : rnd(c.shape, seed++, dt);
        PoolRef ref = naive_pool(x, c.w);
        K::MaxPoolResult r = K::max_pool(x, kw(c.w));
        REQUIRE(r.values.shape() == ref.shape);
        CHECK(r.indices.dtype() == DType::Int64);
        CHECK(max_err(r.values, ref.max) == 0.0);
        std::vector<double> idx = r.indices.to_vector();
        std::vector<double> ref_idx(ref.idx.begin(), ref.idx.end());
        CHECK(idx == ref_idx);
      }
    }
  }
}

TEST_CASE("pool: max_pool indices at known points (PyTorch's values)") {
  Tensor x = arange(0, 16, 1, DType::Float32).view({1, 1, 4, 4});
  K::MaxPoolResult r = K::max_pool(x, {{2}, {2}, {0}});
  CHECK(r.values.to_vector() == std::vector<double>{5, 7, 13, 15});
  CHECK(r.indices.to_vector() == std::vector<double>{5, 7, 13, 15});
  // All equal: every window picks its first element inside the input (padding never wins).
  Tensor one = ones({1, 1, 4, 4}, DType::Float64);
  r = K::max_pool(one, {{3}, {2}, {1}});
  CHECK(r.values.to_vector() == std::vector<double>{1, 1, 1, 1});
  CHECK(r.indices.to_vector() == std::vector<double>{0, 1, 4, 5});
  r = K::max_pool(one, {{2}, {2}, {0}});
  CHECK(r.indices.to_vector() == std::vector<double>{0, 2, 8, 10});
  // A strided (non-contiguous) input is pooled by its values, not its memory order.
  Tensor xt = arange(0, 16, 1, DType::Float64).view({1, 1, 4, 4}).transpose(2, 3);
  r = K::max_pool(xt, {{2}, {2}, {0}});
  CHECK(r.values.to_vector() == std::vector<double>{5, 13, 7, 15});
  CHECK(r.indices.to_vector() == std::vector<double>{5, 7, 13, 15});
}

TEST_CASE("pool: gather and scatter by indices match naive loops and are adjoint") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    uint64_t seed = 40;
    for (const PoolCase& c : pool_cases()) {
      CAPTURE(c.shape);
      CAPTURE(c.w.k);
      const K::MaxPoolResult mp = K::max_pool(rnd(c.shape, seed++, dt), kw(c.w));
      Tensor idx = mp.indices;
      // Disjoint exactly when every dim's stride is at least its kernel.
      bool disjoint = true;
      for (size_t d = 0; d < c.w.k.size(); ++d)
        disjoint = disjoint && c.w.s[std::min(d, c.w.s.size() - 1)] >= c.w.k[d];
      CHECK(mp.disjoint == disjoint);
      Tensor x = rnd(c.shape, seed++, dt), y = rnd(idx.shape(), seed++, dt);
      Tensor gx = K::pool_gather(x, idx);
      Tensor sy = K::pool_scatter(y, idx, c.shape);
      if (mp.disjoint)
        CHECK(dfx::testing::max_abs_diff(K::pool_scatter(y, idx, c.shape, true), sy) == 0.0);
      const int64_t planes = c.shape[0] * c.shape[1];
      const int64_t in_n = x.numel() / planes, out_n = idx.numel() / planes;
      std::vector<double> xv = x.to_vector(), yv = y.to_vector(), iv = idx.to_vector();
      std::vector<double> ref_g(idx.numel()), ref_s(x.numel(), 0.0);
      for (int64_t p = 0; p < planes; ++p) {
        for (int64_t o = 0; o < out_n; ++o) {
          const int64_t i = static_cast<int64_t>(iv[p * out_n + o]);
          ref_g[p * out_n + o] = xv[p * in_n + i];
          ref_s[p * in_n + i] += yv[p * out_n + o];
        }
      }
      CHECK(max_err(gx, ref_g) == 0.0);
      CHECK(max_err(sy, ref_s) <= tol_of(dt));
      const double lhs = dot(gx, y), rhs = dot(x, sy);
      CHECK(lhs == doctest::Approx(rhs).epsilon(dt == DType::Float64 ? 1e-12 : 1e-5));
    }
  }
}

TEST_CASE("pool: avg_pool (count_include_pad) matches a naive loop; its adjoint is exact") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    uint64_t seed = 70;
    for (const PoolCase& c : pool_cases()) {
      CAPTURE(c.shape);
      CAPTURE(c.w.k);
      Tensor x = rnd(c.shape, seed++, dt);
      PoolRef ref = naive_pool(x, c.w);
      Tensor y = K::avg_pool(x, kw(c.w));
      REQUIRE(y.shape() == ref.shape);
      CHECK(max_err(y, ref.avg) <= tol_of(dt));
      Tensor g = rnd(y.shape(), seed++, dt);
      Tensor ag = K::avg_pool_adjoint(g, c.shape, kw(c.w));
      REQUIRE(ag.shape() == c.shape);
      CHECK(dot(y, g) == doctest::Approx(dot(x, ag)).epsilon(dt == DType::Float64 ? 1e-12 : 1e-5));
    }
  }
}

TEST_CASE("pool: upsample at known points matches PyTorch (nearest, bilinear, linear x3)") {
  Tensor x = from_vector<double>({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor lin = K::upsample(x, {2}, K::UpsampleMode::Linear);
  // F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
  CHECK(lin.to_vector() == std::vector<double>{1.0, 1.25, 1.75, 2.0,  //
                                               1.5, 1.75, 2.25, 2.5,  //
                                               2.5, 2.75, 3.25, 3.5,  //
                                               3.0, 3.25, 3.75, 4.0});
  Tensor near = K::upsample(x.to(DType::Float32), {2}, K::UpsampleMode::Nearest);
  CHECK(near.to_vector() == std::vector<double>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  // F.interpolate(tensor([[[1., 2.]]]), scale_factor=3, mode="linear")
  Tensor l3 = K::upsample(from_vector<double>({1, 2}, {1, 1, 2}), {3}, K::UpsampleMode::Linear);
  CHECK(max_err(l3, {1, 1, 4.0 / 3, 5.0 / 3, 2, 2}) <= 1e-15);
}

TEST_CASE("pool: upsample matches a naive loop in 1-3 dims; its adjoint is exact") {
  struct Up {
    Shape shape;
    std::vector<int64_t> scale;
  };
  const Up ups[] = {{{2, 3, 5}, {3}}, {{2, 3, 4, 5}, {2}}, {{1, 2, 3, 4}, {2, 3}},
                    {{2, 2, 3, 4, 3}, {2}}, {{1, 2, 2, 3, 2}, {1, 2, 3}}};
  for (DType dt : {DType::Float64, DType::Float32}) {
    uint64_t seed = 100;
    for (const Up& u : ups) {
      for (bool linear : {false, true}) {
        CAPTURE(u.shape);
        CAPTURE(u.scale);
        CAPTURE(linear);
        const K::UpsampleMode mode = linear ? K::UpsampleMode::Linear : K::UpsampleMode::Nearest;
        Tensor x = rnd(u.shape, seed++, dt);
        Shape os;
        std::vector<double> ref = naive_upsample(x, u.scale, linear, os);
        Tensor y = K::upsample(x, u.scale, mode);
        REQUIRE(y.shape() == os);
        CHECK(max_err(y, ref) <= tol_of(dt));
        Tensor g = rnd(os, seed++, dt);
        Tensor ag = K::upsample_adjoint(g, u.scale, mode);
        REQUIRE(ag.shape() == u.shape);
        CHECK(dot(y, g) ==
              doctest::Approx(dot(x, ag)).epsilon(dt == DType::Float64 ? 1e-12 : 1e-5));
      }
    }
  }
}

TEST_CASE("pool: invalid windows, dtypes and indices throw dfx::Error") {
  Tensor x = rnd({1, 2, 4, 4}, 1);
  CHECK_THROWS_AS(K::max_pool(x, {{2}, {2}, {2}}), Error);            // padding > kernel / 2
  CHECK_THROWS_AS(K::avg_pool(x, {{5}, {1}, {0}}), Error);            // kernel > input
  CHECK_THROWS_AS(K::max_pool(x, {{2, 2, 2}, {2}, {0}}), Error);      // 3 values for 2 dims
  CHECK_THROWS_AS(K::max_pool(rnd({4, 4}, 1), {{2}, {2}, {0}}), Error);  // no spatial dims
  CHECK_THROWS_AS(K::upsample(x, {0}, K::UpsampleMode::Nearest), Error);
  CHECK_THROWS_AS(K::upsample_adjoint(rnd({1, 2, 5}, 1), {2}, K::UpsampleMode::Linear), Error);
  CHECK_THROWS_AS(K::max_pool(x.to(DType::Int64), {{2}, {2}, {0}}), Error);
  Tensor bad = full({1, 2, 2, 2}, 16, DType::Int64);
  CHECK_THROWS_AS(K::pool_gather(x, bad), Error);
  CHECK_THROWS_AS(K::pool_scatter(rnd({1, 2, 2, 2}, 2), bad, x.shape()), Error);
  try {
    K::max_pool(x, {{2}, {2}, {2}});
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("max_pool") != std::string::npos);
  }
}

TEST_CASE("norm: channel sums match a two-pass reference; apply and backward match naive loops") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    for (const Shape& s : {Shape{4, 3, 5, 6}, Shape{2, 2, 3, 4, 5}, Shape{7, 3}}) {
      CAPTURE(s);
      CAPTURE(dtype_name(dt));
      // An offset mean, so E[x^2] - E[x]^2 is not trivially well conditioned.
      Tensor x = uniform(s, 1.0, 3.0, 5, 0, 0, dt), g = rnd(s, 6, dt);
      const int64_t C = s[1], n = x.numel() / C, inner = n / s[0];
      std::vector<double> xv = x.to_vector(), gv = g.to_vector();
      auto ch = [&](int64_t i) { return (i / inner) % C; };
      std::vector<double> mean(C, 0), var(C, 0), sum(C, 0), sumsq(C, 0);
      for (size_t i = 0; i < xv.size(); ++i) {
        mean[ch(i)] += xv[i] / n;
        sum[ch(i)] += xv[i];
        sumsq[ch(i)] += xv[i] * xv[i];
      }
      for (size_t i = 0; i < xv.size(); ++i)
        var[ch(i)] += (xv[i] - mean[ch(i)]) * (xv[i] - mean[ch(i)]) / n;

      Tensor sums = K::channel_sums(x);
      REQUIRE(sums.shape() == Shape{2, C});
      CHECK(sums.dtype() == DType::Float64);
      std::vector<double> sv = sums.to_vector();
      for (int64_t c = 0; c < C; ++c) {
        CHECK(sv[c] == doctest::Approx(sum[c]).epsilon(1e-13));
        CHECK(sv[C + c] == doctest::Approx(sumsq[c]).epsilon(1e-13));
        const double m = sv[c] / n, v = sv[C + c] / n - m * m;
        CHECK(m == doctest::Approx(mean[c]).epsilon(1e-13));
        CHECK(v == doctest::Approx(var[c]).epsilon(1e-10));
      }

      std::vector<double> is(C);
      for (int64_t c = 0; c < C; ++c) is[c] = 1 / std::sqrt(var[c] + 1e-5);
      Tensor mean_t = from_vector<double>(mean, {C}), is_t = from_vector<double>(is, {C});
      Tensor gamma = uniform({C}, 0.5, 1.5, 7, 0, 0, dt), beta = rnd({C}, 8, dt);
      std::vector<double> gam = gamma.to_vector(), bet = beta.to_vector();
      std::vector<double> y_ref, y0_ref, sg(C, 0), sgx(C, 0);
      for (size_t i = 0; i < xv.size(); ++i) {
        const int64_t c = ch(i);
        const double xh = (xv[i] - mean[c]) * is[c];
        y_ref.push_back(xh * gam[c] + bet[c]);
        y0_ref.push_back(xh);
        sg[c] += gv[i];
        sgx[c] += gv[i] * xh;
      }
      CHECK(max_err(K::bn_apply(x, mean_t, is_t, gamma, beta), y_ref) <= 10 * tol_of(dt));
      CHECK(max_err(K::bn_apply(x, mean_t, is_t, Tensor(), Tensor()), y0_ref) <= 10 * tol_of(dt));

      Tensor red = K::bn_backward_reduce(g, x, mean_t, is_t);
      REQUIRE(red.shape() == Shape{2, C});
      std::vector<double> rv = red.to_vector();
      for (int64_t c = 0; c < C; ++c) {
        CHECK(rv[c] == doctest::Approx(sg[c]).epsilon(1e-12));
        CHECK(rv[C + c] == doctest::Approx(sgx[c]).epsilon(1e-10));
      }
      // A count larger than the local one, as after an all-reduce over ranks.
      const double count = 2.0 * n;
      std::vector<double> gx_ref;
      for (size_t i = 0; i < xv.size(); ++i) {
        const int64_t c = ch(i);
        const double xh = (xv[i] - mean[c]) * is[c];
        gx_ref.push_back(gam[c] * is[c] * (gv[i] - sg[c] / count - xh * sgx[c] / count));
      }
      Tensor gx = K::bn_backward_apply(g, x, mean_t, is_t, gamma, red, count);
      CHECK(max_err(gx, gx_ref) <= 100 * tol_of(dt));
    }
  }
}

TEST_CASE("norm: the fused leaky-ReLU backward, with x read or rebuilt from z, in both layouts") {
  const double slope = 0.2;
  const K::FusedLeakyRelu act{true, slope};
  for (const Shape& s : {Shape{3, 4, 5, 6}, Shape{2, 3, 9000}}) {
    CAPTURE(s);
    const int64_t C = s[1];
    const Tensor x = uniform(s, -1, 2, 91, 0, 0, DType::Float64);
    const Tensor g = uniform(s, -1, 1, 92, 0, 0, DType::Float64);
    const Tensor mean = uniform({C}, -0.5, 0.5, 93, 0, 0, DType::Float64);
    const Tensor invstd = uniform({C}, 0.5, 2.0, 94, 0, 0, DType::Float64);
    const Tensor gamma = uniform({C}, 0.5, 1.5, 95, 0, 0, DType::Float64);
    const Tensor beta = uniform({C}, -0.5, 0.5, 96, 0, 0, DType::Float64);
    const Tensor z = K::bn_apply(x, mean, invstd, gamma, beta, act);
    // The unfused pair: the leaky ReLU's backward materialised, then batch norm's.
    const Tensor gy = K::leaky_relu_backward(g, z, slope);
    const Tensor sums = K::bn_backward_reduce(gy, x, mean, invstd);
    const Tensor gx = K::bn_backward_apply(gy, x, mean, invstd, gamma, sums, 7.0);
    for (MemoryFormat f : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
      if (f == MemoryFormat::ChannelsLast && s.size() < 3) continue;
      const Tensor xf = x.contiguous(f), gf = g.contiguous(f), zf = z.contiguous(f);
      for (bool rebuild : {false, true}) {
        CAPTURE(rebuild);
        const K::LeakyReluOutput o{zf, slope, rebuild, gamma, beta};
        const Tensor xa = rebuild ? Tensor() : xf;
        const Tensor sf = K::bn_backward_reduce(gf, xa, mean, invstd, o);
        const Tensor af = K::bn_backward_apply(gf, xa, mean, invstd, gamma, sums, 7.0, o);
        CHECK(af.suggest_memory_format() == f);
        // Reading x in NCHW is the unfused computation itself, bit for bit; rebuilding x
        // differs by rounding only.
        const double tol = rebuild ? 1e-10 : f == MemoryFormat::Contiguous ? 0.0 : 1e-12;
        CHECK(max_err(sf, sums.to_vector()) <= tol);
        CHECK(max_err(af, gx.to_vector()) <= tol);
      }
    }
  }
  // Rebuilding x needs a positive slope and z.
  const Tensor x = uniform({2, 3, 4}, -1, 1, 97, 0, 0, DType::Float64);
  CHECK_THROWS_AS(K::bn_backward_reduce(x, Tensor(), zeros({3}, DType::Float64),
                                        ones({3}, DType::Float64),
                                        K::LeakyReluOutput{x, 0.0, true, Tensor(), Tensor()}),
                  Error);
}

TEST_CASE("norm: an empty local batch gives zero sums and empty outputs") {
  Tensor x = Tensor::empty({0, 3, 4, 4}, DType::Float32);
  Tensor sums = K::channel_sums(x);
  CHECK(sums.to_vector() == std::vector<double>(6, 0.0));
  Tensor m = zeros({3}, DType::Float64), is = ones({3}, DType::Float64);
  CHECK(K::bn_apply(x, m, is, Tensor(), Tensor()).shape() == x.shape());
  CHECK(K::bn_backward_reduce(x, x, m, is).to_vector() == std::vector<double>(6, 0.0));
  CHECK(K::bn_backward_apply(x, x, m, is, Tensor(), zeros({2, 3}, DType::Float64), 5).numel() == 0);
  CHECK_THROWS_AS(K::bn_apply(x, zeros({2}, DType::Float64), is, Tensor(), Tensor()), Error);
  CHECK_THROWS_AS(K::channel_sums(x.to(DType::Int64)), Error);
}

TEST_CASE("pool and norm: results are bitwise identical with 1 and 2 OpenMP threads") {
  const int saved = omp_get_max_threads();
  auto run_all = [](DType dt) {
    std::vector<Tensor> out;
    Tensor x2 = rnd({2, 4, 64, 66}, 3, dt), x3 = rnd({2, 2, 16, 34, 32}, 4, dt);
    for (const Tensor& x : {x2, x3}) {
      K::MaxPoolResult r = K::max_pool(x, {{3}, {2}, {1}});
      out.push_back(r.values);
      out.push_back(r.indices);
      out.push_back(K::pool_scatter(r.values, r.indices, x.shape()));
      out.push_back(K::pool_gather(x, r.indices));
      Tensor a = K::avg_pool(x, {{2}, {2}, {0}});
      out.push_back(a);
      out.push_back(K::avg_pool_adjoint(a, x.shape(), {{2}, {2}, {0}}));
      Tensor u = K::upsample(x, {2}, K::UpsampleMode::Linear);
      out.push_back(u);
      out.push_back(K::upsample_adjoint(u, {2}, K::UpsampleMode::Linear));
      Tensor sums = K::channel_sums(x);
      out.push_back(sums);
      const int64_t C = x.shape()[1];
      Tensor m = uniform({C}, -0.1, 0.1, 9, 0, 0, DType::Float64);
      Tensor is = uniform({C}, 0.5, 2, 9, 1, 0, DType::Float64);
      Tensor gamma = uniform({C}, 0.5, 1.5, 9, 2, 0, dt);
      out.push_back(K::bn_apply(x, m, is, gamma, Tensor()));
      Tensor g = rnd(x.shape(), 11, dt);
      Tensor red = K::bn_backward_reduce(g, x, m, is);
      out.push_back(red);
      out.push_back(K::bn_backward_apply(g, x, m, is, gamma, red, 3.0 * x.numel()));
    }
    return out;
  };
  for (DType dt : {DType::Float32, DType::Float64}) {
    omp_set_num_threads(1);
    std::vector<Tensor> one = run_all(dt);
    omp_set_num_threads(2);
    std::vector<Tensor> two = run_all(dt);
    omp_set_num_threads(saved);
    REQUIRE(one.size() == two.size());
    for (size_t i = 0; i < one.size(); ++i) {
      CAPTURE(i);
      CHECK(bitwise_equal(one[i], two[i]));
    }
  }
}

}  // TEST_SUITE
