// kernels/cpu/amx_gemm.h — float32 GEMM on Intel AMX tiles: the operands are rounded to bfloat16
// (round to nearest even, as PyTorch's and oneDNN's bf16 paths), the products summed in float32.
// One call runs on its caller's thread and sums in a fixed order (k in ascending 32-wide slices),
// so its bits do not depend on how a caller spreads calls over threads.
//
// Why: the CPU convolutions are GEMMs, and on a Sapphire Rapids core OpenBLAS's float32 kernels
// reach ~65 GFLOP/s while one AMX unit peaks near 2.6 TFLOP/s (measured on the development
// machine). The price is bf16's 8-bit mantissa on the inputs (about 4e-3 relative per product).
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace dfx::kernels::cpu {

// 64-byte aligned storage for packed tiles: each tile row is one cache line, and an unaligned
// row would make every packing store and tile load touch two.
template <class T>
struct TileAllocator {
  using value_type = T;
  TileAllocator() = default;
  template <class U>
  TileAllocator(const TileAllocator<U>&) {}
  T* allocate(size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const TileAllocator<U>&) const { return true; }
};
using TileVector = std::vector<uint16_t, TileAllocator<uint16_t>>;

// The CPU has AMX-BF16 and AVX512-BF16 and the kernel granted this process the tile state
// (asked once, on first call). False on other CPUs: callers fall back to float32 BLAS.
bool amx_usable();

// op(A) [M, K] repacked as bf16 tiles (16 rows x 32 k each, zero padded), for reuse across calls
// that share A (a convolution's weights are packed once per call, not once per block).
struct AmxPackedA {
  int64_t M = 0, K = 0, mt = 0, kt = 0;  // rows, depth, row tiles (16), depth slices (32)
  TileVector tiles;                      // tile (i, kk) at ((i * kt + kk) * 512)
};
// op(A)[m][k] = ta ? a[k * lda + m] : a[m * lda + k].
void amx_pack_a(bool ta, int64_t M, int64_t K, const float* a, int64_t lda, AmxPackedA& out);

// op(B) [K, N] in the tiles' layout (16 k-pairs x 16 columns x 2 bf16 per tile, zero padded),
// built whole by amx_gemm or piece by piece by a caller that makes B's rows on the fly (the
// convolutions' im2col rows, so the float32 column matrix never exists whole).
struct AmxPackedB {
  int64_t K = 0, N = 0, kt = 0, nt = 0;  // depth, columns, depth slices (32), column tiles (16)
  TileVector tiles;                      // tile (j, kk) at ((j * kt + kk) * 512)
  // Sizes it for B [K, N] and zeroes the depth padding (rows at or beyond K); the packers below
  // write every other entry, column padding included.
  void reset(int64_t K, int64_t N);
};
// Rows k and k + 1 of B (k even; r1 null when k + 1 == K), N floats each, into their tile rows.
void amx_pack_b_rows(AmxPackedB& b, int64_t k, const float* r0, const float* r1);
// B = R^T for rows R [16, ld] of float (nvalid of them real): columns n0 .. n0 + 15 of B, all
// K of their depth (R[n][k] = B[k][n0 + n]).
void amx_pack_b_columns(AmxPackedB& b, int64_t n0, const float* rows, int64_t ld,
                        int64_t nvalid);
// dst[i] = src[i] rounded to bf16 (the bits amx_gemm's operands get), i < n. A source for the
// offset packers below must hold one spare element past the last one they read: their gathers
// load a dword at a bf16 address.
void amx_round_bf16(const float* src, uint16_t* dst, int64_t n);
// B given as offsets into one bf16 array: B[k][n] = src[row_off[k] + col_off[n]] (the
// convolutions' im2col over a zero-padded input rounded once by amx_round_bf16: row_off picks
// the channel and kernel tap, col_off the output position; col_off strictly increasing). Runs of
// consecutive offsets are read as vectors, the rest gathered. The transposed form packs
// B[k][n] = src[row_off[n] + col_off[k]].
void amx_pack_b_offsets(AmxPackedB& b, const uint16_t* src, const int64_t* row_off,
                        const int64_t* col_off);
void amx_pack_bt_offsets(AmxPackedB& b, const uint16_t* src, const int64_t* row_off,
                         const int64_t* col_off);
// C [M, N] = A @ B + beta C from both packed.
void amx_gemm(const AmxPackedA& a, const AmxPackedB& b, float beta, float* c, int64_t ldc);

// Row-major C [M, N] = op(A) @ op(B) + beta C with op(B)[k][n] = tb ? b[n * ldb + k] :
// b[k * ldb + n]; beta 0 overwrites C (NaNs in C do not leak). Needs amx_usable().
void amx_gemm(const AmxPackedA& a, bool tb, int64_t N, const float* b, int64_t ldb, float beta,
              float* c, int64_t ldc);
void amx_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda,
              const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// The bf16 value nearest x (ties to even), as a float: the rounding the tiles see.
float round_to_bf16(float x);

}  // namespace dfx::kernels::cpu
