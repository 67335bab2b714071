// kernels/cuda/fem.cuh — the CUDA Q1 stencils behind kernels/fem.h, with the signatures of
// kernels/cpu/fem.h: u, nu, a, b contiguous CUDA tensors [B, *S] (d = |S| in {2, 3}); K the
// float64 [2^d, 2^d] element matrix (any device; its values travel as a kernel argument).
#pragma once
#include "core/tensor.h"

namespace dfx::kernels::cuda {

void fem_energy(const Tensor& u, const Tensor& nu, const Tensor& K, const Tensor& out);
void fem_apply(const Tensor& nu, const Tensor& u, const Tensor& K, const Tensor& out);
void fem_bilinear(const Tensor& a, const Tensor& b, const Tensor& K, const Tensor& out);

}  // namespace dfx::kernels::cuda
