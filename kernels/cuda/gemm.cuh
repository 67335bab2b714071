// kernels/cuda/gemm.cuh — cuBLAS GEMM behind kernels/gemm.h for CUDA tensors.
#pragma once
#include "core/tensor.h"

namespace dfx::kernels::cuda {

void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b, double beta,
          const Tensor& c);

}  // namespace dfx::kernels::cuda
