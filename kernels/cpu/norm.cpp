// kernels/cpu/norm.cpp — batch-norm kernels on the CPU. Each plane (n, c) is cut into fixed
// chunks; a chunk's partial sums are computed by one OpenMP iteration and then added per channel
// in (n, chunk) order, so sums are bitwise independent of the thread count. S = 1 ([rows, C]:
// channels-last tensors, BatchNorm1d) has its own path, chunks of rows vectorised across C.
#include "kernels/cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/dispatch.h"

// No floating-point contraction in this file (as in kernels/cpu/pool.cpp): every product and sum
// rounds as written, so the fused leaky-ReLU backward and the unfused pair, which the compiler
// would otherwise contract differently, give the same bits.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace dfx::kernels::cpu {
namespace {

constexpr int64_t kChunk = 4096;
constexpr int kLanes = 8;  // interleaved partial sums of the backward reduction

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

namespace {

// Per element, what the backward kernels read: the gradient of batch norm's output, gy, and
// x - mean. Plain: g and x. With a fused leaky ReLU (kAct), g is the gradient of its output z and
// gy = g * leaky_relu'(z), as kernels::leaky_relu_backward computes it; with kRebuild, x - mean
// comes from z: (leaky_relu(z, 1 / slope) - beta) / (gamma invstd).
template <class T, bool kAct, bool kRebuild>
struct BackwardIn {
  const T *g, *x, *z;
  T slope;
  double inv_slope;
  const double *beta, *inv_scale, *mean;

  T gy(int64_t i) const {
    if constexpr (kAct) return z[i] > T(0) ? g[i] : g[i] * slope;
    return g[i];
  }
  // x - mean in float64 (the sums) ...
  double centered(int64_t i, int64_t ch) const {
    if constexpr (kRebuild) {
      const double zv = static_cast<double>(z[i]);
      return ((zv > 0 ? zv : zv * inv_slope) - beta[ch]) * inv_scale[ch];
    }
    return static_cast<double>(x[i]) - mean[ch];
  }
  // ... and in T (the input gradient), with per-channel constants already in T.
  T centered_t(int64_t i, T m, T be, T ia, T isl) const {
    if constexpr (kRebuild) {
      const T zv = z[i];
      return ((zv > T(0) ? zv : zv * isl) - be) * ia;
    }
    return x[i] - m;
  }
};

// f(BackwardIn<T, act, rebuild>) for the call's combination.
template <class T, class F>
void with_backward_in(const Tensor& g, const Tensor& x, const Tensor& mean, const BnActGrad& act,
                      F&& f) {
  auto make = [&](auto in) {
    in.g = g.data<T>();
    in.x = x.defined() ? x.data<T>() : nullptr;
    in.z = act.on ? act.z.data<T>() : nullptr;
    in.slope = static_cast<T>(act.slope);
    in.inv_slope = act.rebuild_x ? 1.0 / act.slope : 0.0;
    in.beta = act.rebuild_x ? act.beta.data<double>() : nullptr;
    in.inv_scale = act.rebuild_x ? act.inv_scale.data<double>() : nullptr;
    in.mean = mean.data<double>();
    f(in);
  };
  if (act.rebuild_x)
    make(BackwardIn<T, true, true>{});
  else if (act.on)
    make(BackwardIn<T, true, false>{});
  else
    make(BackwardIn<T, false, false>{});
}

}  // namespace

void bn_backward_reduce(const Tensor& g, const Tensor& x, int64_t n, int64_t c, int64_t s,
                        const Tensor& mean, const Tensor& invstd, const Tensor& out,
                        const BnActGrad& act) {
  dispatch_float(g.dtype(), "bn_backward_reduce", [&](auto zt) {
    using T = decltype(zt);
    double* po = out.data<double>();
    const double* pis = invstd.data<double>();
    with_backward_in<T>(g, x, mean, act, [&](const auto& in) {
      if (s == 1) {
        rows_reduce(n, c, po, [&](int64_t r, double* a, double* b) {
#pragma omp simd
          for (int64_t ch = 0; ch < c; ++ch) {
            const double gv = static_cast<double>(in.gy(r * c + ch));
            a[ch] += gv;
            b[ch] += gv * in.centered(r * c + ch, ch);
          }
        });
      } else {
        const int64_t per = chunks_of(s);
        std::vector<double> part(2 * n * c * per, 0.0);
        for_each_chunk(n, c, s, [&](int64_t plane, int64_t ch, int64_t b, int64_t e) {
          // kLanes interleaved partial sums added in a fixed order: the summation order is the
          // code's, not the vectoriser's, so the fused and unfused leaky-ReLU paths (which
          // vectorise differently) give the same bits.
          double s1[kLanes] = {}, s2[kLanes] = {};
          const int64_t lo = plane * s + b, hi = plane * s + e;
          int64_t i = lo;
          for (; i + kLanes <= hi; i += kLanes) {
#pragma omp simd
            for (int l = 0; l < kLanes; ++l) {
              const double gv = static_cast<double>(in.gy(i + l));
              s1[l] += gv;
              s2[l] += gv * in.centered(i + l, ch);
            }
          }
          for (int l = 0; i < hi; ++i, ++l) {
            const double gv = static_cast<double>(in.gy(i));
            s1[l] += gv;
            s2[l] += gv * in.centered(i, ch);
          }
          double t1 = 0, t2 = 0;
          for (int l = 0; l < kLanes; ++l) {
            t1 += s1[l];
            t2 += s2[l];
          }
          const int64_t q = plane * per + b / kChunk;
          part[2 * q] = t1;
          part[2 * q + 1] = t2;
        });
        combine(part, n, c, s, po);
      }
    });
    // sum g * xhat = invstd * sum g * (x - mean): one multiply per channel instead of per element.
    for (int64_t ch = 0; ch < c; ++ch) po[c + ch] *= pis[ch];
  });
}

void bn_backward_apply(const Tensor& g, const Tensor& x, int64_t n, int64_t c, int64_t s,
                       const Tensor& mean, const Tensor& invstd, const Tensor& gamma,
                       const Tensor& sums, const Tensor& count_t, const Tensor& gx,
                       const BnActGrad& act) {
  const double count = count_t.data<double>()[0];
  dispatch_float(g.dtype(), "bn_backward_apply", [&](auto zt) {
    using T = decltype(zt);
    T* po = gx.data<T>();
    const double *pm = mean.data<double>(), *pis = invstd.data<double>();
    const double *pga = gamma.data<double>(), *ps = sums.data<double>();
    // gx = k * (gy - mg - (x - mean) * q) with per-channel k, mg and q folded in float64.
    std::vector<T> kk(c), mg(c), q(c), m(c), be(c, T(0)), ia(c, T(0));
    for (int64_t ch = 0; ch < c; ++ch) {
      const double is = pis[ch];
      kk[ch] = static_cast<T>(pga[ch] * is);
      mg[ch] = static_cast<T>(ps[ch] / count);
      q[ch] = static_cast<T>(is * ps[c + ch] / count);
      m[ch] = static_cast<T>(pm[ch]);
      if (act.rebuild_x) {
        be[ch] = static_cast<T>(act.beta.data<double>()[ch]);
        ia[ch] = static_cast<T>(act.inv_scale.data<double>()[ch]);
      }
    }
    const T isl = static_cast<T>(act.rebuild_x ? 1.0 / act.slope : 0.0);
    with_backward_in<T>(g, x, mean, act, [&](const auto& in) {
      if (s == 1) {
        rows_apply(n, c, [&](int64_t r) {
          T* o = po + r * c;
#pragma omp simd
          for (int64_t ch = 0; ch < c; ++ch) {
            const int64_t i = r * c + ch;
            o[ch] = kk[ch] * (in.gy(i) - mg[ch] - in.centered_t(i, m[ch], be[ch], ia[ch], isl) *
                                                      q[ch]);
          }
        });
        return;
      }
      for_each_chunk(n, c, s, [&](int64_t plane, int64_t ch, int64_t b, int64_t e) {
        const T k = kk[ch], mgc = mg[ch], qc = q[ch], mc = m[ch], bec = be[ch], iac = ia[ch];
#pragma omp simd
        for (int64_t i = plane * s + b; i < plane * s + e; ++i)
          po[i] = k * (in.gy(i) - mgc - in.centered_t(i, mc, bec, iac, isl) * qc);
      });
    });
  });
}

void bn_moments(const Tensor& packed, int64_t c, const Tensor& running_mean,
                const Tensor& running_var, double momentum, double eps, const Tensor& out) {
  if (c == 0) return;
  const double* p = packed.data<double>();
  double *mean = out.data<double>(), *invstd = mean + c;
  double* rm = running_mean.defined() ? running_mean.data<double>() : nullptr;
  double* rv = running_var.defined() ? running_var.data<double>() : nullptr;
  const double count = p[0];
  for (int64_t ch = 0; ch < c; ++ch) {
    const double m = p[c + ch] / count;
    const double var = std::max(p[2 * c + ch] / count - m * m, 0.0);  // E[x^2] - E[x]^2
    mean[ch] = m;
    invstd[ch] = 1.0 / std::sqrt(var + eps);
    if (rm) rm[ch] = (1.0 - momentum) * rm[ch] + momentum * m;
    if (rv) rv[ch] = (1.0 - momentum) * rv[ch] + momentum * (var * count / (count - 1.0));
  }
}

}  // namespace dfx::kernels::cpu
