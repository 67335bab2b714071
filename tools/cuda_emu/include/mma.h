// Host emulation of the WMMA API subset dfx uses (TF32 m16n16k8): every thread of the warp holds
// the whole tile (the emulation needs no lane mapping), so collective loads/stores/mma are exact
// replicas. For logic tests only.
#pragma once
#include <cstdint>
#include <cstring>
namespace nvcuda { namespace wmma {
struct row_major {}; struct col_major {};
struct matrix_a {}; struct matrix_b {}; struct accumulator {};
namespace precision { struct tf32 {}; }
enum layout_t { mem_row_major, mem_col_major };
inline float __float_to_tf32(float f) {
  uint32_t u; std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) { u += 0x1000u; u &= 0xffffe000u; }  // nearest, ties away
  float r; std::memcpy(&r, &u, 4); return r;
}
template <class Use, int M, int N, int K, class T, class L = void> struct fragment;
template <class L> struct fragment<matrix_a, 16, 16, 8, precision::tf32, L> {
  static constexpr int num_elements = 16 * 8; float x[num_elements];  // [m][k]
};
template <class L> struct fragment<matrix_b, 16, 16, 8, precision::tf32, L> {
  static constexpr int num_elements = 8 * 16; float x[num_elements];  // [k][n]
};
template <> struct fragment<accumulator, 16, 16, 8, float, void> {
  static constexpr int num_elements = 256; float x[num_elements];  // [m][n]
};
inline void fill_fragment(fragment<accumulator, 16, 16, 8, float>& f, float v) {
  for (float& e : f.x) e = v;
}
inline void load_matrix_sync(fragment<matrix_a, 16, 16, 8, precision::tf32, col_major>& f,
                             const float* p, unsigned ldm) {
  for (int m = 0; m < 16; ++m) for (int k = 0; k < 8; ++k) f.x[m * 8 + k] = p[m + k * ldm];
}
inline void load_matrix_sync(fragment<matrix_a, 16, 16, 8, precision::tf32, row_major>& f,
                             const float* p, unsigned ldm) {
  for (int m = 0; m < 16; ++m) for (int k = 0; k < 8; ++k) f.x[m * 8 + k] = p[m * ldm + k];
}
inline void load_matrix_sync(fragment<matrix_b, 16, 16, 8, precision::tf32, row_major>& f,
                             const float* p, unsigned ldm) {
  for (int k = 0; k < 8; ++k) for (int n = 0; n < 16; ++n) f.x[k * 16 + n] = p[k * ldm + n];
}
inline void load_matrix_sync(fragment<matrix_b, 16, 16, 8, precision::tf32, col_major>& f,
                             const float* p, unsigned ldm) {
  for (int k = 0; k < 8; ++k) for (int n = 0; n < 16; ++n) f.x[k * 16 + n] = p[k + n * ldm];
}
template <class LA, class LB>
inline void mma_sync(fragment<accumulator, 16, 16, 8, float>& d,
                     const fragment<matrix_a, 16, 16, 8, precision::tf32, LA>& a,
                     const fragment<matrix_b, 16, 16, 8, precision::tf32, LB>& b,
                     const fragment<accumulator, 16, 16, 8, float>& c) {
  float out[256];
  for (int m = 0; m < 16; ++m) for (int n = 0; n < 16; ++n) {
    float s = c.x[m * 16 + n];
    for (int k = 0; k < 8; ++k) s += a.x[m * 8 + k] * b.x[k * 16 + n];
    out[m * 16 + n] = s;
  }
  std::memcpy(d.x, out, sizeof out);
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 8, float>& f,
                              unsigned ldm, layout_t layout) {
  for (int m = 0; m < 16; ++m) for (int n = 0; n < 16; ++n)
    p[layout == mem_row_major ? m * ldm + n : m + n * ldm] = f.x[m * 16 + n];
}
}}  // namespace nvcuda::wmma
