// kernels/cpu/dispatch.h — dtype dispatch (core/dispatch.h) and accumulator types for CPU kernels.
#pragma once
#include <cstdint>

#include "core/dispatch.h"

namespace dfx::kernels::cpu {

using dfx::dispatch_all;
using dfx::dispatch_float;
using dfx::dispatch_numeric;

// Accumulator type: float64 for float32 sums, so reductions are accurate and order-stable.
template <class T> struct acc { using type = T; };
template <> struct acc<float> { using type = double; };
template <> struct acc<bool> { using type = int64_t; };

}  // namespace dfx::kernels::cpu
