// core/allocator.cpp — CPU aligned allocation (large blocks cached by size class) with usage
// statistics; CUDA delegates to the caching allocator in core/cuda.
#include "core/allocator.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/cuda_runtime.h"
#include "core/error.h"

namespace dfx {
namespace {
std::atomic<size_t> g_cpu_current{0};
std::atomic<size_t> g_cpu_peak{0};
std::atomic<size_t> g_cpu_slack{0};  // class size - requested size of live cached-class blocks

void note_alloc(size_t n) {
  size_t cur = g_cpu_current.fetch_add(n) + n;
  size_t peak = g_cpu_peak.load();
  while (cur > peak && !g_cpu_peak.compare_exchange_weak(peak, cur)) {
  }
}

// Large host blocks are cached by size class and reused: a training step allocates the same
// activation and im2col sizes every step, and handing them back to the C library means fresh
// pages (page faults, zeroing) every step. Classes are the next multiple of 1/8 of a power of
// two (at most 12.5 % slack); only a class's own size is reused. Blocks below kMinCached go
// straight to the C library. DFX_CPU_CACHE=0 turns the cache off.
constexpr size_t kMinCached = size_t{1} << 20;
constexpr size_t kMaxCachedTotal = size_t{4} << 30;  // free bytes held at most

size_t size_class(size_t n) {
  size_t p = kMinCached;
  while (p < n) p <<= 1;
  const size_t step = p / 8;
  return (n + step - 1) / step * step;
}

struct HostCache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // class size -> blocks
  size_t cached = 0;                                           // bytes in free_blocks
  bool enabled = [] {
    const char* e = std::getenv("DFX_CPU_CACHE");
    return !(e && std::string(e) == "0");
  }();

  void release_all() {  // callers hold mu
    for (auto& [size, blocks] : free_blocks)
      for (void* p : blocks) std::free(p);
    free_blocks.clear();
    cached = 0;
  }
};
HostCache& host_cache() {
  static HostCache* c = new HostCache();  // never destroyed: blocks may be freed during exit
  return *c;
}

void* host_alloc(size_t nbytes) {
  size_t rounded = (nbytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  HostCache& c = host_cache();
  if (c.enabled && rounded >= kMinCached) {
    const size_t cls = size_class(rounded);
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free_blocks.find(cls);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.cached -= cls;
      return p;
    }
    void* p = std::aligned_alloc(64, cls);
    if (!p) {  // out of memory: give the cached blocks back and retry once
      c.release_all();
      p = std::aligned_alloc(64, cls);
    }
    return p;
  }
  return std::aligned_alloc(64, rounded);
}

void host_free(void* ptr, size_t nbytes) {
  size_t rounded = (nbytes + 63) / 64 * 64;
  HostCache& c = host_cache();
  if (c.enabled && rounded >= kMinCached) {
    const size_t cls = size_class(rounded);
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.cached + cls <= kMaxCachedTotal) {
      c.free_blocks[cls].push_back(ptr);
      c.cached += cls;
      return;
    }
  }
  std::free(ptr);
}

// Bytes a block of nbytes really holds beyond nbytes (its class's slack), 0 for small blocks.
size_t host_slack(size_t nbytes) {
  const size_t rounded = (nbytes + 63) / 64 * 64;
  if (!host_cache().enabled || rounded < kMinCached) return 0;
  return size_class(rounded) - nbytes;
}

size_t host_cached_bytes() {
  HostCache& c = host_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.cached;
}
}  // namespace

void* allocate(size_t nbytes, Device device) {
  if (device.is_cuda()) return cuda::device_alloc(nbytes, device.index);
  void* p = host_alloc(nbytes);
  DFX_CHECK(p, "allocate: out of host memory asking for ", nbytes, " bytes");
  note_alloc(nbytes);
  g_cpu_slack.fetch_add(host_slack(nbytes));
  return p;
}

void deallocate(void* ptr, size_t nbytes, Device device) {
  if (!ptr) return;
  if (device.is_cuda()) {
    cuda::device_free(ptr, nbytes, device.index);
    return;
  }
  host_free(ptr, nbytes);
  g_cpu_current.fetch_sub(nbytes);
  g_cpu_slack.fetch_sub(host_slack(nbytes));
}

void empty_host_cache() {
  HostCache& c = host_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.release_all();
}

MemoryStats memory_stats(Device device) {
  if (device.is_cuda()) return cuda::device_memory_stats(device.index);
  MemoryStats s;
  s.current_bytes = g_cpu_current.load();
  s.peak_bytes = g_cpu_peak.load();
  s.reserved_bytes = s.current_bytes + g_cpu_slack.load() + host_cached_bytes();
  return s;
}

void reset_peak_memory(Device device) {
  if (device.is_cuda()) {
    cuda::reset_device_peak(device.index);
    return;
  }
  g_cpu_peak.store(g_cpu_current.load());
}

Storage::Storage(size_t nbytes, Device device, bool pinned)
    : nbytes_(nbytes), device_(device), pinned_(pinned) {
  DFX_CHECK(!pinned || device.is_cpu(), "Storage: pinned memory is host memory; asked for ",
            device.str());
  ptr_ = pinned ? cuda::pinned_alloc(nbytes) : allocate(nbytes, device);
}

Storage::~Storage() {
  if (pinned_) cuda::pinned_free(ptr_, nbytes_);
  else deallocate(ptr_, nbytes_, device_);
}

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
