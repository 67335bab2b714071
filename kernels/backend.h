// kernels/backend.h — the one rule the family entry points use to send a validated call to the
// backend of a tensor's device: kernels/cuda/<family>.cu for CUDA tensors, kernels/cpu otherwise.
// Both backends declare the same signatures, so `call` is written once.
#pragma once
#include "config.h"

// Each dispatched call is also one KernelProfileScope (kernels/profile.h), named by its call text.
#include "kernels/profile.h"

#if DFX_HAVE_CUDA
#define DFX_BACKEND(t, call)                                       \
  ([&]() -> decltype(auto) {                                       \
    ::dfx::kernels::KernelProfileScope dfx_profile_scope_((t), #call); \
    return (t).device().is_cuda() ? cuda::call : cpu::call;        \
  }())
#else
#define DFX_BACKEND(t, call)                                       \
  ([&]() -> decltype(auto) {                                       \
    ::dfx::kernels::KernelProfileScope dfx_profile_scope_((t), #call); \
    return cpu::call;                                              \
  }())
#endif
