// kernels/cpu/gemm.cpp — 2-d GEMM on the CPU. Any operand whose view is row- or column-major
// with unit stride on one axis goes to BLAS as is (a transposed view becomes a Trans flag).
#include "kernels/cpu/gemm.h"
#include "kernels/gemm.h"

#include <cblas.h>

#include <mutex>

#include "kernels/cpu/dispatch.h"

namespace dfx::kernels {
namespace {
struct SerialBlasState {
  std::mutex mutex;
  int depth = 0;
  int saved = 0;
};
SerialBlasState& serial_blas_state() {
  static SerialBlasState s;
  return s;
}
}  // namespace

SerialBlasScope::SerialBlasScope() {
#if defined(OPENBLAS_VERSION)
  SerialBlasState& st = serial_blas_state();
  std::lock_guard<std::mutex> lock(st.mutex);
  if (st.depth++ == 0 && openblas_get_parallel() == 1 && openblas_get_num_threads() > 1) {
    st.saved = openblas_get_num_threads();
    openblas_set_num_threads(1);
  }
#endif
}

SerialBlasScope::~SerialBlasScope() {
#if defined(OPENBLAS_VERSION)
  SerialBlasState& st = serial_blas_state();
  std::lock_guard<std::mutex> lock(st.mutex);
  if (--st.depth == 0 && st.saved > 0) {
    openblas_set_num_threads(st.saved);
    st.saved = 0;
  }
#endif
}
}  // namespace dfx::kernels

namespace dfx::kernels::cpu {
void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a0, const Tensor& b0,
          double beta, const Tensor& c) {
  if ((trans_a ? a0.shape()[1] : a0.shape()[0]) == 0 || (trans_b ? b0.shape()[0] : b0.shape()[1]) == 0)
    return;
  const GemmOperands g = gemm_operands(trans_a, trans_b, a0, b0, c, "gemm");
  const Tensor &a = g.a, &b = g.b;
  const int64_t M = g.M, N = g.N, K = g.K, lda = g.lda, ldb = g.ldb, ldc = g.ldc;
  const bool ta = g.ta, tb = g.tb;
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

namespace {
// The upper triangle of a row-major n x n c copied into the lower one.
template <class T>
void mirror_upper(T* c, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) c[i * n + j] = c[j * n + i];
}
}  // namespace

Tensor gram(const Tensor& a0) {
  const int64_t K = a0.shape()[0], N = a0.shape()[1];
  Tensor c = zeros({N, N}, a0.dtype());
  if (K == 0 || N == 0) return c;
  bool trans = false;
  int64_t ld = 0;
  Tensor a = a0;
  if (!blas_layout(a, trans, ld)) {
    a = a.contiguous();
    blas_layout(a, trans, ld);
  }
  // Row-major a [K, N] is column-major a^T: C = a^T a is SYRK's Trans form; a transposed view
  // (column-major a) is its NoTrans form.
  const CBLAS_TRANSPOSE t = trans ? CblasNoTrans : CblasTrans;
  if (a.dtype() == DType::Float32) {
    cblas_ssyrk(CblasRowMajor, CblasUpper, t, N, K, 1.0f, a.data<float>(), ld, 0.0f,
                c.data<float>(), N);
    mirror_upper(c.data<float>(), N);
  } else if (a.dtype() == DType::Float64) {
    cblas_dsyrk(CblasRowMajor, CblasUpper, t, N, K, 1.0, a.data<double>(), ld, 0.0,
                c.data<double>(), N);
    mirror_upper(c.data<double>(), N);
  } else {
    DFX_FAIL("gram: expected float32 or float64, got ", a0.describe());
  }
  return c;
}

}  // namespace dfx::kernels::cpu
