// kernels/cpu/norm.cpp — batch-norm kernels on the CPU. Each plane (n, c) is cut into fixed
// chunks; a chunk's partial sums are computed by one OpenMP iteration and then added per channel
// in (n, chunk) order, so sums are bitwise independent of the thread count. S = 1 ([rows, C]:
// channels-last tensors, BatchNorm1d) has its own path, chunks of rows vectorised across C.
#include "kernels/cpu/norm.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/dispatch.h"

namespace dfx::kernels::cpu {
namespace {

constexpr int64_t kChunk = 4096;

int64_t chunks_of(int64_t s) { return std::max<int64_t>((s + kChunk - 1) / kChunk, 1); }

// Calls f(plane, channel, begin, end) for every chunk of every plane, chunks spread over threads.
template <class F>
void for_each_chunk(int64_t n, int64_t c, int64_t s, F&& f) {
  const int64_t per = chunks_of(s), total = n * c * per;
#pragma omp parallel for schedule(static) if (total > 1 && n * c * s >= 32768)
  for (int64_t q = 0; q < total; ++q) {
    const int64_t plane = q / per, k = q % per;
    f(plane, plane % c, k * kChunk, std::min(s, (k + 1) * kChunk));
  }
}

// out[ch] (2 rows of C) = sum over planes of channel ch and their chunks, in a fixed order.
void combine(const std::vector<double>& part, int64_t n, int64_t c, int64_t s, double* out) {
  const int64_t per = chunks_of(s);
  for (int64_t ch = 0; ch < c; ++ch) {
    double a = 0, b = 0;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t k = 0; k < per; ++k) {
        const int64_t q = (i * c + ch) * per + k;
        a += part[2 * q];
        b += part[2 * q + 1];
      }
    }
    out[ch] = a;
    out[c + ch] = b;
  }
}

// ---- S = 1: [rows, C] (channels-last tensors, BatchNorm1d) ----
// Rows are cut into fixed chunks of kRowChunk; a chunk's per-channel partials are computed by
// one OpenMP iteration (vectorised across channels) and added per channel in chunk order.
constexpr int64_t kRowChunk = 256;

int64_t row_chunks(int64_t rows) { return std::max<int64_t>((rows + kRowChunk - 1) / kRowChunk, 1); }

// part [chunks][2][C]: f(row, a_row_out, b_row_out) accumulates one row into the two partial rows.
template <class F>
void rows_reduce(int64_t rows, int64_t c, double* out, F&& f) {
  const int64_t chunks = row_chunks(rows);
  std::vector<double> part(static_cast<size_t>(2 * chunks * c), 0.0);
#pragma omp parallel for schedule(static) if (chunks > 1 && rows * c >= 32768)
  for (int64_t q = 0; q < chunks; ++q) {
    double* pa = part.data() + 2 * q * c;
    double* pb = pa + c;
    for (int64_t r = q * kRowChunk; r < std::min(rows, (q + 1) * kRowChunk); ++r) f(r, pa, pb);
  }
  for (int64_t ch = 0; ch < c; ++ch) {
    double a = 0, b = 0;
    for (int64_t q = 0; q < chunks; ++q) {
      a += part[2 * q * c + ch];
      b += part[2 * q * c + c + ch];
    }
    out[ch] = a;
    out[c + ch] = b;
  }
}

// f(row) over every row, rows spread over threads.
template <class F>
void rows_apply(int64_t rows, int64_t c, F&& f) {
#pragma omp parallel for schedule(static) if (rows * c >= 32768)
  for (int64_t r = 0; r < rows; ++r) f(r);
}

}  // namespace

void channel_sums(const Tensor& x, int64_t n, int64_t c, int64_t s, const Tensor& out) {
  dispatch_float(x.dtype(), "channel_sums", [&](auto z) {
    using T = decltype(z);
    const T* px = x.data<T>();
    if (s == 1) {
      rows_reduce(n, c, out.data<double>(), [&](int64_t r, double* a, double* b) {
        const T* p = px + r * c;
#pragma omp simd
        for (int64_t ch = 0; ch < c; ++ch) {
          const double v = static_cast<double>(p[ch]);
          a[ch] += v;
          b[ch] += v * v;
        }
      });
      return;
    }
    std::vector<double> part(2 * n * c * chunks_of(s), 0.0);
    const int64_t per = chunks_of(s);
    for_each_chunk(n, c, s, [&](int64_t plane, int64_t, int64_t b, int64_t e) {
      const T* p = px + plane * s;
      double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
      for (int64_t i = b; i < e; ++i) {
        const double v = static_cast<double>(p[i]);
        s1 += v;
        s2 += v * v;
      }
      const int64_t q = plane * per + b / kChunk;
      part[2 * q] = s1;
      part[2 * q + 1] = s2;
    });
    combine(part, n, c, s, out.data<double>());
  });
}

void bn_apply(const Tensor& x, int64_t n, int64_t c, int64_t s, const Tensor& mean,
              const Tensor& invstd, const Tensor& gamma, const Tensor& beta, const Tensor& y,
              FusedLeakyRelu act) {
  dispatch_float(x.dtype(), "bn_apply", [&](auto z) {
    using T = decltype(z);
    // leaky_relu in the branch-free form of kernels/cpu/elementwise.cpp (same bits as unfused).
    const T sl = static_cast<T>(act.slope);
    const bool on = act.on;
    auto f = [sl, on](T v) { return on ? std::max(v, T(0)) + sl * std::min(v, T(0)) : v; };
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const double *pm = mean.data<double>(), *pis = invstd.data<double>();
    const double *pga = gamma.data<double>(), *pbe = beta.data<double>();
    if (s == 1) {
      std::vector<T> m(c), a(c), be(c);
      for (int64_t ch = 0; ch < c; ++ch) {
        m[ch] = static_cast<T>(pm[ch]);
        a[ch] = static_cast<T>(pis[ch] * pga[ch]);
        be[ch] = static_cast<T>(pbe[ch]);
      }
      rows_apply(n, c, [&](int64_t r) {
        const T* p = px + r * c;
        T* o = py + r * c;
#pragma omp simd
        for (int64_t ch = 0; ch < c; ++ch) o[ch] = f((p[ch] - m[ch]) * a[ch] + be[ch]);
      });
      return;
    }
    for_each_chunk(n, c, s, [&](int64_t plane, int64_t ch, int64_t b, int64_t e) {
      // (x - mean) * a + beta rather than x * a + shift: no cancellation when |mean| >> std.
      const T m = static_cast<T>(pm[ch]), a = static_cast<T>(pis[ch] * pga[ch]);
      const T be = static_cast<T>(pbe[ch]);
      const T* p = px + plane * s;
      T* o = py + plane * s;
#pragma omp simd
      for (int64_t i = b; i < e; ++i) o[i] = f((p[i] - m) * a + be);
    });
  });
}

void bn_backward_reduce(const Tensor& g, const Tensor& x, int64_t n, int64_t c, int64_t s,
                        const Tensor& mean, const Tensor& invstd, const Tensor& out) {
  dispatch_float(x.dtype(), "bn_backward_reduce", [&](auto z) {
    using T = decltype(z);
    const T *px = x.data<T>(), *pg = g.data<T>();
    const double* pm = mean.data<double>();
    double* po = out.data<double>();
    const double* pis = invstd.data<double>();
    if (s == 1) {
      rows_reduce(n, c, po, [&](int64_t r, double* a, double* b) {
        const T* xp = px + r * c;
        const T* gp = pg + r * c;
#pragma omp simd
        for (int64_t ch = 0; ch < c; ++ch) {
          const double gv = static_cast<double>(gp[ch]);
          a[ch] += gv;
          b[ch] += gv * (static_cast<double>(xp[ch]) - pm[ch]);
        }
      });
      for (int64_t ch = 0; ch < c; ++ch) po[c + ch] *= pis[ch];
      return;
    }
    const int64_t per = chunks_of(s);
    std::vector<double> part(2 * n * c * per, 0.0);
    for_each_chunk(n, c, s, [&](int64_t plane, int64_t ch, int64_t b, int64_t e) {
      const double m = pm[ch];
      const T* xp = px + plane * s;
      const T* gp = pg + plane * s;
      double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
      for (int64_t i = b; i < e; ++i) {
        const double gv = static_cast<double>(gp[i]);
        s1 += gv;
        s2 += gv * (static_cast<double>(xp[i]) - m);
      }
      const int64_t q = plane * per + b / kChunk;
      part[2 * q] = s1;
      part[2 * q + 1] = s2;
    });
    combine(part, n, c, s, po);
    // sum g * xhat = invstd * sum g * (x - mean): one multiply per channel instead of per element.
    for (int64_t ch = 0; ch < c; ++ch) po[c + ch] *= pis[ch];
  });
}

void bn_backward_apply(const Tensor& g, const Tensor& x, int64_t n, int64_t c, int64_t s,
                       const Tensor& mean, const Tensor& invstd, const Tensor& gamma,
                       const Tensor& sums, double count, const Tensor& gx) {
  dispatch_float(x.dtype(), "bn_backward_apply", [&](auto z) {
    using T = decltype(z);
    const T *px = x.data<T>(), *pg = g.data<T>();
    T* po = gx.data<T>();
    const double *pm = mean.data<double>(), *pis = invstd.data<double>();
    const double *pga = gamma.data<double>(), *ps = sums.data<double>();
    if (s == 1) {
      std::vector<T> kk(c), mg(c), q(c), m(c);
      for (int64_t ch = 0; ch < c; ++ch) {
        const double is = pis[ch];
        kk[ch] = static_cast<T>(pga[ch] * is);
        mg[ch] = static_cast<T>(ps[ch] / count);
        q[ch] = static_cast<T>(is * ps[c + ch] / count);
        m[ch] = static_cast<T>(pm[ch]);
      }
      rows_apply(n, c, [&](int64_t r) {
        const T* xp = px + r * c;
        const T* gp = pg + r * c;
        T* o = po + r * c;
#pragma omp simd
        for (int64_t ch = 0; ch < c; ++ch)
          o[ch] = kk[ch] * (gp[ch] - mg[ch] - (xp[ch] - m[ch]) * q[ch]);
      });
      return;
    }
    for_each_chunk(n, c, s, [&](int64_t plane, int64_t ch, int64_t b, int64_t e) {
      // gx = k * (g - mg - (x - mean) * q) with per-channel k, mg and q folded in float64.
      const double is = pis[ch];
      const T k = static_cast<T>(pga[ch] * is);
      const T mg = static_cast<T>(ps[ch] / count);
      const T q = static_cast<T>(is * ps[c + ch] / count);
      const T m = static_cast<T>(pm[ch]);
      const T* xp = px + plane * s;
      const T* gp = pg + plane * s;
      T* o = po + plane * s;
#pragma omp simd
      for (int64_t i = b; i < e; ++i) o[i] = k * (gp[i] - mg - (xp[i] - m) * q);
    });
  });
}

}  // namespace dfx::kernels::cpu
