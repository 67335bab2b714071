// kernels/cpu/dispatch.h — calls f(T{}) with the C++ type of a dtype, or throws naming the op.
#pragma once
#include <cstdint>

#include "core/error.h"
#include "core/dtype.h"

namespace dfx::kernels::cpu {

template <class F>
void dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: f(float{}); break;
    case DType::Float64: f(double{}); break;
    default: DFX_FAIL(op, ": expected float32 or float64, got ", dtype_name(t));
  }
}

template <class F>
void dispatch_numeric(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: f(float{}); break;
    case DType::Float64: f(double{}); break;
    case DType::Int64: f(int64_t{}); break;
    default: DFX_FAIL(op, ": expected float32, float64 or int64, got ", dtype_name(t));
  }
}

template <class F>
void dispatch_all(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: f(float{}); break;
    case DType::Float64: f(double{}); break;
    case DType::Int64: f(int64_t{}); break;
    case DType::Bool: f(bool{}); break;
    default: DFX_FAIL(op, ": dtype ", dtype_name(t), " has no CPU kernel yet");
  }
}

// Accumulator type: float64 for float32 sums, so reductions are accurate and order-stable.
template <class T> struct acc { using type = T; };
template <> struct acc<float> { using type = double; };
template <> struct acc<bool> { using type = int64_t; };

}  // namespace dfx::kernels::cpu
