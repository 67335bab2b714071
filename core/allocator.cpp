// core/allocator.cpp — CPU aligned allocation with usage statistics; CUDA delegates to core/cuda.
#include "core/allocator.h"

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "core/cuda_runtime.h"
#include "core/error.h"

namespace dfx {
namespace {
std::atomic<size_t> g_cpu_current{0};
std::atomic<size_t> g_cpu_peak{0};

void note_alloc(size_t n) {
  size_t cur = g_cpu_current.fetch_add(n) + n;
  size_t peak = g_cpu_peak.load();
  while (cur > peak && !g_cpu_peak.compare_exchange_weak(peak, cur)) {
  }
}
}  // namespace

void* allocate(size_t nbytes, Device device) {
  if (device.is_cuda()) return cuda::device_alloc(nbytes, device.index);
  size_t rounded = (nbytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  DFX_CHECK(p, "allocate: out of host memory asking for ", nbytes, " bytes");
  note_alloc(nbytes);
  return p;
}

void deallocate(void* ptr, size_t nbytes, Device device) {
  if (!ptr) return;
  if (device.is_cuda()) {
    cuda::device_free(ptr, nbytes, device.index);
    return;
  }
  std::free(ptr);
  g_cpu_current.fetch_sub(nbytes);
}

MemoryStats memory_stats(Device device) {
  if (device.is_cuda()) return cuda::device_memory_stats(device.index);
  MemoryStats s;
  s.current_bytes = g_cpu_current.load();
  s.peak_bytes = g_cpu_peak.load();
  s.reserved_bytes = s.current_bytes;
  return s;
}

void reset_peak_memory(Device device) {
  if (device.is_cuda()) {
    cuda::reset_device_peak(device.index);
    return;
  }
  g_cpu_peak.store(g_cpu_current.load());
}

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  ptr_ = allocate(nbytes, device);
}

Storage::~Storage() { deallocate(ptr_, nbytes_, device_); }

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      size_t used = 0;
      int idx = std::stoi(s.substr(5), &used);
      if (used == s.size() - 5 && idx >= 0) return cuda(idx);
    } catch (...) {
    }
  }
  DFX_FAIL("Device::parse: '", s, "' is not a device; expected cpu, cuda or cuda:N");
}

}  // namespace dfx
