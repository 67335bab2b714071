// kernels/cuda/conv.cu — convolutions on the GPU as implicit GEMM: no column matrix is
// materialised; the GEMM's operand tiles are gathered straight from NC(D)HW or channels-last
// tensors (each read and written in its own layout) into shared memory (64 x 16 tiles of A and
// B, 256 threads, a 4 x 4 register block per thread, FP32 or FP64 FMA; with
// kernels::allow_tf32(), float32 tiles are multiplied on TF32 tensor cores by WMMA).
// The three products, batch folded into the GEMM's N or K dim:
//   conv            Y[o, (n, j)]  = sum_r     W[o, r]          col_n[r, j]      (+ bias[o])
//   conv_transpose  X[c, (n, i)]  = sum_(o,k) W[o, c, k]       Y[n, o, j(i, k)] (+ bias[c])
//   weight grad     dW[o, r]      = sum_(n,j) Y[n, o, j]       col_n[r, j]
// where r = (c, k) (taps outside in channels-last), col_n[r, j] = x[n, c, j*s - p + k*d] (0 in
// the padding), and j(i, k) is the output position that reads input i through tap k (0 when none
// does, so the transpose is a gather: no atomics). The weight gradient's long reduction is split
// into a number of K chunks that depends only on the shapes; each chunk writes its own partial,
// and a second kernel adds the partials in chunk order (accumulating float32 in float64), so
// results are deterministic.
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/conv_config.h"
#include "kernels/cuda/conv.cuh"
#include "kernels/cuda/norm.cuh"

namespace dfx::kernels::cuda {
namespace {

// The geometry with 1-3 spatial dims padded to 3 by leading size-1 dims (as kernels/cpu/conv.cpp).
struct Geo3 {
  int64_t n = 0, c = 0, o = 0;  // batch, channels of x (conv's input), channels of y
  int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t s[3] = {1, 1, 1}, p[3] = {0, 0, 0}, d[3] = {1, 1, 1};
  __host__ __device__ int64_t in_size() const { return in[0] * in[1] * in[2]; }
  __host__ __device__ int64_t k_size() const { return k[0] * k[1] * k[2]; }
  __host__ __device__ int64_t out_size() const { return out[0] * out[1] * out[2]; }
  __host__ __device__ int64_t rows() const { return c * k_size(); }
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

// ---- the three operand/epilogue sets ----
// Each GEMM index is decoded once per tile into a small record held in shared memory: MI for a
// row of the output tile, NI for a column, KI for a reduction index. The per-element operand
// loads then need only adds, compares and the stride divisibility test, no 64-bit divisions.
//
// Every set serves both memory formats (template flag CL). Element (n, c, s) of a dense
// [N, C, S] tensor is at (n C + c) S + s in NCHW and at (n S + s) C + c in channels-last, where
// the weight [O, C, K] is stored as [O, K, C]. In channels-last the reductions over (channel,
// tap) run taps outside and channels inside, r = k C + c, so consecutive r are adjacent in memory
// in the input and in the weight. Each set names the index along which each operand tile and
// the output are adjacent in memory (kAKFast / kBKFast: the reduction index, else the tile's row
// or column; kStoreMFast: output rows, else columns), and the kernels give that index to
// consecutive threads, so loads and stores coalesce in both formats.

// Splits flat tap kk into its offsets times dilation, per padded spatial dim.
__device__ __forceinline__ void tap_offsets(const Geo3& g, int64_t kk, int64_t (&e)[3]) {
  e[0] = (kk / (g.k[1] * g.k[2])) * g.d[0];
  e[1] = ((kk / g.k[2]) % g.k[1]) * g.d[1];
  e[2] = (kk % g.k[2]) * g.d[2];
}
// Splits flat position j of a grid of sizes `n` into coordinates.
__device__ __forceinline__ void coords3(const int64_t (&n)[3], int64_t j, int64_t (&q)[3]) {
  q[0] = j / (n[1] * n[2]);
  q[1] = (j / n[2]) % n[1];
  q[2] = j % n[2];
}

// &x[base + sstride * (id, ih, iw)] with (id, ih, iw) = origin + tap, null in the padding;
// sstride is the distance of adjacent positions (1 in NCHW, C in channels-last).
template <class T>
__device__ __forceinline__ const T* x_ptr(const T* __restrict__ x, const Geo3& g, int64_t base,
                                          int64_t sstride, const int64_t (&origin)[3],
                                          const int64_t (&tap)[3]) {
  const int64_t id = origin[0] + tap[0], ih = origin[1] + tap[1], iw = origin[2] + tap[2];
  if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1] || iw < 0 || iw >= g.in[2])
    return nullptr;
  return x + base + ((id * g.in[1] + ih) * g.in[2] + iw) * sstride;
}

// An output position j of sample nb as a receptive-field origin (stride applied, padding
// subtracted) and the offset of x_nb.
struct FieldOrigin {
  int64_t xbase;      // nb * C * in_size (either format)
  int64_t origin[3];  // o * s - p per dim
};
__device__ __forceinline__ FieldOrigin field_origin(const Geo3& g, int64_t nb, int64_t j) {
  FieldOrigin f;
  int64_t q[3];
  coords3(g.out, j, q);
  f.xbase = nb * g.c * g.in_size();
  for (int a = 0; a < 3; ++a) f.origin[a] = q[a] * g.s[a] - g.p[a];
  return f;
}
// A row r of the column matrix, (c, k) = (r / K, r % K) in NCHW and (r % C, r / C) in
// channels-last: channel offset in x and tap offsets.
struct FieldTap {
  int64_t r;
  int64_t coff;    // c * in_size in NCHW, c in channels-last
  int64_t tap[3];  // k * d per dim
};
template <bool CL>
__device__ __forceinline__ FieldTap field_tap(const Geo3& g, int64_t r) {
  FieldTap t;
  const int64_t K = g.k_size();
  const int64_t c = CL ? r % g.c : r / K, kk = CL ? r / g.c : r % K;
  t.r = r;
  t.coff = CL ? c : c * g.in_size();
  tap_offsets(g, kk, t.tap);
  return t;
}

template <class T, bool CL>
struct FwdOps {  // Y[o, (n, j)] = sum_r W[o, r] col_n[r, j]
  static constexpr bool kAKFast = true, kBKFast = CL, kStoreMFast = CL;
  static constexpr bool kVec = CL && std::is_same_v<T, float>;
  const T* x;
  const T* w;
  const T* bias;
  T* y;
  Geo3 g;
  bool vec4 = false;  // 16-byte gathers (vec4_ok)
  using MI = int64_t;  // o
  using NI = FieldOrigin;
  using KI = FieldTap;
  __device__ MI mi(int64_t o) const { return o; }
  __device__ NI ni(int64_t col) const {
    const int64_t S = g.out_size();
    return field_origin(g, col / S, col % S);
  }
  __device__ KI ki(int64_t r) const { return field_tap<CL>(g, r); }
  // The weight's rows are r-ordered in either format.
  __device__ const T* a(const MI& o, const KI& k) const { return w + o * g.rows() + k.r; }
  __device__ const T* b(const KI& k, const NI& n) const {
    return x_ptr(x, g, n.xbase + k.coff, CL ? g.c : 1, n.origin, k.tap);
  }
  __device__ void store(int64_t o, int64_t col, T v, int64_t) const {
    const int64_t S = g.out_size();
    y[CL ? col * g.o + o : ((col / S) * g.o + o) * S + col % S] = bias ? v + bias[o] : v;
  }
};

// conv_transpose: X[c, (n, i)] = sum_(o,k) W[o, c, k] Y[n, o, j], j * s = i + p - k * d; the
// reduction index is q = o K + k in NCHW and k O + o in channels-last.
struct TransCol {
  int64_t ybase;  // nb * O * S
  int64_t t[3];   // i + p per dim
};
struct TransTap {
  int64_t woff;  // w's offset of (o, 0, k)
  int64_t yoff;  // y's offset of channel o
  int64_t e[3];  // k * d per dim
};

template <class T, bool CL>
struct BwdDataOps {
  static constexpr bool kAKFast = !CL, kBKFast = CL, kStoreMFast = CL;
  static constexpr bool kVec = CL && std::is_same_v<T, float>;
  const T* y;
  const T* w;
  const T* bias;
  T* x;
  Geo3 g;
  bool vec4 = false;
  using MI = int64_t;  // c
  using NI = TransCol;
  using KI = TransTap;
  __device__ MI mi(int64_t c) const { return c; }
  __device__ NI ni(int64_t col) const {
    const int64_t I = g.in_size();
    NI n;
    int64_t q[3];
    coords3(g.in, col % I, q);
    n.ybase = (col / I) * g.o * g.out_size();
    for (int a = 0; a < 3; ++a) n.t[a] = q[a] + g.p[a];
    return n;
  }
  __device__ KI ki(int64_t q) const {
    const int64_t K = g.k_size();
    const int64_t o = CL ? q % g.o : q / K, kk = CL ? q / g.o : q % K;
    KI k;
    k.woff = CL ? (o * K + kk) * g.c : o * g.c * K + kk;
    k.yoff = CL ? o : o * g.out_size();
    tap_offsets(g, kk, k.e);
    return k;
  }
  __device__ const T* a(const MI& c, const KI& k) const {
    return w + k.woff + (CL ? c : c * g.k_size());
  }
  __device__ const T* b(const KI& k, const NI& n) const {
    int64_t j = 0;
#pragma unroll
    for (int a = 0; a < 3; ++a) {
      const int64_t t = n.t[a] - k.e[a];
      if (t < 0) return nullptr;
      const int64_t oj = t / g.s[a];
      if (oj * g.s[a] != t || oj >= g.out[a]) return nullptr;
      j = j * g.out[a] + oj;
    }
    return y + n.ybase + k.yoff + (CL ? j * g.o : j);
  }
  __device__ void store(int64_t c, int64_t col, T v, int64_t) const {
    const int64_t I = g.in_size();
    x[CL ? col * g.c + c : ((col / I) * g.c + c) * I + col % I] = bias ? v + bias[c] : v;
  }
};

// Weight gradient: dW[o, r] = sum_(n,j) Y[n, o, j] col_n[r, j]; the reduction index is (n, j),
// and dW's rows come out r-ordered, i.e. in the weight's own format.
struct WgradK {
  int64_t yidx;  // y's offset of (nb, 0, j)
  FieldOrigin f;
};

template <class T, bool CL>
struct WgradOps {
  static constexpr bool kAKFast = !CL, kBKFast = !CL, kStoreMFast = false;
  static constexpr bool kVec = CL && std::is_same_v<T, float>;
  const T* y;
  const T* x;
  T* part;  // [splits, O, R]
  Geo3 g;
  bool vec4 = false;
  using MI = int64_t;  // o
  using NI = FieldTap;
  using KI = WgradK;
  __device__ MI mi(int64_t o) const { return o; }
  __device__ NI ni(int64_t r) const { return field_tap<CL>(g, r); }
  __device__ KI ki(int64_t q) const {
    const int64_t S = g.out_size(), nb = q / S, j = q % S;
    return KI{CL ? (nb * S + j) * g.o : nb * g.o * S + j, field_origin(g, nb, j)};
  }
  __device__ const T* a(const MI& o, const KI& k) const {
    return y + k.yidx + (CL ? o : o * g.out_size());
  }
  __device__ const T* b(const KI& k, const NI& n) const {
    return x_ptr(x, g, k.f.xbase + n.coff, CL ? g.c : 1, k.f.origin, n.tap);
  }
  __device__ void store(int64_t o, int64_t r, T v, int64_t split) const {
    part[(split * g.o + o) * g.rows() + r] = v;
  }
};

constexpr int kBM = 64, kBN = 64, kBK = 16, kGemmThreads = 256;
// Row pitch of the shared tiles: 4 floats of padding keep the reduction-index-fast gathers at
// 2-way bank conflicts (not 16-way) and keep WMMA's 16-byte ldm and 32-byte pointer alignment.
constexpr int kPitch = 68;
static_assert(kBM == kBN, "the TF32 epilogue stages the tile in one square array");

// The two GEMM kernels below share their tile logistics: the block's output rows and columns
// are decoded once, then every k-slice of 16 gathers A (kBM x kBK) and B (kBK x kBN) into shared
// memory, zeros outside M, N and the block's k chunk.
template <class Ops>
__device__ __forceinline__ void decode_tile(const Ops& ops, typename Ops::MI* mis,
                                            typename Ops::NI* nis, int64_t m0, int64_t n0,
                                            int64_t M, int64_t N) {
  const int tid = threadIdx.x;
  // Entries past M or N are never read.
  if (tid < kBM && m0 + tid < M) mis[tid] = ops.mi(m0 + tid);
  if (tid >= kBM && tid < kBM + kBN && n0 + tid - kBM < N) nis[tid - kBM] = ops.ni(n0 + tid - kBM);
}

// Element e of a kBK x `width` tile as (reduction index kk, row or column xx): consecutive e
// walk kk when KFast, else xx.
template <bool KFast, int width>
__device__ __forceinline__ void tile_pos(int e, int& kk, int& xx) {
  kk = KFast ? e % kBK : e / width;
  xx = KFast ? e / kBK : e % width;
}

// A 16-byte load. Under the host emulation (tools/cuda_emu) it also checks the alignment that a
// GPU requires and the emulation would otherwise not notice.
__device__ __forceinline__ float4 load16(const float* p) {
#ifdef DFX_CUDA_EMULATION
  emu::check_aligned(p, 16, "conv.cu load16");
#endif
  return *reinterpret_cast<const float4*>(p);
}

// One kBK x `width` operand tile into shared memory (T (&S)[kBK][kPitch], S[kk][xx]).
// `at(kk, xx)` is the element's address, null for a zero (the padding); `in(kk, xx)` says whether
// (kk, xx) lies inside the GEMM and the block's k chunk.
// Scalar: consecutive threads walk the index adjacent in memory (KFast: kk, else xx).
// Vec (float32 channels-last, when the host found it safe): each thread moves 4 elements adjacent
// along that index with one 16-byte load: the 4 share their zero test (the same position and tap,
// 4 channels), lie in one aligned 16-byte block and are all inside or all outside the GEMM.
template <bool KFast, int width, bool Vec, class T, class At, class In>
__device__ __forceinline__ void gather_tile(T (&S)[kBK][kPitch], At&& at, In&& in) {
  const int tid = threadIdx.x;
  if constexpr (Vec) {
    static_assert(kBK * width == 4 * kGemmThreads, "one 16-byte group per thread");
    const int kk = KFast ? (tid % (kBK / 4)) * 4 : tid / (width / 4);
    const int xx = KFast ? tid / (kBK / 4) : (tid % (width / 4)) * 4;
    const T* p = in(kk, xx) ? at(kk, xx) : nullptr;
    const float4 v = p ? load16(p) : make_float4(0.f, 0.f, 0.f, 0.f);
    const float e[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if (KFast)
        S[kk + i][xx] = e[i];
      else
        S[kk][xx + i] = e[i];
    }
  } else {
#pragma unroll
    for (int l = 0; l < (width * kBK) / kGemmThreads; ++l) {
      int kk, xx;
      tile_pos<KFast, width>(tid + l * kGemmThreads, kk, xx);
      const T* p = in(kk, xx) ? at(kk, xx) : nullptr;
      S[kk][xx] = p ? *p : T(0);
    }
  }
}

// Decodes slice k0's reduction indices, then gathers its A and B tiles; ends with a barrier.
template <class T, class Ops>
__device__ __forceinline__ void gather_tiles(const Ops& ops, T (&As)[kBK][kPitch],
                                             T (&Bs)[kBK][kPitch], const typename Ops::MI* mis,
                                             const typename Ops::NI* nis, typename Ops::KI* kis,
                                             int64_t m0, int64_t n0, int64_t k0, int64_t M,
                                             int64_t N, int64_t kend) {
  const int tid = threadIdx.x;
  if (tid < kBK && k0 + tid < kend) kis[tid] = ops.ki(k0 + tid);
  __syncthreads();  // kis (and, the first time, mis and nis) are ready
  auto a_at = [&](int kk, int mm) { return ops.a(mis[mm], kis[kk]); };
  auto a_in = [&](int kk, int mm) { return m0 + mm < M && k0 + kk < kend; };
  auto b_at = [&](int kk, int nn) { return ops.b(kis[kk], nis[nn]); };
  auto b_in = [&](int kk, int nn) { return n0 + nn < N && k0 + kk < kend; };
  bool vec = false;
  if constexpr (Ops::kVec) vec = ops.vec4;
  if (vec) {
    gather_tile<Ops::kAKFast, kBM, Ops::kVec>(As, a_at, a_in);
    gather_tile<Ops::kBKFast, kBN, Ops::kVec>(Bs, b_at, b_in);
  } else {
    gather_tile<Ops::kAKFast, kBM, false>(As, a_at, a_in);
    gather_tile<Ops::kBKFast, kBN, false>(Bs, b_at, b_in);
  }
  __syncthreads();
}

// The epilogue both GEMM kernels share: thread (rm, cn) stores C at rows rm + 16 i and columns
// cn + 16 j of the block's tile (i, j < 4), inside M and N; c(i, j) is that element's value.
template <class Ops, class C>
__device__ __forceinline__ void store_tile(const Ops& ops, int64_t m0, int64_t n0, int64_t M,
                                           int64_t N, int rm, int cn, C&& c) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + rm + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + cn + 16 * j;
      if (n < N) ops.store(m, n, c(i, j), blockIdx.z);
    }
  }
}

// C[m, n] = sum_k A(m, k) B(k, n) over k in this block's chunk [z * kchunk, ...) of [0, K).
// Thread (ty, tx) of a 16 x 16 grid owns rows rm + 16 i and columns cn + 16 j (i, j < 4), with
// (rm, cn) = (tx, ty) when the output is adjacent along rows, else (ty, tx); shared-memory reads
// are broadcasts or consecutive either way. The k loop runs in a fixed order.
template <class T, class Ops>
__global__ void __launch_bounds__(kGemmThreads)
    igemm_kernel(int64_t M, int64_t N, int64_t K, int64_t kchunk, Ops ops) {
  __shared__ __align__(16) T As[kBK][kPitch];
  __shared__ __align__(16) T Bs[kBK][kPitch];
  __shared__ typename Ops::MI mis[kBM];
  __shared__ typename Ops::NI nis[kBN];
  __shared__ typename Ops::KI kis[kBK];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int rm = Ops::kStoreMFast ? tx : ty, cn = Ops::kStoreMFast ? ty : tx;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kBM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kBN;
  const int64_t kbeg = static_cast<int64_t>(blockIdx.z) * kchunk;
  const int64_t kend = min(K, kbeg + kchunk);
  decode_tile(ops, mis, nis, m0, n0, M, N);
  T acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = T(0);
  for (int64_t k0 = kbeg; k0 < kend; k0 += kBK) {
    gather_tiles(ops, As, Bs, mis, nis, kis, m0, n0, k0, M, N, kend);
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      T av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = As[kk][rm + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][cn + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bv[j];
    }
    __syncthreads();  // As, Bs and kis are rewritten next
  }
  store_tile(ops, m0, n0, M, N, rm, cn, [&](int i, int j) { return acc[i][j]; });
}

// The TF32 tensor-core variant of igemm_kernel (float32 only, used when kernels::allow_tf32()):
// the same operand gathers into shared memory and the same epilogue, but the 64 x 64 tile is
// multiplied by the 8 warps with m16n16k8 TF32 WMMA (FP32 accumulation), each warp owning a
// 16 x 32 strip; the accumulators go through shared memory to the per-thread epilogue, stored
// transposed when the output is adjacent along rows so the epilogue's reads stay consecutive.
// Operands are rounded to TF32 (10-bit mantissa, nearest) as they are loaded, as cuBLAS and
// cuDNN do; the k loop still runs in a fixed order, so results are deterministic.
template <class Ops>
__global__ void __launch_bounds__(kGemmThreads)
    igemm_tf32_kernel(int64_t M, int64_t N, int64_t K, int64_t kchunk, Ops ops) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  namespace wmma = nvcuda::wmma;
  constexpr bool kMF = Ops::kStoreMFast;
  __shared__ __align__(32) float As[kBK][kPitch];
  __shared__ __align__(32) float Bs[kBK][kPitch];
  __shared__ __align__(32) float Cs[kBM][kPitch];  // C(m, n) at Cs[n][m] if kMF, else Cs[m][n]
  __shared__ typename Ops::MI mis[kBM];
  __shared__ typename Ops::NI nis[kBN];
  __shared__ typename Ops::KI kis[kBK];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int rm = kMF ? tx : ty, cn = kMF ? ty : tx;
  const int warp = tid / 32, wm = (warp / 2) * 16, wn = (warp % 2) * 32;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kBM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kBN;
  const int64_t kbeg = static_cast<int64_t>(blockIdx.z) * kchunk;
  const int64_t kend = min(K, kbeg + kchunk);
  decode_tile(ops, mis, nis, m0, n0, M, N);
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2];
  wmma::fill_fragment(acc[0], 0.0f);
  wmma::fill_fragment(acc[1], 0.0f);
  for (int64_t k0 = kbeg; k0 < kend; k0 += kBK) {
    gather_tiles(ops, As, Bs, mis, nis, kis, m0, n0, k0, M, N, kend);
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 8) {
      // A(m, k) = As[k][m]: column-major with leading dimension kPitch; B(k, n) = Bs[k][n].
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major> a;
      wmma::load_matrix_sync(a, &As[kk][wm], kPitch);
#pragma unroll
      for (int i = 0; i < a.num_elements; ++i) a.x[i] = wmma::__float_to_tf32(a.x[i]);
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b;
        wmma::load_matrix_sync(b, &Bs[kk][wn + 16 * j], kPitch);
#pragma unroll
        for (int i = 0; i < b.num_elements; ++i) b.x[i] = wmma::__float_to_tf32(b.x[i]);
        wmma::mma_sync(acc[j], a, b, acc[j]);
      }
    }
    __syncthreads();  // As, Bs and kis are rewritten next
  }
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    if (kMF)
      wmma::store_matrix_sync(&Cs[wn + 16 * j][wm], acc[j], kPitch, wmma::mem_col_major);
    else
      wmma::store_matrix_sync(&Cs[wm][wn + 16 * j], acc[j], kPitch, wmma::mem_row_major);
  }
  __syncthreads();
  store_tile(ops, m0, n0, M, N, rm, cn, [&](int i, int j) {
    return kMF ? Cs[cn + 16 * j][rm + 16 * i] : Cs[rm + 16 * i][cn + 16 * j];
  });
#else
  __trap();  // launched only on sm_80 and newer (launch_igemm checks)
#endif
}

template <class T> struct AccOf { using type = T; };
template <> struct AccOf<float> { using type = double; };

// dw[i] = sum over splits z (in order) of part[z * W + i].
template <class T>
__global__ void split_sum_kernel(const T* __restrict__ part, int64_t splits, int64_t W,
                                 T* __restrict__ dw) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < W;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    typename AccOf<T>::type s = part[i];
    for (int64_t z = 1; z < splits; ++z) s += part[z * W + i];
    dw[i] = static_cast<T>(s);
  }
}

template <class T>
__global__ void fill_bias_kernel(T* __restrict__ out, const T* __restrict__ bias, int64_t total,
                                 int64_t channels, int64_t plane, bool channels_last) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    out[i] = bias ? bias[channels_last ? i % channels : (i / plane) % channels] : T(0);
}

// TF32 WMMA needs compute capability 8.0 (Ampere) or newer.
bool tensor_cores_tf32() {
  int device = 0, major = 0;
  DFX_CUDA_CHECK(cudaGetDevice(&device));
  DFX_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return major >= 8;
}

template <class T, class Ops>
void launch_igemm(int64_t M, int64_t N, int64_t K, int64_t splits, const Ops& ops,
                  const std::string& name, const Shape& shape) {
  const int64_t gx = (N + kBN - 1) / kBN, gy = (M + kBM - 1) / kBM;
  DFX_CHECK(gx <= 0x7fffffff && gy <= 65535 && splits <= 65535, name, ": GEMM of ", M, " x ", N,
            " x ", K, " exceeds the grid limits for shape ", shape);
  const int64_t kchunk = (K + splits - 1) / splits;
  dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy), static_cast<unsigned>(splits));
  if constexpr (std::is_same_v<T, float>) {
    if (allow_tf32() && tensor_cores_tf32()) {
      igemm_tf32_kernel<Ops><<<grid, kGemmThreads, 0, launch_stream()>>>(M, N, K, kchunk, ops);
      DFX_CUDA_CHECK_LAUNCH(name + " (TF32 tensor cores)", shape);
      return;
    }
  }
  igemm_kernel<T, Ops><<<grid, kGemmThreads, 0, launch_stream()>>>(M, N, K, kchunk, ops);
  DFX_CUDA_CHECK_LAUNCH(name, shape);
}

template <class T>
void fill_bias(const Tensor& out, const Tensor& bias, int64_t channels, int64_t plane,
               MemoryFormat fmt, const std::string& name) {
  const int64_t total = out.numel();
  if (total == 0) return;
  fill_bias_kernel<T><<<grid_for(total), kThreads, 0, launch_stream()>>>(
      out.data<T>(), bias.defined() ? bias.data<T>() : nullptr, total, channels, plane,
      fmt == MemoryFormat::ChannelsLast);
  DFX_CUDA_CHECK_LAUNCH(name + " (fill_bias_kernel)", out.shape());
}

bool empty_shape(const Shape& s) { return shape_numel(s) == 0; }

// kernels/conv.cpp hands every operand dense in the one format of the call.
void check_format(const Tensor& t, MemoryFormat fmt, const char* op, const char* what) {
  DFX_CHECK(t.is_contiguous(fmt), op, ": ", what, " ", t.describe(), " is not dense in the ",
            fmt == MemoryFormat::ChannelsLast ? "channels-last" : "NCHW",
            " format of the call (kernels/conv.cpp converts operands before dispatch)");
}

// Whether the 16-byte gathers of gather_tile are safe: float32 channels-last operands whose
// channel counts are multiples of 4 (so every group of 4 adjacent elements lies in one aligned
// 16-byte block and shares its position and tap) and 16-byte aligned base pointers.
bool vec4_ok(const Tensor& a, const Tensor& b, MemoryFormat fmt,
             std::initializer_list<int64_t> channels) {
  if (fmt != MemoryFormat::ChannelsLast || a.dtype() != DType::Float32) return false;
  for (int64_t c : channels)
    if (c % 4 != 0) return false;
  return reinterpret_cast<uintptr_t>(a.raw_data()) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(b.raw_data()) % 16 == 0;
}

// Calls f(std::bool_constant<CL>{}) for the call's memory format.
template <class F>
void dispatch_format(MemoryFormat fmt, F&& f) {
  if (fmt == MemoryFormat::ChannelsLast)
    f(std::true_type{});
  else
    f(std::false_type{});
}

}  // namespace

Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias, const Shape& y_shape,
            const ConvGeometry& g, MemoryFormat fmt) {
  check_cuda_tensor(x, "conv", "input");
  check_cuda_tensor(w, "conv", "weight");
  check_format(x, fmt, "conv", "input");
  check_format(w, fmt, "conv", "weight");
  Tensor y = Tensor::empty(y_shape, x.dtype(), x.device(), fmt);
  if (empty_shape(y_shape)) return y;
  ::dfx::cuda::DeviceGuard guard(x.device().index);
  const Geo3 geo = make_geo(x.shape(), w.shape(), y_shape, g);
  dispatch_float_cuda(x, "conv", [&](auto z) {
    using T = decltype(z);
    const std::string name = ::dfx::detail::cat("conv igemm_kernel<", dtype_name(x.dtype()),
                                                "> (", g.str(), ")");
    if (geo.rows() == 0) return fill_bias<T>(y, bias, geo.o, geo.out_size(), fmt, name);
    dispatch_format(fmt, [&](auto cl) {
      FwdOps<T, decltype(cl)::value> ops{x.data<T>(), w.data<T>(),
                                         bias.defined() ? bias.data<T>() : nullptr, y.data<T>(),
                                         geo};
      ops.vec4 = vec4_ok(x, w, fmt, {geo.c});
      launch_igemm<T>(geo.o, geo.n * geo.out_size(), geo.rows(), 1, ops, name, x.shape());
    });
  });
  return y;
}

Tensor conv_transpose(const Tensor& y, const Tensor& w, const Tensor& bias, const Shape& x_shape,
                      const ConvGeometry& g, MemoryFormat fmt) {
  check_cuda_tensor(y, "conv_transpose", "input");
  check_cuda_tensor(w, "conv_transpose", "weight");
  check_format(y, fmt, "conv_transpose", "input");
  check_format(w, fmt, "conv_transpose", "weight");
  Tensor x = Tensor::empty(x_shape, y.dtype(), y.device(), fmt);
  if (empty_shape(x_shape)) return x;
  ::dfx::cuda::DeviceGuard guard(y.device().index);
  const Geo3 geo = make_geo(x_shape, w.shape(), y.shape(), g);
  dispatch_float_cuda(y, "conv_transpose", [&](auto z) {
    using T = decltype(z);
    const std::string name = ::dfx::detail::cat("conv_transpose igemm_kernel<",
                                                dtype_name(y.dtype()), "> (", g.str(), ")");
    if (geo.o == 0) return fill_bias<T>(x, bias, geo.c, geo.in_size(), fmt, name);
    dispatch_format(fmt, [&](auto cl) {
      BwdDataOps<T, decltype(cl)::value> ops{y.data<T>(), w.data<T>(),
                                             bias.defined() ? bias.data<T>() : nullptr,
                                             x.data<T>(), geo};
      ops.vec4 = vec4_ok(y, w, fmt, {geo.c, geo.o});
      launch_igemm<T>(geo.c, geo.n * geo.in_size(), geo.o * geo.k_size(), 1, ops, name,
                      y.shape());
    });
  });
  return x;
}

Tensor conv_weight_grad(const Tensor& y, const Tensor& x, const Shape& w_shape,
                        const ConvGeometry& g, MemoryFormat fmt) {
  check_cuda_tensor(y, "conv_weight_grad", "output gradient");
  check_cuda_tensor(x, "conv_weight_grad", "input");
  check_format(y, fmt, "conv_weight_grad", "output gradient");
  check_format(x, fmt, "conv_weight_grad", "input");
  Tensor dw = Tensor::empty(w_shape, y.dtype(), y.device(), fmt);
  if (empty_shape(w_shape)) return dw;
  ::dfx::cuda::DeviceGuard guard(y.device().index);
  const Geo3 geo = make_geo(x.shape(), w_shape, y.shape(), g);
  dispatch_float_cuda(y, "conv_weight_grad", [&](auto z) {
    using T = decltype(z);
    const std::string name = ::dfx::detail::cat("conv_weight_grad igemm_kernel<",
                                                dtype_name(y.dtype()), "> (", g.str(), ")");
    const int64_t M = geo.o, N = geo.rows(), K = geo.n * geo.out_size(), W = M * N;
    if (K == 0) {
      DFX_CUDA_CHECK(cudaMemsetAsync(dw.raw_data(), 0, dw.nbytes(), launch_stream()));
      return;
    }
    // Split-K from the shapes alone: chunks of at least 4096 products, about 512 blocks in all,
    // and partials within 16 Mi elements.
    const int64_t tiles = ((M + kBM - 1) / kBM) * ((N + kBN - 1) / kBN);
    int64_t splits = std::max<int64_t>(1, 512 / tiles);
    splits = std::min<int64_t>(splits, (K + 4095) / 4096);
    splits = std::min<int64_t>(splits, std::max<int64_t>(1, (int64_t{16} << 20) / W));
    splits = std::clamp<int64_t>(splits, 1, 1024);
    // dW's rows come out in the weight's format: dense [O, R] either way.
    Tensor part = splits == 1 ? dw : Tensor::empty(Shape{splits, W}, y.dtype(), y.device());
    dispatch_format(fmt, [&](auto cl) {
      WgradOps<T, decltype(cl)::value> ops{y.data<T>(), x.data<T>(), part.data<T>(), geo};
      ops.vec4 = vec4_ok(y, x, fmt, {geo.c, geo.o});
      launch_igemm<T>(M, N, K, splits, ops, name, x.shape());
    });
    if (splits == 1) return;
    split_sum_kernel<T><<<grid_for(W), kThreads, 0, launch_stream()>>>(
        part.data<T>(), splits, W, dw.data<T>());
    DFX_CUDA_CHECK_LAUNCH(name + " (split_sum_kernel)", x.shape());
  });
  return dw;
}

Tensor conv_bias_grad(const Tensor& y) {
  check_cuda_tensor(y, "conv_bias_grad", "output gradient");
  const int64_t N = y.size(0), C = y.size(1);
  const int64_t S = N * C > 0 ? y.numel() / (N * C) : 0;
  if (C == 0) return Tensor::empty(Shape{C}, y.dtype(), y.device());
  if (N == 0 || S == 0) {
    Tensor out = Tensor::empty(Shape{C}, y.dtype(), y.device());
    ::dfx::cuda::DeviceGuard guard(y.device().index);
    DFX_CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0, out.nbytes(), launch_stream()));
    return out;
  }
  // Batch norm's channel-sum kernel (one pass, float64 accumulation, deterministic): the generic
  // reduction over dims (0, 2) ran 7x (NCHW) to 20x (channels-last rows) off the bandwidth floor
  // on the H100 (BENCHMARKS.md).
  Tensor sums = Tensor::empty(Shape{2, C}, DType::Float64, y.device());
  channel_sums(y, N, C, S, sums);
  return sums.select(0, 0).to(y.dtype()).contiguous();
}

}  // namespace dfx::kernels::cuda
