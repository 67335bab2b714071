// kernels/cpu/gemm.h — CPU matrix products through OpenBLAS (float), a plain loop for int64.
#pragma once
#include "kernels/gemm.h"

namespace dfx::kernels::cpu {

void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b, double beta,
          const Tensor& c);

// a^T a by SYRK (kernels::gram).
Tensor gram(const Tensor& a);

}  // namespace dfx::kernels::cpu
