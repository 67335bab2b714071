// core/dispatch.h — calls f(T{}) with the C++ type of a dtype, or throws naming the op. Shared
// by core's copies and every CPU kernel (kernels/cpu/dispatch.h re-exports it).
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"

namespace dfx {

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

}  // namespace dfx
