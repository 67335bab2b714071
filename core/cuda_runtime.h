// core/cuda_runtime.h — the narrow door from core to the CUDA runtime. Implemented in
// core/cuda_runtime.cu when CUDA is built and in core/cuda_runtime_stub.cpp otherwise, so the rest
// of core compiles identically either way.
#pragma once
#include <cstddef>
#include <string>

#include "core/allocator.h"
#include "core/tensor.h"

namespace dfx::cuda {

bool is_built();           // compiled with CUDA support
int device_count();        // 0 when not built, no driver, or no device
std::string device_name(int index);

void* device_alloc(size_t nbytes, int device);
void device_free(void* ptr, size_t nbytes, int device);
MemoryStats device_memory_stats(int device);
void reset_device_peak(int device);
// Returns every cached free block of `device` to the driver (reserved_bytes drops to
// current_bytes); live tensors are untouched.
void empty_cache(int device);

enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };
void copy_bytes(void* dst, const void* src, size_t nbytes, CopyKind kind, int device);
void synchronize(int device);

// Same-device strided copy with broadcasting and dtype conversion, and fill, on the GPU.
void copy_strided(const Tensor& dst, const Tensor& src);
void fill(const Tensor& dst, double value);

}  // namespace dfx::cuda
