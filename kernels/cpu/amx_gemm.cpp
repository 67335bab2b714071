// kernels/cpu/amx_gemm.cpp — the AMX bf16 GEMM of amx_gemm.h. Operands are repacked into the
// tiles' layouts (A: 16 rows x 32 bf16; B: 16 k-pairs x 16 columns x 2, the "VNNI" order the
// tile product reads), zero padded to whole tiles, and C is built from 2 x 2 blocks of 16 x 16
// float32 accumulator tiles (tiles 0-3 accumulate, 4-5 hold A, 6-7 hold B). The functions that
// touch tiles or AVX-512 BF16 carry target attributes, so the rest of the build needs no flags
// and a CPU without AMX never executes them (amx_usable() guards every caller).
#include "kernels/cpu/amx_gemm.h"

#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

// GCC 12's AVX-512 unpack intrinsics pass an _mm512_undefined_*() merge source, which its own
// -Wuninitialized then reports from inside the intrinsic headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace dfx::kernels::cpu {
namespace {

#define DFX_AMX_TARGET \
  __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))

constexpr int kTile = 512;  // bf16 elements per packed tile (16 x 32)

// The 64-byte tile configuration (palette 1): every tile 16 rows of 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

bool detect() {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24);
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  const bool avx512_bf16 = a & (1u << 5);
  if (!(amx_bf16 && amx_tile && avx512_bf16)) return false;
  // Linux hands out the 8 KiB tile state only to processes that ask (ARCH_REQ_XCOMP_PERM for
  // XFEATURE_XTILEDATA); the grant covers every thread of the process.
  constexpr long kReqXcompPerm = 0x1023, kXtileData = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
}

DFX_AMX_TARGET void configure_tiles() {
  thread_local bool configured = false;  // the configuration is per-thread state
  if (configured) return;
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  configured = true;
}

uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // NaN
  if ((u & 0x7f800000u) == 0) u &= 0x80000000u;  // subnormal in: zero, as VCVTNE2PS2BF16
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// The first n of 16 lanes (none for n <= 0).
__mmask16 lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << std::max<int64_t>(n, 0)) - 1);
}

// 32 floats (lo: k 0..15, hi: k 16..31) as 32 bf16 in k order.
DFX_AMX_TARGET inline __m512i to_bf16(__m512 lo, __m512 hi) {
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// out[p][n] = in[n][p] for 16 x 16 dwords: pairs of rows interleaved by 32 and 64 bits (4 x 4
// blocks transposed inside each 128-bit lane), then the 4 x 4 lanes transposed.
DFX_AMX_TARGET void transpose16(const __m512i in[16], uint32_t* out) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(in[2 * i], in[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(in[2 * i], in[2 * i + 1]);
  }
  for (int j = 0; j < 4; ++j) {  // u[4j + q], lane L: column 4L + q of rows 4j .. 4j + 3
    u[4 * j] = _mm512_unpacklo_epi64(t[4 * j], t[4 * j + 2]);
    u[4 * j + 1] = _mm512_unpackhi_epi64(t[4 * j], t[4 * j + 2]);
    u[4 * j + 2] = _mm512_unpacklo_epi64(t[4 * j + 1], t[4 * j + 3]);
    u[4 * j + 3] = _mm512_unpackhi_epi64(t[4 * j + 1], t[4 * j + 3]);
  }
  for (int q = 0; q < 4; ++q) {
    const __m512i x0 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0x44);
    const __m512i x1 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0xEE);
    const __m512i x2 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0x44);
    const __m512i x3 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0xEE);
    _mm512_storeu_si512(out + (0 + q) * 16, _mm512_shuffle_i32x4(x0, x2, 0x88));
    _mm512_storeu_si512(out + (4 + q) * 16, _mm512_shuffle_i32x4(x0, x2, 0xDD));
    _mm512_storeu_si512(out + (8 + q) * 16, _mm512_shuffle_i32x4(x1, x3, 0x88));
    _mm512_storeu_si512(out + (12 + q) * 16, _mm512_shuffle_i32x4(x1, x3, 0xDD));
  }
}

alignas(64) const uint16_t kInterleave[32] = {0,  16, 1,  17, 2,  18, 3,  19, 4,  20, 5,
                                               21, 6,  22, 7,  23, 8,  24, 9,  25, 10, 26,
                                               11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

// Rows k, k + 1 (r1 null: zeros) of B, columns [0, N): tile row (k % 32) / 2 of tiles (j, k / 32)
// holds the pairs (r0[n], r1[n]) for n in j*16 .. j*16 + 15.
DFX_AMX_TARGET void pack_row_pair(uint16_t* tiles, int64_t kt, int64_t N, int64_t k,
                                  const float* r0, const float* r1) {
  const __m512i idx = _mm512_load_si512(kInterleave);
  uint16_t* row = tiles + (k / 32) * kTile + ((k % 32) / 2) * 32;
  for (int64_t n0 = 0; n0 < N; n0 += 16) {
    const __mmask16 m = lanes(N - n0);
    const __m512 v0 = _mm512_maskz_loadu_ps(m, r0 + n0);
    const __m512 v1 = r1 ? _mm512_maskz_loadu_ps(m, r1 + n0) : _mm512_setzero_ps();
    _mm512_storeu_si512(row + (n0 / 16) * kt * kTile,
                        _mm512_permutexvar_epi16(idx, to_bf16(v0, v1)));
  }
}

// Columns n0 .. n0 + 15 of B from rows R[n][k] = B[k][n0 + n] (nv of them real): per depth
// slice, 16 rows of 32 k as bf16 pairs, transposed into the tile.
DFX_AMX_TARGET void pack_column_block(uint16_t* tiles, int64_t kt, int64_t K, int64_t n0,
                                      const float* rows, int64_t ld, int64_t nv) {
  for (int64_t kk = 0; kk < kt; ++kk) {
    const int64_t k0 = kk * 32, kv = std::min<int64_t>(32, K - k0);
    const __mmask16 mlo = lanes(kv), mhi = lanes(kv - 16);
    __m512i t[16];
    for (int64_t n = 0; n < 16; ++n) {
      t[n] = _mm512_setzero_si512();
      if (n < nv) {
        const float* src = rows + n * ld + k0;
        t[n] = to_bf16(_mm512_maskz_loadu_ps(mlo, src), _mm512_maskz_loadu_ps(mhi, src + 16));
      }
    }
    transpose16(t, reinterpret_cast<uint32_t*>(tiles + ((n0 / 16) * kt + kk) * kTile));
  }
}

// 16 bf16 src[base + off[i]], i < nv (zero beyond), each in the low half of a dword: one load
// when the offsets run on by one, which for strictly increasing offsets the two ends tell;
// otherwise dwords gathered at the bf16 addresses (the source keeps a spare element past its
// end, amx_round_bf16's contract) with their high halves cleared.
DFX_AMX_TARGET inline __m512i load_offsets(const uint16_t* src, int64_t base, const int64_t* off,
                                           int64_t nv) {
  if (nv <= 0) return _mm512_setzero_si512();
  nv = std::min<int64_t>(nv, 16);
  const __mmask16 m = lanes(nv);
  if (off[nv - 1] - off[0] == nv - 1)
    return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, src + base + off[0]));
  const __mmask8 lo = static_cast<__mmask8>(m & 0xff), hi = static_cast<__mmask8>(m >> 8);
  const uint16_t* p = src + base;
  const __m256i a = _mm512_mask_i64gather_epi32(_mm256_setzero_si256(), lo,
                                                _mm512_maskz_loadu_epi64(lo, off), p, 2);
  const __m256i b = _mm512_mask_i64gather_epi32(_mm256_setzero_si256(), hi,
                                                _mm512_maskz_loadu_epi64(hi, off + 8), p, 2);
  return _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1),
                          _mm512_set1_epi32(0xffff));
}

// One block of MI x NJ accumulator tiles over all kt depth slices; tile t (row-major in the
// block) is stored at dst[t] with row stride ld[t] bytes.
template <int MI, int NJ>
DFX_AMX_TARGET void block(const uint16_t* a, const uint16_t* b, int64_t kt, float* const* dst,
                          const int64_t* ld) {
  _tile_zero(0);
  if constexpr (NJ == 2) _tile_zero(1);
  if constexpr (MI == 2) _tile_zero(2);
  if constexpr (MI == 2 && NJ == 2) _tile_zero(3);
  for (int64_t kk = 0; kk < kt; ++kk) {
    _tile_loadd(4, a + kk * kTile, 64);
    if constexpr (MI == 2) _tile_loadd(5, a + (kt + kk) * kTile, 64);
    _tile_loadd(6, b + kk * kTile, 64);
    if constexpr (NJ == 2) _tile_loadd(7, b + (kt + kk) * kTile, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (NJ == 2) _tile_dpbf16ps(1, 4, 7);
    if constexpr (MI == 2) _tile_dpbf16ps(2, 5, 6);
    if constexpr (MI == 2 && NJ == 2) _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, dst[0], ld[0]);
  if constexpr (NJ == 2) _tile_stored(1, dst[1], ld[1]);
  if constexpr (MI == 2) _tile_stored(2, dst[NJ], ld[NJ]);
  if constexpr (MI == 2 && NJ == 2) _tile_stored(3, dst[3], ld[3]);
}

}  // namespace

bool amx_usable() {
  static const bool ok = detect();
  return ok;
}

float round_to_bf16(float x) {
  const uint32_t u = static_cast<uint32_t>(bf16_bits(x)) << 16;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

DFX_AMX_TARGET void amx_pack_a(bool ta, int64_t M, int64_t K, const float* a, int64_t lda,
                               AmxPackedA& out) {
  out.M = M;
  out.K = K;
  out.mt = (M + 15) / 16;
  out.kt = (K + 31) / 32;
  out.tiles.assign(static_cast<size_t>(out.mt * out.kt * kTile), 0);
  const __m512i idx = _mm512_load_si512(kInterleave);
  for (int64_t i = 0; i < out.mt; ++i)
    for (int64_t kk = 0; kk < out.kt; ++kk) {
      uint16_t* tile = out.tiles.data() + (i * out.kt + kk) * kTile;
      const int64_t k0 = kk * 32, kv = std::min<int64_t>(32, K - k0);
      if (!ta) {  // row m of the tile is 32 consecutive floats of row m of a
        for (int64_t r = 0; r < 16 && i * 16 + r < M; ++r) {
          const float* src = a + (i * 16 + r) * lda + k0;
          _mm512_storeu_si512(tile + r * 32,
                              to_bf16(_mm512_maskz_loadu_ps(lanes(kv), src),
                                      _mm512_maskz_loadu_ps(lanes(kv - 16), src + 16)));
        }
      } else {  // rows k of a hold the tile's 16 m: pair rows k, k + 1, then transpose
        const __mmask16 mm = lanes(M - i * 16);
        __m512i t[16];
        for (int64_t q = 0; q < 16; ++q) {
          const int64_t k = k0 + 2 * q;
          const __m512 v0 =
              k < K ? _mm512_maskz_loadu_ps(mm, a + k * lda + i * 16) : _mm512_setzero_ps();
          const __m512 v1 = k + 1 < K ? _mm512_maskz_loadu_ps(mm, a + (k + 1) * lda + i * 16)
                                      : _mm512_setzero_ps();
          t[q] = _mm512_permutexvar_epi16(idx, to_bf16(v0, v1));
        }
        transpose16(t, reinterpret_cast<uint32_t*>(tile));
      }
    }
}

void AmxPackedB::reset(int64_t k, int64_t n) {
  K = k;
  N = n;
  kt = (K + 31) / 32;
  nt = (N + 15) / 16;
  tiles.resize(static_cast<size_t>(nt * kt * kTile));
  // The packers write every row pair below K and every column of a tile; only the last depth
  // slice's rows at or beyond K stay to be zeroed.
  const int64_t first = (K - (kt - 1) * 32 + 1) / 2;
  for (int64_t j = 0; j < nt && kt > 0; ++j) {
    uint16_t* tile = tiles.data() + (j * kt + kt - 1) * kTile;
    std::fill(tile + first * 32, tile + kTile, uint16_t(0));
  }
}

void amx_pack_b_rows(AmxPackedB& b, int64_t k, const float* r0, const float* r1) {
  pack_row_pair(b.tiles.data(), b.kt, b.N, k, r0, k + 1 < b.K ? r1 : nullptr);
}

void amx_pack_b_columns(AmxPackedB& b, int64_t n0, const float* rows, int64_t ld,
                        int64_t nvalid) {
  pack_column_block(b.tiles.data(), b.kt, b.K, n0, rows, ld, nvalid);
}

DFX_AMX_TARGET void amx_round_bf16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    _mm256_mask_storeu_epi16(dst + i, m,
                             (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i)));
  }
}

DFX_AMX_TARGET void amx_pack_b_offsets(AmxPackedB& b, const uint16_t* src,
                                       const int64_t* row_off, const int64_t* col_off) {
  for (int64_t k = 0; k < b.K; k += 2) {
    uint16_t* row = b.tiles.data() + (k / 32) * kTile + ((k % 32) / 2) * 32;
    const bool second = k + 1 < b.K;
    for (int64_t n0 = 0; n0 < b.N; n0 += 16) {
      const int64_t nv = std::min<int64_t>(16, b.N - n0);
      const __m512i v0 = load_offsets(src, row_off[k], col_off + n0, nv);
      const __m512i v1 = second ? load_offsets(src, row_off[k + 1], col_off + n0, nv)
                                : _mm512_setzero_si512();
      // dword n = (B[k][n], B[k + 1][n]): the pair order the tile product reads
      _mm512_storeu_si512(row + (n0 / 16) * b.kt * kTile,
                          _mm512_or_si512(v0, _mm512_slli_epi32(v1, 16)));
    }
  }
}

DFX_AMX_TARGET void amx_pack_bt_offsets(AmxPackedB& b, const uint16_t* src,
                                        const int64_t* row_off, const int64_t* col_off) {
  for (int64_t n0 = 0; n0 < b.N; n0 += 16) {
    const int64_t nv = std::min<int64_t>(16, b.N - n0);
    for (int64_t kk = 0; kk < b.kt; ++kk) {
      const int64_t k0 = kk * 32, kv = std::min<int64_t>(32, b.K - k0);
      const int64_t* off = col_off + k0;
      const bool run = off[kv - 1] - off[0] == kv - 1;
      const __mmask32 mk = kv >= 32 ? ~__mmask32(0) : __mmask32((1u << kv) - 1);
      __m512i t[16];
      for (int64_t n = 0; n < 16; ++n) {
        t[n] = _mm512_setzero_si512();
        if (n >= nv) continue;
        const int64_t base = row_off[n0 + n];
        if (run) {  // 32 consecutive bf16 are already 16 (k, k + 1) pairs
          t[n] = _mm512_maskz_loadu_epi16(mk, src + base + off[0]);
        } else {
          const __m256i lo = _mm512_cvtepi32_epi16(load_offsets(src, base, off, kv));
          const __m256i hi = _mm512_cvtepi32_epi16(load_offsets(src, base, off + 16, kv - 16));
          t[n] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        }
      }
      transpose16(t, reinterpret_cast<uint32_t*>(b.tiles.data() + ((n0 / 16) * b.kt + kk) * kTile));
    }
  }
}

DFX_AMX_TARGET void amx_gemm(const AmxPackedA& a, const AmxPackedB& pbk, float beta, float* c,
                             int64_t ldc) {
  const int64_t M = a.M, N = pbk.N, kt = a.kt, mt = a.mt, nt = pbk.nt;
  if (M == 0 || N == 0) return;
  if (a.K == 0) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) c[m * ldc + n] = beta == 0.0f ? 0.0f : beta * c[m * ldc + n];
    return;
  }
  configure_tiles();
  const uint16_t* packed_b = pbk.tiles.data();
  alignas(64) float buf[4 * 256];
  for (int64_t j = 0; j < nt; j += 2) {
    const int nj = static_cast<int>(std::min<int64_t>(2, nt - j));
    const uint16_t* pb = packed_b + j * kt * kTile;
    for (int64_t i = 0; i < mt; i += 2) {
      const int mi = static_cast<int>(std::min<int64_t>(2, mt - i));
      const uint16_t* pa = a.tiles.data() + i * kt * kTile;
      // A whole tile with beta 0 goes straight into C; edge tiles and beta != 0 pass through buf.
      float* dst[4];
      int64_t ld[4];
      bool direct[4];
      for (int t = 0; t < mi * nj; ++t) {
        const int64_t m0 = (i + t / nj) * 16, n0 = (j + t % nj) * 16;
        direct[t] = beta == 0.0f && m0 + 16 <= M && n0 + 16 <= N;
        dst[t] = direct[t] ? c + m0 * ldc + n0 : buf + t * 256;
        ld[t] = direct[t] ? ldc * static_cast<int64_t>(sizeof(float)) : 64;
      }
      if (mi == 2 && nj == 2) block<2, 2>(pa, pb, kt, dst, ld);
      else if (mi == 2) block<2, 1>(pa, pb, kt, dst, ld);
      else if (nj == 2) block<1, 2>(pa, pb, kt, dst, ld);
      else block<1, 1>(pa, pb, kt, dst, ld);
      for (int t = 0; t < mi * nj; ++t) {
        if (direct[t]) continue;
        const int64_t m0 = (i + t / nj) * 16, n0 = (j + t % nj) * 16;
        const int64_t mv = std::min<int64_t>(16, M - m0), nv = std::min<int64_t>(16, N - n0);
        const __mmask16 mask = lanes(nv);
        for (int64_t r = 0; r < mv; ++r) {
          float* out = c + (m0 + r) * ldc + n0;
          __m512 v = _mm512_load_ps(buf + t * 256 + r * 16);
          if (beta != 0.0f)
            v = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mask, out), v);
          _mm512_mask_storeu_ps(out, mask, v);
        }
      }
    }
  }
}

void amx_gemm(const AmxPackedA& a, bool tb, int64_t N, const float* b, int64_t ldb, float beta,
              float* c, int64_t ldc) {
  thread_local AmxPackedB packed;
  packed.reset(a.K, N);
  if (!tb) {
    for (int64_t k = 0; k < a.K; k += 2)
      amx_pack_b_rows(packed, k, b + k * ldb, k + 1 < a.K ? b + (k + 1) * ldb : nullptr);
  } else {
    for (int64_t n0 = 0; n0 < N; n0 += 16)
      amx_pack_b_columns(packed, n0, b + n0 * ldb, ldb, std::min<int64_t>(16, N - n0));
  }
  amx_gemm(a, packed, beta, c, ldc);
}

void amx_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda,
              const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  thread_local AmxPackedA packed;
  amx_pack_a(ta, M, K, a, lda, packed);
  amx_gemm(packed, tb, N, b, ldb, beta, c, ldc);
}

}  // namespace dfx::kernels::cpu
