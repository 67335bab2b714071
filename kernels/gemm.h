// kernels/gemm.h — matrix products through OpenBLAS (CPU) and cuBLAS (CUDA). Transposed views are
// passed to BLAS as transposes, not copied.
#pragma once
#include "core/tensor.h"

namespace dfx::kernels {

// a [..., M, K] @ b [..., K, N] -> [..., M, N]; batch dims broadcast. 1-d operands follow NumPy
// (a vector on the left is a row, on the right a column; the added dim is removed).
Tensor matmul(const Tensor& a, const Tensor& b);

// a^T a for a 2-d a [K, N] -> [N, N], exactly symmetric. On the CPU one SYRK (half a GEMM's
// products; the upper triangle, mirrored); float32 or float64, in a's dtype.
Tensor gram(const Tensor& a);

// While one is alive, every CPU GEMM runs on its caller's thread, so that GEMMs issued from the
// threads of a parallel loop run side by side. OpenBLAS's OpenMP build does that by itself
// inside a parallel region; its pthread build would hand each call to its own pool (and
// serialise concurrent calls on one lock), so its thread count is 1 while a scope lives. Scopes
// nest and may overlap across threads: the first in saves the count, the last out restores it.
class SerialBlasScope {
 public:
  SerialBlasScope();
  ~SerialBlasScope();
  SerialBlasScope(const SerialBlasScope&) = delete;
  SerialBlasScope& operator=(const SerialBlasScope&) = delete;
};

// c = alpha * op(a) @ op(b) + beta * c for 2-d a, b, c (c contiguous or row-strided).
void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b, double beta,
          const Tensor& c);

// How a 2-d view looks to a row-major BLAS: unit stride along one axis (trans = false: rows;
// true: columns) with leading dimension `ld`. False when the view needs a contiguous copy first.
// Shared by the OpenBLAS and cuBLAS paths.
bool blas_layout(const Tensor& m, bool& trans, int64_t& ld);

// The operands of c = op(a) op(b) as a row-major BLAS takes them: a is [M, K], b is [K, N], each
// with its transpose flag and leading dimension (copied contiguous only when its view needs it).
struct GemmOperands {
  Tensor a, b;
  int64_t M = 0, N = 0, K = 0, lda = 0, ldb = 0, ldc = 0;
  bool ta = false, tb = false;
};
GemmOperands gemm_operands(bool trans_a, bool trans_b, const Tensor& a, const Tensor& b,
                           const Tensor& c, const char* op);

}  // namespace dfx::kernels
