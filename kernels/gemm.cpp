// kernels/gemm.cpp — matmul's shape rules (NumPy: 1-d promotion, broadcast batch dims) on top
// of the 2-d gemm, with device dispatch.
#include "kernels/gemm.h"
#include "kernels/profile.h"

#include <algorithm>

#include "config.h"
#include "kernels/cpu/gemm.h"
#if DFX_HAVE_CUDA
#include "kernels/cuda/gemm.cuh"
#endif

namespace dfx::kernels {

bool blas_layout(const Tensor& m, bool& trans, int64_t& ld) {
  const int64_t r = m.shape()[0], c = m.shape()[1];
  const int64_t s0 = m.strides()[0], s1 = m.strides()[1];
  if ((s1 == 1 || c == 1) && (s0 >= std::max<int64_t>(c, 1) || r == 1)) {
    trans = false;
    ld = r == 1 ? std::max<int64_t>(c, 1) : s0;
    return true;
  }
  if ((s0 == 1 || r == 1) && (s1 >= std::max<int64_t>(r, 1) || c == 1)) {
    trans = true;
    ld = c == 1 ? std::max<int64_t>(r, 1) : s1;
    return true;
  }
  return false;
}

GemmOperands gemm_operands(bool trans_a, bool trans_b, const Tensor& a0, const Tensor& b0,
                           const Tensor& c, const char* op) {
  GemmOperands g;
  g.a = trans_a ? a0.t() : a0;  // now a is [M, K], b is [K, N] logically
  g.b = trans_b ? b0.t() : b0;
  g.M = g.a.shape()[0];
  g.K = g.a.shape()[1];
  g.N = g.b.shape()[1];
  if (!blas_layout(g.a, g.ta, g.lda)) {
    g.a = g.a.contiguous();
    blas_layout(g.a, g.ta, g.lda);
  }
  if (!blas_layout(g.b, g.tb, g.ldb)) {
    g.b = g.b.contiguous();
    blas_layout(g.b, g.tb, g.ldb);
  }
  bool tc = false;
  DFX_CHECK(blas_layout(c, tc, g.ldc) && !tc, op, ": output must be row-major, got strides ",
            c.strides());
  return g;
}

void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b, double beta,
          const Tensor& c) {
  DFX_CHECK(a.dim() == 2 && b.dim() == 2 && c.dim() == 2, "gemm: expected 2-d operands, got ",
            a.describe(), ", ", b.describe(), ", ", c.describe());
  DFX_CHECK(a.dtype() == b.dtype() && a.dtype() == c.dtype(), "gemm: dtypes differ: ",
            a.describe(), ", ", b.describe(), ", ", c.describe());
  DFX_CHECK(a.device() == b.device() && a.device() == c.device(), "gemm: devices differ: ",
            a.describe(), ", ", b.describe(), ", ", c.describe());
  const int64_t M = trans_a ? a.shape()[1] : a.shape()[0];
  const int64_t K = trans_a ? a.shape()[0] : a.shape()[1];
  const int64_t Kb = trans_b ? b.shape()[1] : b.shape()[0];
  const int64_t N = trans_b ? b.shape()[0] : b.shape()[1];
  DFX_CHECK(K == Kb && c.shape()[0] == M && c.shape()[1] == N, "gemm: shapes do not match: op(a) ",
            Shape{M, K}, ", op(b) ", Shape{Kb, N}, ", c ", c.shape());
  KernelProfileScope prof(c, "gemm");
  if (a.device().is_cuda()) {
#if DFX_HAVE_CUDA
    return cuda::gemm(trans_a, trans_b, alpha, a, b, beta, c);
#else
    DFX_FAIL("gemm: dfx was built without CUDA");
#endif
  }
  cpu::gemm(trans_a, trans_b, alpha, a, b, beta, c);
}

Tensor gram(const Tensor& a) {
  DFX_CHECK(a.dim() == 2, "gram: expected a 2-d operand [K, N], got ", a.describe());
  KernelProfileScope prof(a, "gram");
  if (a.device().is_cuda()) return matmul(a.t(), a).contiguous();
  return cpu::gram(a);
}

Tensor matmul(const Tensor& a0, const Tensor& b0) {
  DFX_CHECK(a0.dim() >= 1 && b0.dim() >= 1, "matmul: expected operands with >= 1 dim, got ",
            a0.describe(), " and ", b0.describe());
  const bool vec_a = a0.dim() == 1, vec_b = b0.dim() == 1;
  Tensor a = vec_a ? a0.unsqueeze(0) : a0;
  Tensor b = vec_b ? b0.unsqueeze(1) : b0;
  const int64_t M = a.size(-2), K = a.size(-1), Kb = b.size(-2), N = b.size(-1);
  DFX_CHECK(K == Kb, "matmul: inner dims differ: ", a0.describe(), " @ ", b0.describe(),
            " (", K, " vs ", Kb, "); expected a[..., M, K] @ b[..., K, N]");
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul (batch dims)");
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  const int64_t nb = shape_numel(batch);
  if (b.dim() == 2 && a.dim() > 2 && a.is_contiguous()) {
    // Weights shared over the batch: one GEMM with the batch folded into M.
    gemm(false, false, 1.0, a.reshape({nb * M, K}), b, 0.0, out.view({nb * M, N}));
  } else {
    Shape sa = batch, sb = batch;
    sa.push_back(M); sa.push_back(K);
    sb.push_back(K); sb.push_back(N);
    Tensor ea = a.expand(sa), eb = b.expand(sb);
    Tensor fa = ea.dim() > 2 ? ea.reshape({-1, M, K}) : ea.unsqueeze(0);
    Tensor fb = eb.dim() > 2 ? eb.reshape({-1, K, N}) : eb.unsqueeze(0);
    Tensor fo = out.view({nb, M, N});
    for (int64_t i = 0; i < nb; ++i) gemm(false, false, 1.0, fa.select(0, i), fb.select(0, i), 0.0, fo.select(0, i));
  }
  Shape final_shape = batch;
  if (!vec_a) final_shape.push_back(M);
  if (!vec_b) final_shape.push_back(N);
  return out.view(final_shape);
}

}  // namespace dfx::kernels
