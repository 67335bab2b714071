// kernels/cpu/fem.h — CPU implementations behind kernels/fem.h.
#pragma once
#include "kernels/fem.h"

namespace dfx::kernels::cpu {

// u, nu, a, b: contiguous [B, *S] with d = S.size() in {2, 3}; K: float64 [2^d, 2^d].
void fem_energy(const Tensor& u, const Tensor& nu, const Tensor& K, const Tensor& out);
void fem_apply(const Tensor& nu, const Tensor& u, const Tensor& K, const Tensor& out);
void fem_bilinear(const Tensor& a, const Tensor& b, const Tensor& K, const Tensor& out);

}  // namespace dfx::kernels::cpu
