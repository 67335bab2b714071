// kernels/cpu/pool.cpp — pooling and upsampling on the CPU. Every output element (or, for the
// scatter, every plane) is produced by exactly one OpenMP iteration in a fixed order, so results
// are bitwise independent of the thread count. Float32 sums accumulate in float64.
// Each op has an NCHW kernel (the inner loops along a plane's rows) and a channels-last one (the
// inner loops along the channels of one position); both do the same arithmetic in the same order
// for every element, so their results are bitwise equal.
#include "kernels/cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/dispatch.h"

// No floating-point contraction in this file: every product and sum rounds as written, so the
// NCHW and channels-last kernels (and vectorised or scalar code) give the same bits. GCC would
// otherwise fuse multiply-adds across statements (-ffp-contract=fast, its C++ default), and not
// alike in both kernels.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace dfx::kernels::cpu {

namespace {

// Work (multiply-adds, comparisons) below which a loop stays on one thread.
constexpr int64_t kParallelWork = 32768;

// Channels-last max pooling: one output position of one image at a time, all its channels
// together. The window is scanned in the NCHW kernel's row-major order with its update rule, so
// each (n, c) gets the same value and index; the channel loops run along contiguous memory.
template <class T>
void max_pool_cl(const T* px, const PoolGeometry& g, T* pv, int64_t* pi) {
  const int64_t C = g.planes.c, in_n = g.in_numel(), out_n = g.out_numel();
  const int64_t rows = g.planes.n * g.out[0] * g.out[1];  // (n, o0, o1): an output row each
  const bool par = rows > 1 && g.planes.count() * out_n * g.k[0] * g.k[1] * g.k[2] >= kParallelWork;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t q = 0; q < rows; ++q) {
    const int64_t o1 = q % g.out[1], o0 = (q / g.out[1]) % g.out[0];
    const int64_t n = q / (g.out[0] * g.out[1]);
    const T* xn = px + n * in_n * C;
    const int64_t a0 = std::max<int64_t>(o0 * g.s[0] - g.p[0], 0);
    const int64_t b0 = std::min(o0 * g.s[0] - g.p[0] + g.k[0], g.in[0]);
    const int64_t a1 = std::max<int64_t>(o1 * g.s[1] - g.p[1], 0);
    const int64_t b1 = std::min(o1 * g.s[1] - g.p[1] + g.k[1], g.in[1]);
    for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
      const int64_t a2 = std::max<int64_t>(o2 * g.s[2] - g.p[2], 0);
      const int64_t b2 = std::min(o2 * g.s[2] - g.p[2] + g.k[2], g.in[2]);
      const int64_t at = (n * out_n + (o0 * g.out[1] + o1) * g.out[2] + o2) * C;
      T* best = pv + at;
      int64_t* bi = pi + at;
      // Padding is -inf: it never wins, and the first real element is the default index.
      const int64_t first = (a0 * g.in[1] + a1) * g.in[2] + a2;
      for (int64_t c = 0; c < C; ++c) {
        best[c] = -std::numeric_limits<T>::infinity();
        bi[c] = first;
      }
      for (int64_t i0 = a0; i0 < b0; ++i0)
        for (int64_t i1 = a1; i1 < b1; ++i1)
          for (int64_t i2 = a2; i2 < b2; ++i2) {
            const int64_t sp = (i0 * g.in[1] + i1) * g.in[2] + i2;
            const T* xv = xn + sp * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) {
              const T v = xv[c], b = best[c];
              const bool u = v > b || v != v;  // first of ties, NaN wins: as the NCHW kernel
              best[c] = u ? v : b;
              bi[c] = u ? sp : bi[c];
            }
          }
    }
  }
}

// Channels-last gather: out and indices share a layout, so position q of both is one element.
template <class T>
bool pool_gather_cl(const T* px, const int64_t* pi, const PoolPlanes& planes, int64_t in_numel,
                    int64_t out_n, T* po) {
  const int64_t C = planes.c, rows = planes.n * out_n;  // (n, o): C elements each
  bool bad = false;
  const bool par = rows > 1 && rows * C >= kParallelWork;
#pragma omp parallel for schedule(static) reduction(|| : bad) if (par)
  for (int64_t q = 0; q < rows; ++q) {
    const T* xn = px + (q / out_n) * in_numel * C;
    for (int64_t c = 0; c < C; ++c) {
      const int64_t i = pi[q * C + c];
      if (i < 0 || i >= in_numel) {
        bad = true;
        po[q * C + c] = T(0);
      } else {
        po[q * C + c] = xn[i * C + c];
      }
    }
  }
  return !bad;
}

// Channels-last scatter: one (image, block of channels) per iteration, its outputs visited in
// increasing position, so each element adds its contributions in the NCHW kernel's order.
template <class T>
bool pool_scatter_cl(const T* pg, const int64_t* pi, const PoolPlanes& planes, int64_t in_numel,
                     int64_t out_n, T* po) {
  const int64_t C = planes.c;
  constexpr int64_t kBlock = 64;  // channels per iteration: whole cache lines of out
  const int64_t blocks = (C + kBlock - 1) / kBlock, tasks = planes.n * blocks;
  bool bad = false;
  const bool par = tasks > 1 && planes.count() * in_numel >= kParallelWork;
#pragma omp parallel for schedule(static) reduction(|| : bad) if (par)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t n = t / blocks, c0 = (t % blocks) * kBlock, c1 = std::min(c0 + kBlock, C);
    T* on = po + n * in_numel * C;
    for (int64_t s = 0; s < in_numel; ++s)
      for (int64_t c = c0; c < c1; ++c) on[s * C + c] = T(0);
    for (int64_t o = n * out_n; o < (n + 1) * out_n; ++o) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t i = pi[o * C + c];
        if (i < 0 || i >= in_numel) bad = true;
        else on[i * C + c] += pg[o * C + c];
      }
    }
  }
  return !bad;
}

// Channels-last separable map: output row (n, r0, r1) accumulates, for all its positions and
// channels together, the NCHW kernel's sums in its order ((e0, e1) pairs, each an inner sum over
// e2 started from 0, all in float64), so every element gets the NCHW kernel's bits.
template <class T>
void separable_cl(const T* px, const AxisMap (&maps)[3], double scale, const PoolPlanes& planes,
                  T* po) {
  const AxisMap &m0 = maps[0], &m1 = maps[1], &m2 = maps[2];
  const int64_t C = planes.c;
  const int64_t in_n = m0.cols * m1.cols * m2.cols, out_n = m0.rows * m1.rows * m2.rows;
  const int64_t rows = planes.n * m0.rows * m1.rows;
  const int64_t work = planes.count() * static_cast<int64_t>(m0.col.size() * m1.col.size() *
                                                             m2.col.size());
#pragma omp parallel if (rows > 1 && work >= kParallelWork)
  {
    std::vector<double> acc(m2.rows * C), part(C);
#pragma omp for schedule(static)
    for (int64_t q = 0; q < rows; ++q) {
      const int64_t r1 = q % m1.rows, r0 = (q / m1.rows) % m0.rows;
      const int64_t n = q / (m0.rows * m1.rows);
      const T* xn = px + n * in_n * C;
      T* orow = po + (n * out_n + (r0 * m1.rows + r1) * m2.rows) * C;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t e0 = m0.ptr[r0]; e0 < m0.ptr[r0 + 1]; ++e0) {
        for (int64_t e1 = m1.ptr[r1]; e1 < m1.ptr[r1 + 1]; ++e1) {
          const T* xrow = xn + (m0.col[e0] * m1.cols + m1.col[e1]) * m2.cols * C;
          const double cw = m0.w[e0] * m1.w[e1];
          for (int64_t r2 = 0; r2 < m2.rows; ++r2) {
            double* s = part.data();
            std::fill(part.begin(), part.end(), 0.0);
            for (int64_t e2 = m2.ptr[r2]; e2 < m2.ptr[r2 + 1]; ++e2) {
              const double w = m2.w[e2];
              const T* xv = xrow + m2.col[e2] * C;
#pragma omp simd
              for (int64_t c = 0; c < C; ++c) s[c] += w * static_cast<double>(xv[c]);
            }
            double* a = acc.data() + r2 * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) a[c] += cw * s[c];
          }
        }
      }
      for (int64_t i = 0; i < m2.rows * C; ++i) orow[i] = static_cast<T>(acc[i] * scale);
    }
  }
}

}  // namespace

void max_pool(const Tensor& x, const PoolGeometry& g, const Tensor& values, const Tensor& indices) {
  dispatch_float(x.dtype(), "max_pool", [&](auto z) {
    using T = decltype(z);
    const T* px = x.data<T>();
    T* pv = values.data<T>();
    int64_t* pi = indices.data<int64_t>();
    if (g.planes.channels_last()) return max_pool_cl(px, g, pv, pi);
    const int64_t in_n = g.in_numel(), out_n = g.out_numel();
    const int64_t planes = g.planes.count();
    const int64_t rows = planes * g.out[0] * g.out[1];  // one output row (last dim) each
    const bool par = rows > 1 && planes * out_n * g.k[0] * g.k[1] * g.k[2] >= kParallelWork;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t q = 0; q < rows; ++q) {
      const int64_t o1 = q % g.out[1], o0 = (q / g.out[1]) % g.out[0];
      const int64_t plane = q / (g.out[0] * g.out[1]);
      const T* xp = px + plane * in_n;
      const int64_t a0 = std::max<int64_t>(o0 * g.s[0] - g.p[0], 0);
      const int64_t b0 = std::min(o0 * g.s[0] - g.p[0] + g.k[0], g.in[0]);
      const int64_t a1 = std::max<int64_t>(o1 * g.s[1] - g.p[1], 0);
      const int64_t b1 = std::min(o1 * g.s[1] - g.p[1] + g.k[1], g.in[1]);
      T* best = pv + plane * out_n + (o0 * g.out[1] + o1) * g.out[2];
      int64_t* bi = pi + plane * out_n + (o0 * g.out[1] + o1) * g.out[2];
      const int64_t n2 = g.out[2], k2 = g.k[2], s2 = g.s[2], p2 = g.p[2], w = g.in[2];
      // Padding is -inf: it never wins, and the first real element is the default index.
      for (int64_t o2 = 0; o2 < n2; ++o2) {
        best[o2] = -std::numeric_limits<T>::infinity();
        bi[o2] = (a0 * g.in[1] + a1) * w + std::max<int64_t>(o2 * s2 - p2, 0);
      }
      // Sweep the window rows in order, and each row left to right: every output meets its
      // window in row-major order, so a strict > keeps the first of ties (PyTorch), while the
      // inner loops run along contiguous memory. NaN always wins, so it propagates.
      for (int64_t i0 = a0; i0 < b0; ++i0) {
        for (int64_t i1 = a1; i1 < b1; ++i1) {
          const int64_t row = (i0 * g.in[1] + i1) * w;
          const T* xr = xp + row;
          if (k2 == 2 && s2 == 2 && p2 == 0) {  // the U-Net's 2x pooling, branch-free
#pragma omp simd
            for (int64_t o2 = 0; o2 < n2; ++o2) {
              const T v0 = xr[2 * o2], v1 = xr[2 * o2 + 1];
              T b = best[o2];
              int64_t id = bi[o2];
              const bool u0 = v0 > b || v0 != v0;
              b = u0 ? v0 : b;
              id = u0 ? row + 2 * o2 : id;
              const bool u1 = v1 > b || v1 != v1;
              best[o2] = u1 ? v1 : b;
              bi[o2] = u1 ? row + 2 * o2 + 1 : id;
            }
            continue;
          }
          for (int64_t o2 = 0; o2 < n2; ++o2) {
            const int64_t a2 = std::max<int64_t>(o2 * s2 - p2, 0);
            const int64_t b2 = std::min(o2 * s2 - p2 + k2, w);
            T b = best[o2];
            int64_t id = bi[o2];
            for (int64_t i2 = a2; i2 < b2; ++i2) {
              const T v = xr[i2];
              const bool u = v > b || v != v;
              b = u ? v : b;
              id = u ? row + i2 : id;
            }
            best[o2] = b;
            bi[o2] = id;
          }
        }
      }
    }
  });
}

bool pool_gather(const Tensor& x, const Tensor& indices, const PoolPlanes& pl, int64_t in_numel,
                 const Tensor& out, bool /*check*/) {
  bool ok = true;
  const int64_t planes = pl.count();
  if (planes == 0) return true;
  dispatch_float(x.dtype(), "pool_gather", [&](auto z) {
    using T = decltype(z);
    const T* px = x.data<T>();
    const int64_t* pi = indices.data<int64_t>();
    T* po = out.data<T>();
    const int64_t out_n = indices.numel() / planes;
    if (pl.channels_last()) {
      ok = pool_gather_cl(px, pi, pl, in_numel, out_n, po);
      return;
    }
    bool bad = false;
    const bool par = planes > 1 && indices.numel() >= kParallelWork;
#pragma omp parallel for schedule(static) reduction(|| : bad) if (par)
    for (int64_t p = 0; p < planes; ++p) {
      const T* xp = px + p * in_numel;
      for (int64_t o = p * out_n; o < (p + 1) * out_n; ++o) {
        const int64_t i = pi[o];
        if (i < 0 || i >= in_numel) {
          bad = true;
          po[o] = T(0);
        } else {
          po[o] = xp[i];
        }
      }
    }
    ok = !bad;
  });
  return ok;
}

bool pool_scatter(const Tensor& g, const Tensor& indices, const PoolPlanes& pl, int64_t in_numel,
                  bool /*disjoint*/, const Tensor& out, bool /*check*/) {
  bool ok = true;
  const int64_t planes = pl.count();
  if (planes == 0) return true;
  dispatch_float(g.dtype(), "pool_scatter", [&](auto z) {
    using T = decltype(z);
    const T* pg = g.data<T>();
    const int64_t* pi = indices.data<int64_t>();
    T* po = out.data<T>();
    const int64_t out_n = indices.numel() / planes;
    if (pl.channels_last()) {
      ok = pool_scatter_cl(pg, pi, pl, in_numel, out_n, po);
      return;
    }
    bool bad = false;
    // One plane per iteration: the adds into a plane happen in output order, whatever the threads.
    const bool par = planes > 1 && out.numel() >= kParallelWork;
#pragma omp parallel for schedule(static) reduction(|| : bad) if (par)
    for (int64_t p = 0; p < planes; ++p) {
      T* op = po + p * in_numel;
      for (int64_t i = 0; i < in_numel; ++i) op[i] = T(0);
      for (int64_t o = p * out_n; o < (p + 1) * out_n; ++o) {
        const int64_t i = pi[o];
        if (i < 0 || i >= in_numel) bad = true;
        else op[i] += pg[o];
      }
    }
    ok = !bad;
  });
  return ok;
}

void separable(const Tensor& x, const AxisMap (&maps)[3], double scale, const PoolPlanes& pl,
               const Tensor& out) {
  dispatch_float(x.dtype(), "separable", [&](auto z) {
    using T = decltype(z);
    const T* px = x.data<T>();
    T* po = out.data<T>();
    if (pl.channels_last()) return separable_cl(px, maps, scale, pl, po);
    const int64_t planes = pl.count();
    const AxisMap &m0 = maps[0], &m1 = maps[1], &m2 = maps[2];
    const int64_t in_n = m0.cols * m1.cols * m2.cols, out_n = m0.rows * m1.rows * m2.rows;
    const int64_t rows = planes * m0.rows * m1.rows;
    const int64_t work = planes * static_cast<int64_t>(m0.col.size() * m1.col.size() *
                                                       m2.col.size());
    // Output rows (plane, r0, r1) are split over threads; each accumulates its input rows into a
    // per-thread float64 row buffer, in (e0, e1) order then e2 order, whatever the thread count.
#pragma omp parallel if (rows > 1 && work >= kParallelWork)
    {
      std::vector<double> acc(m2.rows);
#pragma omp for schedule(static)
      for (int64_t q = 0; q < rows; ++q) {
        const int64_t r1 = q % m1.rows, r0 = (q / m1.rows) % m0.rows;
        const int64_t plane = q / (m0.rows * m1.rows);
        const T* xp = px + plane * in_n;
        T* orow = po + plane * out_n + (r0 * m1.rows + r1) * m2.rows;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t e0 = m0.ptr[r0]; e0 < m0.ptr[r0 + 1]; ++e0) {
          for (int64_t e1 = m1.ptr[r1]; e1 < m1.ptr[r1 + 1]; ++e1) {
            const T* xrow = xp + (m0.col[e0] * m1.cols + m1.col[e1]) * m2.cols;
            const double c = m0.w[e0] * m1.w[e1];
            for (int64_t r2 = 0; r2 < m2.rows; ++r2) {
              double s = 0;
              for (int64_t e2 = m2.ptr[r2]; e2 < m2.ptr[r2 + 1]; ++e2)
                s += m2.w[e2] * static_cast<double>(xrow[m2.col[e2]]);
              acc[r2] += c * s;
            }
          }
        }
        for (int64_t r2 = 0; r2 < m2.rows; ++r2) orow[r2] = static_cast<T>(acc[r2] * scale);
      }
    }
  });
}

}  // namespace dfx::kernels::cpu
