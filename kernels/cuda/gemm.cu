// kernels/cuda/gemm.cu — row-major GEMM through column-major cuBLAS: C = A B is computed as
// C^T = B^T A^T, so the operands are passed swapped with the same transpose flags.
#include <cublas_v2.h>

#include <mutex>
#include <unordered_map>

#include "core/cuda_check.h"
#include "core/error.h"
#include "kernels/conv_config.h"
#include "kernels/cuda/gemm.cuh"
#include "kernels/gemm.h"

namespace dfx::kernels::cuda {
namespace {

using ::dfx::cuda::DeviceGuard;

void check_cublas(cublasStatus_t s, const char* what) {
  DFX_CHECK(s == CUBLAS_STATUS_SUCCESS, "cuBLAS ", what, " failed with status ",
            static_cast<int>(s));
}

cublasHandle_t handle_for(int device) {
  static std::mutex mu;
  static std::unordered_map<int, cublasHandle_t> handles;
  std::lock_guard<std::mutex> lock(mu);
  auto it = handles.find(device);
  if (it != handles.end()) return it->second;
  DeviceGuard guard(device);  // cublasCreate binds the handle to the current device
  cublasHandle_t h;
  check_cublas(cublasCreate(&h), "cublasCreate");
  handles[device] = h;
  return h;
}

}  // namespace

void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a0, const Tensor& b0,
          double beta, const Tensor& c) {
  if ((trans_a ? a0.shape()[1] : a0.shape()[0]) == 0 || (trans_b ? b0.shape()[0] : b0.shape()[1]) == 0)
    return;
  const GemmOperands g = gemm_operands(trans_a, trans_b, a0, b0, c, "gemm (cuda)");
  const Tensor &a = g.a, &b = g.b;
  const int64_t M = g.M, N = g.N, K = g.K, lda = g.lda, ldb = g.ldb, ldc = g.ldc;
  const bool ta = g.ta, tb = g.tb;
  const int device = c.device().index;
  DeviceGuard guard(device);
  cublasHandle_t h = handle_for(device);
  // The handle is shared by every stream of the device: bind it to the current one per call.
  check_cublas(cublasSetStream(h, ::dfx::cuda::current_cuda_stream(device)), "cublasSetStream");
  // float32 GEMMs may use TF32 tensor cores only when the user allowed it (kernels/conv_config.h).
  check_cublas(cublasSetMathMode(h, allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
               "cublasSetMathMode");
  const cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (c.dtype() == DType::Float32) {
    const float al = static_cast<float>(alpha), be = static_cast<float>(beta);
    check_cublas(cublasSgemm(h, opb, opa, N, M, K, &al, b.data<float>(), ldb, a.data<float>(),
                             lda, &be, c.data<float>(), ldc),
                 "sgemm");
  } else if (c.dtype() == DType::Float64) {
    check_cublas(cublasDgemm(h, opb, opa, N, M, K, &alpha, b.data<double>(), ldb,
                             a.data<double>(), lda, &beta, c.data<double>(), ldc),
                 "dgemm");
  } else {
    DFX_FAIL("gemm (cuda): expected float32 or float64, got ", c.describe());
  }
}

}  // namespace dfx::kernels::cuda
