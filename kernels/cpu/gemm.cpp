// kernels/cpu/gemm.cpp — 2-d GEMM on the CPU. Any operand whose view is row- or column-major
// with unit stride on one axis goes to BLAS as is (a transposed view becomes a Trans flag).
#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include "kernels/cpu/dispatch.h"

namespace dfx::kernels::cpu {
void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a0, const Tensor& b0,
          double beta, const Tensor& c) {
  Tensor a = trans_a ? a0.t() : a0;  // now a is [M, K], b is [K, N] logically
  Tensor b = trans_b ? b0.t() : b0;
  const int64_t M = a.shape()[0], K = a.shape()[1], N = b.shape()[1];
  if (M == 0 || N == 0) return;
  bool ta, tb, tc;
  int64_t lda, ldb, ldc;
  if (!blas_layout(a, ta, lda)) {
    a = a.contiguous();
    blas_layout(a, ta, lda);
  }
  if (!blas_layout(b, tb, ldb)) {
    b = b.contiguous();
    blas_layout(b, tb, ldb);
  }
  DFX_CHECK(blas_layout(c, tc, ldc) && !tc, "gemm: output must be row-major, got strides ",
            c.strides());
  if (c.dtype() == DType::Float32) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
                N, K, static_cast<float>(alpha), a.data<float>(), lda, b.data<float>(), ldb,
                static_cast<float>(beta), c.data<float>(), ldc);
  } else if (c.dtype() == DType::Float64) {
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
                N, K, alpha, a.data<double>(), lda, b.data<double>(), ldb, beta,
                c.data<double>(), ldc);
  } else if (c.dtype() == DType::Int64) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        int64_t s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += static_cast<int64_t>(a.get({i, k})) * static_cast<int64_t>(b.get({k, j}));
        double prev = beta != 0 ? c.get({i, j}) * beta : 0.0;
        Tensor(c).set({i, j}, alpha * static_cast<double>(s) + prev);
      }
  } else {
    DFX_FAIL("gemm: expected float32, float64 or int64, got ", c.describe());
  }
}

}  // namespace dfx::kernels::cpu
