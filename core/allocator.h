// core/allocator.h — raw memory for tensor storage. CPU blocks are 64-byte aligned (one cache
// line, full AVX-512 vectors); blocks of 1 MiB and more are kept in a size-class cache when freed
// and reused (DFX_CPU_CACHE=0 disables it; reserved_bytes counts them). CUDA blocks come from the caching allocator in core/cuda when CUDA
// is built; without CUDA, asking for device memory is an error that says so.
#pragma once
#include <cstddef>
#include <memory>

#include "core/dtype.h"

namespace dfx {

struct MemoryStats {
  size_t current_bytes = 0;  // live tensor storage
  size_t peak_bytes = 0;     // high-water mark since the last reset_peak()
  size_t reserved_bytes = 0; // held from the system/driver, including cached free blocks
};

void* allocate(size_t nbytes, Device device);
void deallocate(void* ptr, size_t nbytes, Device device);

MemoryStats memory_stats(Device device);
void reset_peak_memory(Device device);
// Returns the cached free host blocks (>= 1 MiB, reused by size class) to the C library.
void empty_host_cache();

// Reference-counted block of memory; Tensors are views onto one.
class Storage {
 public:
  // pinned: page-locked host memory from the CUDA pinned cache (CPU storage only; needs CUDA),
  // so that copies to and from a GPU can run asynchronously.
  Storage(size_t nbytes, Device device, bool pinned = false);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return ptr_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  bool pinned() const { return pinned_; }

 private:
  void* ptr_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  bool pinned_ = false;
};

}  // namespace dfx
