// kernels/cpu/conv.cpp — convolutions on the CPU as im2col/vol2col + BLAS GEMM. A sample's
// receptive fields unrolled into col [Cin*K, S'] give y_n = W [Cout, Cin*K] @ col; the transpose
// computes W^T @ y_n and scatters it back (col2im); the weight gradient sums y_n @ col^T over the
// batch. 1x1 kernels with stride 1 and no padding skip the unrolling (x_n is its own col).
//
// Work is cut into fixed column blocks of S' whose width depends only on the shapes; every GEMM
// runs single-threaded on one block, and every sum runs in a fixed order. OpenMP threads then take
// (sample, block) items in any arrangement and the bits never depend on the thread count (OpenBLAS
// itself does not promise that: its threaded GEMM can round differently from its serial one).
// On 2 cores at W1's x [8, 16, 128, 128] * w [16, 16, 3, 3] the forward runs at 95 GFLOP/s, against
// 40 with a threaded GEMM per sample, 71 with whole samples per thread (col out of L2) and 28 with
// the batch folded into one GEMM (OpenBLAS with its SkylakeX kernels).
//
// With kernels::allow_amx_bf16() on a CPU with AMX, float32 convolutions whose kernel is larger
// than 1x1 run the same GEMMs on bf16 tiles (amx_gemm.h); the weights are packed once per call.
#include "kernels/cpu/conv.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <optional>
#include <type_traits>
#include <vector>

#include "kernels/conv_config.h"
#include "kernels/cpu/amx_gemm.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/gemm.h"

namespace dfx::kernels::cpu {
namespace {

constexpr int64_t kParallelMin = 32768;  // work below which threads cost more than they save
constexpr int64_t kBlockBytes = 512 * 1024;      // one column block of col (fits in L2)
constexpr int64_t kPartialElems = 8 << 20;       // budget for weight-gradient partial sums
constexpr int64_t kMaxPartials = 64;

// The geometry with 1-3 spatial dims padded to 3 by leading size-1 dims, so one loop nest serves
// conv1d, conv2d and conv3d.
struct Geo3 {
  int64_t n = 0, c = 0, o = 0;  // batch, channels of x (conv's input), channels of y
  int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t s[3] = {1, 1, 1}, p[3] = {0, 0, 0}, d[3] = {1, 1, 1};

  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t k_size() const { return k[0] * k[1] * k[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
  int64_t rows() const { return c * k_size(); }  // rows of the column matrix
  // The column matrix of x_n is x_n itself.
  bool pointwise() const {
    for (int i = 0; i < 3; ++i)
      if (k[i] != 1 || s[i] != 1 || p[i] != 0) return false;
    return true;
  }
};

Geo3 make_geo(const Shape& x, const Shape& w, const Shape& y, const ConvGeometry& g) {
  Geo3 r;
  r.n = x[0];
  r.c = x[1];
  r.o = w[0];
  const int off = 3 - g.nd;
  for (int i = 0; i < g.nd; ++i) {
    r.in[off + i] = x[2 + i];
    r.k[off + i] = w[2 + i];
    r.out[off + i] = y[2 + i];
    r.s[off + i] = g.stride[i];
    r.p[off + i] = g.padding[i];
    r.d[off + i] = g.dilation[i];
  }
  return r;
}

// Column blocks of S': `width` columns each (the last one shorter), from the shapes alone.
struct Blocks {
  int64_t width = 1, count = 0, total = 0;
  Blocks(const Geo3& g, size_t itemsize) : total(g.out_size()) {
    const int64_t row_bytes = g.rows() * static_cast<int64_t>(itemsize);
    const int64_t fit = kBlockBytes / std::max<int64_t>(1, row_bytes);
    width = std::min(total, std::max<int64_t>(256, fit / 64 * 64));
    width = std::max<int64_t>(width, 1);
    count = (total + width - 1) / width;
  }
  int64_t begin(int64_t b) const { return b * width; }
  int64_t end(int64_t b) const { return std::min(total, (b + 1) * width); }
  // Item `it` of the (sample, block) grid: sample n, columns [j0, j1).
  void item(int64_t it, int64_t& n, int64_t& j0, int64_t& j1) const {
    n = it / count;
    j0 = begin(it % count);
    j1 = end(it % count);
  }
};

// One kernel offset (kd, kh, kw) of row r: input offsets per dim and the valid ow range.
struct Tap {
  int64_t off[3];
  int64_t lo, hi;  // ow in [lo, hi) reads inside the input along the last dim
  Tap(const Geo3& g, int64_t kk) {
    const int64_t kd = kk / (g.k[1] * g.k[2]), kh = (kk / g.k[2]) % g.k[1], kw = kk % g.k[2];
    off[0] = kd * g.d[0] - g.p[0];
    off[1] = kh * g.d[1] - g.p[1];
    off[2] = kw * g.d[2] - g.p[2];
    const int64_t s = g.s[2], n = g.in[2], out = g.out[2];
    lo = off[2] >= 0 ? 0 : (-off[2] + s - 1) / s;
    hi = off[2] > n - 1 ? 0 : (n - 1 - off[2]) / s + 1;
    lo = std::min(lo, out);
    hi = std::max(lo, std::min(hi, out));
  }
};

// Calls f(row_in_input or -1, ow0, ow1, j) for the pieces of output rows (od, oh) that columns
// [j0, j1) cover: output positions ow0..ow1 of that row sit at column j. row_in_input is the
// offset of input row (id, ih) within a channel, or -1 when it lies in the padding.
// Only the first segment divides; the rest step (od, oh) on, which matters for the narrow rows
// of a U-Net's coarse levels (8 columns per segment at N = 64).
template <class F>
void for_each_segment(const Geo3& g, const Tap& t, int64_t j0, int64_t j1, F&& f) {
  const int64_t ow_n = g.out[2], oh_n = g.out[1];
  if (j0 >= j1) return;
  const int64_t orow = j0 / ow_n;
  int64_t od = orow / oh_n, oh = orow % oh_n, ow0 = j0 % ow_n;
  for (int64_t j = j0; j < j1;) {
    const int64_t ow1 = std::min(ow_n, ow0 + (j1 - j));
    const int64_t id = od * g.s[0] + t.off[0];
    const int64_t ih = oh * g.s[1] + t.off[1];
    const bool inside = id >= 0 && id < g.in[0] && ih >= 0 && ih < g.in[1];
    f(inside ? (id * g.in[1] + ih) * g.in[2] : -1, ow0, ow1, j);
    j += ow1 - ow0;
    ow0 = 0;
    if (++oh == oh_n) {
      oh = 0;
      ++od;
    }
  }
}

// col[r, j - j0] (row stride ld) for columns [j0, j1) of x_n's column matrix: row (c, kd, kh, kw),
// column (od, oh, ow) holds x_n[c, od*s + kd*d - p, ...], zero in the padding.
template <class T>
void im2col_block(const T* x, T* col, int64_t ld, const Geo3& g, int64_t j0, int64_t j1) {
  const int64_t K = g.k_size(), in_sz = g.in_size(), sw = g.s[2];
  for (int64_t r = 0; r < g.rows(); ++r) {
    const Tap t(g, r % K);
    const T* xc = x + (r / K) * in_sz;
    for_each_segment(g, t, j0, j1, [&](int64_t row, int64_t ow0, int64_t ow1, int64_t j) {
      T* d = col + r * ld + (j - j0);  // d[ow - ow0] for ow in [ow0, ow1)
      if (row < 0) {
        std::fill(d, d + (ow1 - ow0), T(0));
        return;
      }
      const int64_t a = std::clamp(t.lo, ow0, ow1), b = std::clamp(t.hi, a, ow1);
      std::fill(d, d + (a - ow0), T(0));
      if (b > a) {
        const T* src = xc + row + a * sw + t.off[2];  // input at ow = a
        if (sw == 1) {
          std::copy(src, src + (b - a), d + (a - ow0));
        } else {
          for (int64_t i = 0; i < b - a; ++i) d[a - ow0 + i] = src[i * sw];
        }
      }
      std::fill(d + (b - ow0), d + (ow1 - ow0), T(0));
    });
  }
}

// x_n[c] += the scatter of columns [j0, j1) of col (row stride ld) for channels [c0, c1): the
// adjoint of im2col_block. Per element, terms arrive in (block, kernel offset, column) order
// whichever way blocks and channels are spread over threads.
template <class T>
void col2im_block(const T* col, int64_t ld, T* x, const Geo3& g, int64_t j0, int64_t j1,
                  int64_t c0, int64_t c1) {
  const int64_t K = g.k_size(), in_sz = g.in_size(), sw = g.s[2];
  for (int64_t c = c0; c < c1; ++c) {
    T* xc = x + c * in_sz;
    for (int64_t kk = 0; kk < K; ++kk) {
      const Tap t(g, kk);
      const T* src_row = col + (c * K + kk) * ld;
      for_each_segment(g, t, j0, j1, [&](int64_t row, int64_t ow0, int64_t ow1, int64_t j) {
        const int64_t a = std::clamp(t.lo, ow0, ow1), b = std::clamp(t.hi, a, ow1);
        if (row < 0 || b == a) return;
        const T* src = src_row + (j - j0) + (a - ow0);  // column of ow = a
        T* dst = xc + row + a * sw + t.off[2];          // input at ow = a
        if (sw == 1) {
#pragma omp simd
          for (int64_t i = 0; i < b - a; ++i) dst[i] += src[i];
        } else {
          for (int64_t i = 0; i < b - a; ++i) dst[i * sw] += src[i];
        }
      });
    }
  }
}

// Row-major C [M, N] = op(A) @ op(B) + beta C.
void blas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda,
               const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
              N, K, 1.0f, a, lda, b, ldb, beta, c, ldc);
}
void blas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* a, int64_t lda,
               const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
              N, K, 1.0, a, lda, b, ldb, beta, c, ldc);
}

// The weights of a call packed for AMX when this call runs on bf16 tiles (float32, kernel > 1x1,
// kernels::amx_bf16_active()); empty otherwise, and every GEMM stays in BLAS.
template <class T>
std::optional<AmxPackedA> amx_weights(const Geo3& g, bool ta, int64_t M, int64_t K, const T* w,
                                      int64_t ldw) {
  if constexpr (!std::is_same_v<T, float>) {
    return std::nullopt;
  } else {
    if (g.pointwise() || !amx_bf16_active()) return std::nullopt;
    AmxPackedA p;
    amx_pack_a(ta, M, K, w, ldw, p);
    return p;
  }
}

// blas_gemm, or the AMX product with the call's packed weights as A.
template <class T>
void gemm_w(const std::optional<AmxPackedA>& pw, bool ta, int64_t M, int64_t N, int64_t K,
            const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    if (pw) return amx_gemm(*pw, false, N, b, ldb, beta, c, ldc);
  }
  blas_gemm(ta, false, M, N, K, a, lda, b, ldb, beta, c, ldc);
}

// Threads a loop of `work` flops may use (1 inside another parallel region or when tiny).
int threads_for(int64_t work) {
  if (omp_in_parallel() || work < kParallelMin) return 1;
  return omp_get_max_threads();
}

template <class T>
void add_bias_rows(T* y, int64_t ld, const T* bias, int64_t rows, int64_t len) {
  for (int64_t r = 0; r < rows; ++r) {
    const T b = bias[r];
    T* row = y + r * ld;
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) row[i] += b;
  }
}

template <class T>
void fill_bias_rows(T* y, const T* bias, int64_t rows, int64_t len) {
  for (int64_t r = 0; r < rows; ++r)
    std::fill(y + r * len, y + (r + 1) * len, bias ? bias[r] : T(0));
}

// The AMX path's im2col by offsets: x zero-padded by p on every side and rounded to bf16 once
// (each element is read k_size() times by the packers), so that column-matrix entry (r, j) of
// sample n is data[n * sample + row[r] + col(j)] with no bounds to test; row[r] picks the
// channel and kernel tap, col(j) the output position. Each padded row is written once: zeros
// outside x, x's row rounded inside.
struct PaddedInput {
  Tensor buf;
  const uint16_t* data = nullptr;
  int64_t dims[3] = {1, 1, 1}, sample = 0;
  std::vector<int64_t> row;  // [g.rows()]

  PaddedInput(const float* x, const Geo3& g) {
    for (int i = 0; i < 3; ++i) dims[i] = g.in[i] + 2 * g.p[i];
    const int64_t plane = dims[0] * dims[1] * dims[2];
    sample = g.c * plane;
    // bf16 in float32 storage (the host cache's blocks); one spare element for the gathers
    const int64_t elems = g.n * g.c * plane + 1;
    buf = Tensor::empty({(elems + 1) / 2}, DType::Float32);
    uint16_t* out = reinterpret_cast<uint16_t*>(buf.data<float>());
    out[elems - 1] = 0;
    const int64_t in_sz = g.in_size();
#pragma omp parallel for schedule(static) if (g.n * g.c * plane >= kParallelMin)
    for (int64_t nc = 0; nc < g.n * g.c; ++nc) {
      const float* xc = x + nc * in_sz;
      for (int64_t a = 0; a < dims[0]; ++a)
        for (int64_t b = 0; b < dims[1]; ++b) {
          uint16_t* o = out + nc * plane + (a * dims[1] + b) * dims[2];
          const int64_t ia = a - g.p[0], ib = b - g.p[1];
          if (ia < 0 || ia >= g.in[0] || ib < 0 || ib >= g.in[1]) {
            std::fill(o, o + dims[2], uint16_t(0));
            continue;
          }
          std::fill(o, o + g.p[2], uint16_t(0));
          amx_round_bf16(xc + (ia * g.in[1] + ib) * g.in[2], o + g.p[2], g.in[2]);
          std::fill(o + g.p[2] + g.in[2], o + dims[2], uint16_t(0));
        }
    }
    data = out;
    const int64_t K = g.k_size();
    row.resize(static_cast<size_t>(g.rows()));
    for (int64_t r = 0; r < g.rows(); ++r) {
      const int64_t kk = r % K;
      const int64_t kd = kk / (g.k[1] * g.k[2]), kh = (kk / g.k[2]) % g.k[1], kw = kk % g.k[2];
      row[r] = (r / K) * plane + (kd * g.d[0] * dims[1] + kh * g.d[1]) * dims[2] + kw * g.d[2];
    }
  }
  // col(j) for j in [j0, j1), strictly increasing.
  void columns(const Geo3& g, int64_t j0, int64_t j1, std::vector<int64_t>& col) const {
    col.resize(static_cast<size_t>(j1 - j0));
    const int64_t ow_n = g.out[2], oh_n = g.out[1];
    int64_t od = (j0 / ow_n) / oh_n, oh = (j0 / ow_n) % oh_n, ow = j0 % ow_n;
    for (int64_t j = j0; j < j1; ++j) {
      col[j - j0] = (od * g.s[0] * dims[1] + oh * g.s[1]) * dims[2] + ow * g.s[2];
      if (++ow == ow_n) {
        ow = 0;
        if (++oh == oh_n) {
          oh = 0;
          ++od;
        }
      }
    }
  }
};

template <class T>
void conv_impl(const T* x, const T* w, const T* bias, T* y, const Geo3& g) {
  const int64_t S = g.out_size(), R = g.rows(), in_sz = g.in_size();
  const bool pointwise = g.pointwise();
  const Blocks blk(g, sizeof(T));
  const int64_t items = g.n * blk.count;
  const int threads = threads_for(g.n * g.o * S * R);
  const auto pw = amx_weights(g, false, g.o, R, w, R);
  Tensor cols = pointwise || pw ? Tensor()
                                : Tensor::empty({threads, R, blk.width}, dtype_of<T>::value);
  std::optional<PaddedInput> xp;
  if constexpr (std::is_same_v<T, float>)
    if (pw) xp.emplace(x, g);
  SerialBlasScope serial;  // every GEMM of this conv on its caller's thread
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t it = 0; it < items; ++it) {
    int64_t n, j0, j1;
    blk.item(it, n, j0, j1);
    const T* xn = x + n * g.c * in_sz;
    T* yb = y + n * g.o * S + j0;  // y_n[:, j0:j1], row stride S
    if (pointwise) {
      blas_gemm(false, false, g.o, j1 - j0, R, w, R, xn + j0, S, T(0), yb, S);
    } else {
      if constexpr (std::is_same_v<T, float>) {
        if (pw) {  // im2col straight into the tiles, by offsets into the padded input
          thread_local AmxPackedB pb;
          thread_local std::vector<int64_t> coff;
          pb.reset(R, j1 - j0);
          xp->columns(g, j0, j1, coff);
          amx_pack_b_offsets(pb, xp->data + n * xp->sample, xp->row.data(), coff.data());
          amx_gemm(*pw, pb, 0.0f, yb, S);
          if (bias) add_bias_rows(yb, S, bias, g.o, j1 - j0);
          continue;
        }
      }
      T* col = cols.data<T>() + omp_get_thread_num() * R * blk.width;
      im2col_block(xn, col, j1 - j0, g, j0, j1);
      blas_gemm(false, false, g.o, j1 - j0, R, w, R, col, j1 - j0, T(0), yb, S);
    }
    if (bias) add_bias_rows(yb, S, bias, g.o, j1 - j0);
  }
}

// A stride-1, undilated convolution's transpose is itself a convolution: of y with the kernel
// flipped in space and its channel axes swapped, padded by k - 1 - p. On AMX that form runs the
// fused im2col-into-tiles product and writes x once, where the scatter form writes a column
// matrix k_size() times larger than x and adds it back (col2im). Its sums run in another order
// than the scatter's, so only the AMX path (already off float32's bits) takes it.
// x's channels are that product's rows: below one tile's 16 the tile would be mostly padding.
bool transpose_as_conv(const Geo3& g) {
  for (int i = 0; i < 3; ++i)
    if (g.s[i] != 1 || g.d[i] != 1 || g.p[i] > g.k[i] - 1) return false;
  return !g.pointwise() && g.c >= 16;
}

template <class T>
void conv_transpose_impl(const T* y, const T* w, const T* bias, T* x, const Geo3& g) {
  if constexpr (std::is_same_v<T, float>) {
    if (transpose_as_conv(g) && amx_bf16_active()) {
      Geo3 h = g;  // the convolution y -> x
      h.c = g.o;
      h.o = g.c;
      for (int i = 0; i < 3; ++i) {
        h.in[i] = g.out[i];
        h.out[i] = g.in[i];
        h.p[i] = g.k[i] - 1 - g.p[i];
      }
      const int64_t K = g.k_size();
      std::vector<float> wf(static_cast<size_t>(g.c * g.o * K));  // [c][o][K - 1 - kk]
      for (int64_t o = 0; o < g.o; ++o)
        for (int64_t c = 0; c < g.c; ++c)
          for (int64_t kk = 0; kk < K; ++kk)
            wf[(c * g.o + o) * K + (K - 1 - kk)] = w[(o * g.c + c) * K + kk];
      conv_impl<float>(y, wf.data(), bias, x, h);
      return;
    }
  }
  const int64_t S = g.out_size(), R = g.rows(), in_sz = g.in_size();
  const Blocks blk(g, sizeof(T));
  const int threads = threads_for(g.n * g.o * S * R);
  SerialBlasScope serial;  // every GEMM of this conv on its caller's thread
  if (g.pointwise()) {  // x_n[:, block] = W^T y_n[:, block] (+ bias), no scatter
    const int64_t items = g.n * blk.count;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t it = 0; it < items; ++it) {
      int64_t n, j0, j1;
      blk.item(it, n, j0, j1);
      T* xb = x + n * g.c * in_sz + j0;
      blas_gemm(true, false, R, j1 - j0, g.o, w, R, y + n * g.o * S + j0, S, T(0), xb, S);
      if (bias) add_bias_rows(xb, S, bias, g.c, j1 - j0);
    }
    return;
  }
  const auto pw = amx_weights(g, true, R, g.o, w, R);  // A = W^T
  // Whole rounds of `threads` samples: one sample per thread, block by block (GEMM into a small
  // buffer, then scatter). The rest: all threads on one group, GEMM blocks in parallel into full
  // columns, then the scatter split by channel. Both add the same terms in the same order.
  const int64_t rounds = threads > 1 ? g.n / threads * threads : g.n;
  if (rounds > 0) {
    Tensor cols = Tensor::empty({threads, R, blk.width}, dtype_of<T>::value);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t n = 0; n < rounds; ++n) {
      T* col = cols.data<T>() + omp_get_thread_num() * R * blk.width;
      T* xn = x + n * g.c * in_sz;
      fill_bias_rows(xn, bias, g.c, in_sz);
      for (int64_t b = 0; b < blk.count; ++b) {
        const int64_t j0 = blk.begin(b), j1 = blk.end(b);
        gemm_w(pw, true, R, j1 - j0, g.o, w, R, y + n * g.o * S + j0, S, T(0), col, j1 - j0);
        col2im_block(col, j1 - j0, xn, g, j0, j1, 0, g.c);
      }
    }
  }
  const int64_t rest = g.n - rounds;
  if (rest == 0) return;
  Tensor cols = Tensor::empty({rest, R, S}, dtype_of<T>::value);
  T* pc = cols.data<T>();
#pragma omp parallel num_threads(threads)
  {
#pragma omp for schedule(static)
    for (int64_t it = 0; it < rest * blk.count; ++it) {
      int64_t i, j0, j1;
      blk.item(it, i, j0, j1);
      gemm_w(pw, true, R, j1 - j0, g.o, w, R, y + (rounds + i) * g.o * S + j0, S, T(0),
             pc + i * R * S + j0, S);
    }
#pragma omp for schedule(static)
    for (int64_t it = 0; it < rest * g.c; ++it) {
      const int64_t i = it / g.c, c = it % g.c;
      T* xn = x + (rounds + i) * g.c * in_sz;
      fill_bias_rows(xn + c * in_sz, bias ? bias + c : nullptr, 1, in_sz);
      for (int64_t b = 0; b < blk.count; ++b)
        col2im_block(pc + i * R * S + blk.begin(b), S, xn, g, blk.begin(b), blk.end(b), c, c + 1);
    }
  }
}

template <class T>
void conv_weight_grad_impl(const T* y, const T* x, T* dw, const Geo3& g) {
  const int64_t S = g.out_size(), R = g.rows(), in_sz = g.in_size(), W = g.o * R;
  const bool pointwise = g.pointwise();
  const Blocks blk(g, sizeof(T));
  const int64_t items = g.n * blk.count;
  // Items (sample, block) are cut into `parts` consecutive runs fixed by the shapes; each run is
  // summed in order into its own partial, and the partials are added in order at the end.
  const int64_t parts = std::clamp<int64_t>(kPartialElems / std::max<int64_t>(W, 1), 1,
                                            std::min(items, kMaxPartials));
  const int threads =
      static_cast<int>(std::min<int64_t>(threads_for(items * W * blk.width), parts));
  const bool amx = std::is_same_v<T, float> && !pointwise && amx_bf16_active();
  Tensor cols = pointwise || amx ? Tensor()
                                 : Tensor::empty({threads, R, blk.width}, dtype_of<T>::value);
  Tensor partials = parts > 1 ? Tensor::empty({parts, W}, dtype_of<T>::value) : Tensor();
  T* part = parts > 1 ? partials.data<T>() : dw;
  std::optional<PaddedInput> xp;
  if constexpr (std::is_same_v<T, float>)
    if (amx) xp.emplace(x, g);
  SerialBlasScope serial;  // every GEMM of this conv on its caller's thread
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t pi = 0; pi < parts; ++pi) {
    T* col = cols.defined() ? cols.data<T>() + omp_get_thread_num() * R * blk.width : nullptr;
    for (int64_t it = items * pi / parts; it < items * (pi + 1) / parts; ++it) {
      int64_t n, j0, j1;
      blk.item(it, n, j0, j1);
      const T* xn = x + n * g.c * in_sz;
      const bool first = it == items * pi / parts;
      if constexpr (std::is_same_v<T, float>) {
        if (amx) {  // A = dy block; B = col^T, im2col by offsets straight into its tiles
          thread_local AmxPackedA pa;
          thread_local AmxPackedB pb;
          thread_local std::vector<int64_t> coff;
          amx_pack_a(false, g.o, j1 - j0, y + n * g.o * S + j0, S, pa);
          pb.reset(j1 - j0, R);
          xp->columns(g, j0, j1, coff);
          amx_pack_bt_offsets(pb, xp->data + n * xp->sample, xp->row.data(), coff.data());
          amx_gemm(pa, pb, first ? 0.0f : 1.0f, part + pi * W, R);
          continue;
        }
      }
      const T* b = xn + j0;
      int64_t ldb = S;
      if (!pointwise) {
        im2col_block(xn, col, j1 - j0, g, j0, j1);
        b = col;
        ldb = j1 - j0;
      }
      blas_gemm(false, true, g.o, R, j1 - j0, y + n * g.o * S + j0, S, b, ldb,
                first ? T(0) : T(1), part + pi * W, R);
    }
  }
  if (parts == 1) return;
#pragma omp parallel for schedule(static) if (parts * W >= kParallelMin)
  for (int64_t i = 0; i < W; ++i) {
    typename acc<T>::type s = part[i];
    for (int64_t pi = 1; pi < parts; ++pi) s += part[pi * W + i];
    dw[i] = static_cast<T>(s);
  }
}

bool empty_shape(const Shape& s) { return shape_numel(s) == 0; }

}  // namespace

Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias, const Shape& y_shape,
            const ConvGeometry& g, MemoryFormat fmt) {
  if (fmt == MemoryFormat::ChannelsLast)  // these kernels work in NCHW
    return conv(x.contiguous(), w.contiguous(), bias, y_shape, g, MemoryFormat::Contiguous)
        .contiguous(fmt);
  Tensor y = Tensor::empty(y_shape, x.dtype());
  if (empty_shape(y_shape)) return y;
  Geo3 geo = make_geo(x.shape(), w.shape(), y_shape, g);
  dispatch_float(x.dtype(), "conv", [&](auto z) {
    using T = decltype(z);
    const T* pb = bias.defined() ? bias.data<T>() : nullptr;
    if (geo.rows() == 0) {  // no input channels: the output is the bias alone
      for (int64_t n = 0; n < geo.n; ++n)
        fill_bias_rows(y.data<T>() + n * geo.o * geo.out_size(), pb, geo.o, geo.out_size());
      return;
    }
    conv_impl<T>(x.data<T>(), w.data<T>(), pb, y.data<T>(), geo);
  });
  return y;
}

Tensor conv_transpose(const Tensor& y, const Tensor& w, const Tensor& bias, const Shape& x_shape,
                      const ConvGeometry& g, MemoryFormat fmt) {
  if (fmt == MemoryFormat::ChannelsLast)
    return conv_transpose(y.contiguous(), w.contiguous(), bias, x_shape, g,
                          MemoryFormat::Contiguous)
        .contiguous(fmt);
  Tensor x = Tensor::empty(x_shape, y.dtype());
  if (empty_shape(x_shape)) return x;
  Geo3 geo = make_geo(x_shape, w.shape(), y.shape(), g);
  dispatch_float(y.dtype(), "conv_transpose", [&](auto z) {
    using T = decltype(z);
    const T* pb = bias.defined() ? bias.data<T>() : nullptr;
    if (geo.o == 0) {  // nothing to scatter: the output is the bias alone
      for (int64_t n = 0; n < geo.n; ++n)
        fill_bias_rows(x.data<T>() + n * geo.c * geo.in_size(), pb, geo.c, geo.in_size());
      return;
    }
    conv_transpose_impl<T>(y.data<T>(), w.data<T>(), pb, x.data<T>(), geo);
  });
  return x;
}

Tensor conv_weight_grad(const Tensor& y, const Tensor& x, const Shape& w_shape,
                        const ConvGeometry& g, MemoryFormat fmt) {
  if (fmt == MemoryFormat::ChannelsLast)
    return conv_weight_grad(y.contiguous(), x.contiguous(), w_shape, g, MemoryFormat::Contiguous)
        .contiguous(fmt);
  Tensor dw = Tensor::empty(w_shape, y.dtype());
  if (empty_shape(w_shape)) return dw;
  Geo3 geo = make_geo(x.shape(), w_shape, y.shape(), g);
  dispatch_float(y.dtype(), "conv_weight_grad", [&](auto z) {
    using T = decltype(z);
    if (geo.n == 0) {
      std::fill(dw.data<T>(), dw.data<T>() + dw.numel(), T(0));
      return;
    }
    conv_weight_grad_impl<T>(y.data<T>(), x.data<T>(), dw.data<T>(), geo);
  });
  return dw;
}

Tensor conv_bias_grad(const Tensor& y) {
  const int64_t N = y.size(0), C = y.size(1);
  const int64_t S = N * C > 0 ? y.numel() / (N * C) : 0;
  Tensor out = Tensor::empty({C}, y.dtype());
  dispatch_float(y.dtype(), "conv_bias_grad", [&](auto z) {
    using T = decltype(z);
    using A = typename acc<T>::type;
    const T* py = y.data<T>();
    T* po = out.data<T>();
    // One thread per channel, samples in order: the sum does not depend on the thread count.
#pragma omp parallel for schedule(static) if (y.numel() >= kParallelMin && C > 1)
    for (int64_t c = 0; c < C; ++c) {
      A total = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* row = py + (n * C + c) * S;
        A part = 0;
#pragma omp simd reduction(+ : part)
        for (int64_t i = 0; i < S; ++i) part += static_cast<A>(row[i]);
        total += part;
      }
      po[c] = static_cast<T>(total);
    }
  });
  return out;
}

}  // namespace dfx::kernels::cpu
