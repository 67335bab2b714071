// core/cuda_runtime.cu — the CUDA side of core: device queries, the caching device allocator with
// its statistics, byte copies, and the strided copy (broadcast + dtype conversion) and fill
// kernels behind dfx::copy_ / dfx::fill_ for tensors on a GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "core/cuda_check.h"
#include "core/cuda_loop.cuh"
#include "core/cuda_runtime.h"

namespace dfx::cuda {

bool is_built() { return true; }

int device_count() {
  // The visible device set is fixed for the life of a process (CUDA_VISIBLE_DEVICES is read at
  // driver initialisation), so one query suffices.
  static const int count = [] {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();  // no driver or no device is an answer (0), not an error
      return 0;
    }
    return n;
  }();
  return count;
}

namespace {

void check_device_index(int device, const char* op) {
  const int n = device_count();
  DFX_CHECK(device >= 0 && device < n, op, ": cuda:", device, " does not exist (", n,
            " CUDA device", n == 1 ? "" : "s", " visible)");
}

}  // namespace

std::string device_name(int index) {
  check_device_index(index, "device_name");
  cudaDeviceProp prop{};
  DFX_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return prop.name;
}

// ---- streams ------------------------------------------------------------------------------
namespace {

// cuda::host_waits(): bumped wherever the host blocks on the device.
std::atomic<int64_t> g_host_waits{0};
void note_host_wait() { g_host_waits.fetch_add(1, std::memory_order_relaxed); }

// Per host thread: device -> current stream handle (absent: the legacy default stream).
thread_local std::unordered_map<int, void*> t_current_streams;

}  // namespace

Stream Stream::create(int device, bool high_priority) {
  check_device_index(device, "Stream::create");
  // Streams are never destroyed: a tensor's block may still be ordered on one when its creator
  // goes away, and destroying streams while the runtime tears down at exit fails.
  DeviceGuard guard(device);
  int least = 0, greatest = 0;
  DFX_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  cudaStream_t s = nullptr;
  DFX_CUDA_CHECK(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking,
                                              high_priority ? greatest : least));
  return Stream(s, device);
}

void Stream::synchronize() const {
  check_device_index(device_, "Stream::synchronize");
  DeviceGuard guard(device_);
  note_host_wait();
  DFX_CUDA_CHECK(cudaStreamSynchronize(native(*this)));
}

bool Stream::query() const {
  DeviceGuard guard(device_);
  cudaError_t err = cudaStreamQuery(native(*this));
  if (err == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  DFX_CUDA_CHECK(err);
  return true;
}

Stream current_stream(int device) {
  auto it = t_current_streams.find(device);
  return Stream(it == t_current_streams.end() ? nullptr : it->second, device);
}

void set_current_stream(const Stream& s) {
  if (s.is_default()) t_current_streams.erase(s.device());
  else t_current_streams[s.device()] = s.handle();
}

// ---- events -------------------------------------------------------------------------------

Event::~Event() {
  if (event_) (void)cudaEventDestroy(static_cast<cudaEvent_t>(event_));  // must not throw
}

Event::Event(Event&& o) noexcept : event_(o.event_), device_(o.device_), timing_(o.timing_) {
  o.event_ = nullptr;
}

Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    if (event_) (void)cudaEventDestroy(static_cast<cudaEvent_t>(event_));
    event_ = o.event_;
    device_ = o.device_;
    timing_ = o.timing_;
    o.event_ = nullptr;
  }
  return *this;
}

void Event::record(const Stream& s) {
  check_device_index(s.device(), "Event::record");
  DFX_CHECK(!event_ || device_ == s.device(), "Event::record: the event belongs to cuda:", device_,
            " and cannot be recorded on a stream of cuda:", s.device());
  DeviceGuard guard(s.device());
  if (!event_) {
    cudaEvent_t e = nullptr;
    DFX_CUDA_CHECK(cudaEventCreateWithFlags(&e, timing_ ? cudaEventDefault
                                                        : cudaEventDisableTiming));
    event_ = e;
    device_ = s.device();
  }
  DFX_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event_), native(s)));
}

void Event::wait(const Stream& s) const {
  if (!event_) return;  // nothing recorded: nothing to wait for
  DeviceGuard guard(s.device());
  DFX_CUDA_CHECK(cudaStreamWaitEvent(native(s), static_cast<cudaEvent_t>(event_), 0));
}

void Event::synchronize() const {
  if (!event_) return;
  note_host_wait();
  DFX_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(event_)));
}

bool Event::query() const {
  if (!event_) return true;
  cudaError_t err = cudaEventQuery(static_cast<cudaEvent_t>(event_));
  if (err == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  DFX_CUDA_CHECK(err);
  return true;
}

float Event::elapsed_ms(const Event& end) const {
  DFX_CHECK(event_ && end.event_, "Event::elapsed_ms: both events must have been recorded");
  DFX_CHECK(timing_ && end.timing_, "Event::elapsed_ms: both events must be timing events "
            "(Event(true))");
  float ms = 0.f;
  DFX_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(event_),
                                      static_cast<cudaEvent_t>(end.event_)));
  return ms;
}

// ---- caching allocator ---------------------------------------------------------------------
// cudaMalloc/cudaFree are slow and cudaFree synchronises the device, so freed blocks are kept in
// per-device, per-stream free lists keyed by their size class and handed out again for the next
// request of the same class on the same stream. Work on one stream runs in order, so a block
// freed on its stream is safe to reuse there at once. A block that record_stream() marked as
// used on other streams too waits, on free, for an event on each of them before it returns to
// its free list (the PyTorch rule).
namespace {

constexpr size_t kSmallQuantum = 512;               // size classes below kLargeThreshold
constexpr size_t kLargeThreshold = size_t(1) << 20; // 1 MiB
constexpr size_t kLargeQuantum = size_t(2) << 20;   // 2 MiB classes above it

size_t size_class(size_t nbytes) {
  if (nbytes == 0) return kSmallQuantum;  // a real, distinct pointer even for empty tensors
  const size_t q = nbytes < kLargeThreshold ? kSmallQuantum : kLargeQuantum;
  return (nbytes + q - 1) / q * q;
}

struct Block {
  size_t bytes = 0;                   // size class
  void* stream = nullptr;             // the stream it was allocated on (its free list)
  std::vector<void*> used_on;         // further streams (record_stream)
};

struct PendingFree {
  void* ptr;
  Block block;
  std::vector<cudaEvent_t> events;    // one per further stream
};

struct DeviceCache {
  // (stream, size class) -> cached block
  std::map<std::pair<void*, size_t>, std::vector<void*>> free_blocks;
  std::unordered_map<void*, Block> live_blocks;  // handed-out block -> its record
  std::vector<PendingFree> pending;              // freed, waiting for other streams
  size_t cached_bytes = 0;                       // in free_blocks
  MemoryStats stats;                             // current/peak count size-class bytes
};

class CachingAllocator {
 public:
  void* allocate(size_t nbytes, int device) {
    check_device_index(device, "device_alloc");
    DFX_CHECK(nbytes <= std::numeric_limits<size_t>::max() - kLargeQuantum,
              "device_alloc: request of ", nbytes, " bytes on cuda:", device, " is too large");
    const size_t bytes = size_class(nbytes);
    void* stream = current_stream(device).handle();
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceCache& c = caches_[device];
    process_pending(c, /*wait=*/false);
    void* ptr = nullptr;
    auto it = c.free_blocks.find({stream, bytes});
    if (it != c.free_blocks.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
      c.cached_bytes -= bytes;
    } else {
      ptr = malloc_with_retry(c, nbytes, bytes, device);
      c.stats.reserved_bytes += bytes;
    }
    c.live_blocks.emplace(ptr, Block{bytes, stream, {}});
    c.stats.current_bytes += bytes;
    if (c.stats.current_bytes > c.stats.peak_bytes) c.stats.peak_bytes = c.stats.current_bytes;
    return ptr;
  }

  // Never throws: it runs from Storage's destructor.
  void free(void* ptr, int device) {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceCache& c = caches_[device];
    auto it = c.live_blocks.find(ptr);
    if (it == c.live_blocks.end()) {
      std::fprintf(stderr, "dfx: device_free: %p is not a live block of cuda:%d; ignored\n", ptr,
                   device);
      return;
    }
    Block b = std::move(it->second);
    c.live_blocks.erase(it);
    c.stats.current_bytes -= b.bytes;
    if (b.used_on.empty()) {
      c.free_blocks[{b.stream, b.bytes}].push_back(ptr);
      c.cached_bytes += b.bytes;
      return;
    }
    PendingFree p{ptr, b, {}};
    int prev = 0;
    (void)cudaGetDevice(&prev);
    if (prev != device) (void)cudaSetDevice(device);
    for (void* s : b.used_on) {
      cudaEvent_t e = nullptr;
      if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess ||
          cudaEventRecord(e, static_cast<cudaStream_t>(s)) != cudaSuccess) {
        // Cannot order the reuse: wait for the stream instead (rare: the driver is failing).
        (void)cudaGetLastError();
        if (e) (void)cudaEventDestroy(e);
        (void)cudaStreamSynchronize(static_cast<cudaStream_t>(s));
        continue;
      }
      p.events.push_back(e);
    }
    if (prev != device) (void)cudaSetDevice(prev);
    c.pending.push_back(std::move(p));
  }

  void record_stream(void* ptr, int device, void* stream) {
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceCache& c = caches_[device];
    auto it = c.live_blocks.find(ptr);
    DFX_CHECK(it != c.live_blocks.end(), "record_stream: the tensor's storage is not a live "
              "block of cuda:", device);
    Block& b = it->second;
    if (stream == b.stream) return;
    for (void* s : b.used_on)
      if (s == stream) return;
    b.used_on.push_back(stream);
  }

  MemoryStats stats(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = caches_.find(device);
    return it == caches_.end() ? MemoryStats{} : it->second.stats;
  }

  void reset_peak(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = caches_.find(device);
    if (it != caches_.end()) it->second.stats.peak_bytes = it->second.stats.current_bytes;
  }

  void empty_cache(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = caches_.find(device);
    if (it == caches_.end()) return;
    DeviceGuard guard(device);
    process_pending(it->second, /*wait=*/true);
    release_cached(it->second);
  }

 private:
  // Moves freed blocks whose further streams have passed their events to the free lists; with
  // `wait`, waits for all of them. Caller holds mutex_.
  void process_pending(DeviceCache& c, bool wait) {
    if (wait && !c.pending.empty()) note_host_wait();
    for (size_t i = 0; i < c.pending.size();) {
      PendingFree& p = c.pending[i];
      bool done = true;
      for (cudaEvent_t e : p.events) {
        cudaError_t err = wait ? cudaEventSynchronize(e) : cudaEventQuery(e);
        if (err == cudaErrorNotReady) {
          (void)cudaGetLastError();
          done = false;
          break;
        }
        if (err != cudaSuccess) (void)cudaGetLastError();  // a failing driver: reuse anyway
      }
      if (!done) {
        ++i;
        continue;
      }
      for (cudaEvent_t e : p.events) (void)cudaEventDestroy(e);
      c.free_blocks[{p.block.stream, p.block.bytes}].push_back(p.ptr);
      c.cached_bytes += p.block.bytes;
      c.pending[i] = std::move(c.pending.back());
      c.pending.pop_back();
    }
  }

  // Caller holds mutex_ and has made `device` current (or is about to, for cudaMalloc).
  void release_cached(DeviceCache& c) {
    // cudaFree synchronises the device, so blocks freed on any stream are idle by then.
    if (!c.free_blocks.empty()) note_host_wait();
    for (auto& [key, blocks] : c.free_blocks) {
      for (void* p : blocks) {
        DFX_CUDA_CHECK(cudaFree(p));
        c.stats.reserved_bytes -= key.second;
      }
    }
    c.free_blocks.clear();
    c.cached_bytes = 0;
  }

  void* malloc_with_retry(DeviceCache& c, size_t nbytes, size_t bytes, int device) {
    DeviceGuard guard(device);
    void* ptr = nullptr;
    cudaError_t err = cudaMalloc(&ptr, bytes);
    if (err == cudaErrorMemoryAllocation) {
      // Cached blocks of other size classes and streams may add up to enough: give them back
      // (after the pending ones' streams have passed them) and try once more.
      (void)cudaGetLastError();
      process_pending(c, /*wait=*/true);
      release_cached(c);
      err = cudaMalloc(&ptr, bytes);
    }
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      std::string driver;
      if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
        driver = ::dfx::detail::cat("; the driver reports ", free_b, " of ", total_b,
                                    " bytes free");
      } else {
        (void)cudaGetLastError();
      }
      DFX_FAIL("device_alloc: CUDA out of memory on cuda:", device, " asking for ", nbytes,
               " bytes (size class ", bytes, "); dfx holds ", c.stats.current_bytes,
               " bytes in live tensors and ", c.stats.reserved_bytes,
               " bytes reserved after releasing its cache", driver);
    }
    check_impl::check(err, "cudaMalloc(&ptr, bytes)", __FILE__, __LINE__);
    return ptr;
  }

  std::mutex mutex_;
  std::unordered_map<int, DeviceCache> caches_;
};

// Never destroyed: tensors held in static objects may be freed after this file's statics would
// be, and calling cudaFree while the runtime tears itself down at exit fails. The driver
// reclaims all device memory when the process ends.
CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

}  // namespace

void* device_alloc(size_t nbytes, int device) { return allocator().allocate(nbytes, device); }
void device_free(void* ptr, size_t, int device) { allocator().free(ptr, device); }
MemoryStats device_memory_stats(int device) { return allocator().stats(device); }
size_t device_free_bytes(int device) {
  if (device < 0 || device >= device_count()) return 0;
  DeviceGuard guard(device);
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  const MemoryStats st = allocator().stats(device);
  return free_b + (st.reserved_bytes > st.current_bytes ? st.reserved_bytes - st.current_bytes : 0);
}
void reset_device_peak(int device) { allocator().reset_peak(device); }
void empty_cache(int device) { allocator().empty_cache(device); }

void record_stream(const Tensor& t, const Stream& s) {
  DFX_CHECK(t.defined() && t.device().is_cuda(), "record_stream: expected a CUDA tensor, got ",
            t.describe());
  DFX_CHECK(t.device().index == s.device(), "record_stream: ", t.describe(),
            " cannot be used on a stream of cuda:", s.device());
  allocator().record_stream(t.storage()->data(), s.device(), s.handle());
}

// ---- pinned host memory --------------------------------------------------------------------
// Page-locked blocks from cudaHostAlloc, cached by size class (cudaFreeHost synchronises the
// device). An async copy attaches an event to the block it used; a freed block is reused only
// after its events have completed, so a copy still in flight never sees its bytes change.
namespace {

struct PinnedBlock {
  size_t bytes = 0;
  std::vector<cudaEvent_t> events;  // async copies queued on this block
};

class PinnedAllocator {
 public:
  void* allocate(size_t nbytes) {
    const size_t bytes = size_class(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    auto& list = free_[bytes];
    for (size_t i = 0; i < list.size(); ++i) {
      void* p = list[i];
      PinnedBlock& b = blocks_.at(p);
      if (!events_done(b, /*wait=*/false)) continue;
      list.erase(list.begin() + static_cast<std::ptrdiff_t>(i));
      cached_ -= bytes;
      note_live(bytes);
      return p;
    }
    void* p = nullptr;
    cudaError_t err = cudaHostAlloc(&p, bytes, cudaHostAllocPortable);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      DFX_FAIL("pinned_alloc: cudaHostAlloc of ", bytes, " bytes failed: ",
               cudaGetErrorString(err), " (", stats_.current_bytes,
               " bytes of pinned memory live)");
    }
    blocks_.emplace(p, PinnedBlock{bytes, {}});
    stats_.reserved_bytes += bytes;
    note_live(bytes);
    return p;
  }

  void free(void* ptr) {  // never throws
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = blocks_.find(ptr);
    if (it == blocks_.end()) {
      std::fprintf(stderr, "dfx: pinned_free: %p is not a pinned block; ignored\n", ptr);
      return;
    }
    stats_.current_bytes -= it->second.bytes;
    free_[it->second.bytes].push_back(ptr);
    cached_ += it->second.bytes;
  }

  // The block holding `ptr` (any address inside it), or nullptr.
  void* block_of(const void* ptr) {
    std::lock_guard<std::mutex> lock(mutex_);
    return block_of_locked(ptr);
  }

  // Records an event on `stream` (after the copy just queued there) on the block holding ptr.
  void note_use(const void* ptr, cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(mutex_);
    void* base = block_of_locked(ptr);
    if (!base) return;
    PinnedBlock& b = blocks_.at(base);
    events_done(b, /*wait=*/false);  // drop the completed ones
    cudaEvent_t e = nullptr;
    DFX_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    DFX_CUDA_CHECK(cudaEventRecord(e, stream));
    b.events.push_back(e);
  }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  void* block_of_locked(const void* ptr) {
    auto it = blocks_.upper_bound(const_cast<void*>(ptr));
    if (it == blocks_.begin()) return nullptr;
    --it;
    const char* base = static_cast<const char*>(it->first);
    const char* p = static_cast<const char*>(ptr);
    return p < base + it->second.bytes ? it->first : nullptr;
  }

  // Destroys completed events; true when none is left pending.
  static bool events_done(PinnedBlock& b, bool wait) {
    for (size_t i = 0; i < b.events.size();) {
      cudaError_t err = wait ? cudaEventSynchronize(b.events[i]) : cudaEventQuery(b.events[i]);
      if (err == cudaErrorNotReady) {
        (void)cudaGetLastError();
        ++i;
        continue;
      }
      if (err != cudaSuccess) (void)cudaGetLastError();
      (void)cudaEventDestroy(b.events[i]);
      b.events[i] = b.events.back();
      b.events.pop_back();
    }
    return b.events.empty();
  }

  void note_live(size_t bytes) {
    stats_.current_bytes += bytes;
    if (stats_.current_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.current_bytes;
  }

  std::mutex mutex_;
  std::map<void*, PinnedBlock> blocks_;                        // every block, by address
  std::unordered_map<size_t, std::vector<void*>> free_;        // size class -> free blocks
  size_t cached_ = 0;
  MemoryStats stats_;
};

PinnedAllocator& pinned() {
  static PinnedAllocator* a = new PinnedAllocator();  // never destroyed, like the device cache
  return *a;
}

cudaMemcpyKind native_kind(CopyKind kind) {
  return kind == CopyKind::HostToDevice   ? cudaMemcpyHostToDevice
         : kind == CopyKind::DeviceToHost ? cudaMemcpyDeviceToHost
                                          : cudaMemcpyDeviceToDevice;
}

const void* host_side(const void* dst, const void* src, CopyKind kind) {
  return kind == CopyKind::HostToDevice ? src : kind == CopyKind::DeviceToHost ? dst : nullptr;
}

// Pageable copies go through two pinned staging chunks: the host memcpy of one chunk overlaps
// the DMA of the other.
constexpr size_t kStagingChunk = size_t(4) << 20;
// Below this a pageable copy is handed to the driver as it is (it stages small copies itself,
// and a staging round trip costs more than it saves).
constexpr size_t kDirectPageable = size_t(256) << 10;

void staged_copy(void* dst, const void* src, size_t nbytes, CopyKind kind, cudaStream_t stream) {
  void* buf[2] = {pinned().allocate(kStagingChunk), pinned().allocate(kStagingChunk)};
  cudaEvent_t done[2] = {nullptr, nullptr};
  auto cleanup = [&] {
    for (int k = 0; k < 2; ++k) {
      if (done[k]) (void)cudaEventDestroy(done[k]);
      pinned().free(buf[k]);
    }
  };
  try {
    for (int k = 0; k < 2; ++k)
      DFX_CUDA_CHECK(cudaEventCreateWithFlags(&done[k], cudaEventDisableTiming));
    bool used[2] = {false, false};
    const char* s = static_cast<const char*>(src);
    char* d = static_cast<char*>(dst);
    size_t chunk_index = 0;
    // D2H: the host memcpy of chunk i-1 runs while the DMA of chunk i is queued.
    size_t prev_off = 0, prev_n = 0;
    for (size_t off = 0; off < nbytes; off += kStagingChunk, ++chunk_index) {
      const size_t n = std::min(kStagingChunk, nbytes - off);
      const int k = static_cast<int>(chunk_index % 2);
      if (used[k]) DFX_CUDA_CHECK(cudaEventSynchronize(done[k]));  // buffer k is free again
      if (kind == CopyKind::HostToDevice) {
        std::memcpy(buf[k], s + off, n);
        DFX_CUDA_CHECK(cudaMemcpyAsync(d + off, buf[k], n, cudaMemcpyHostToDevice, stream));
      } else {
        DFX_CUDA_CHECK(cudaMemcpyAsync(buf[k], s + off, n, cudaMemcpyDeviceToHost, stream));
      }
      DFX_CUDA_CHECK(cudaEventRecord(done[k], stream));
      used[k] = true;
      if (kind == CopyKind::DeviceToHost && chunk_index > 0) {
        const int j = 1 - k;
        DFX_CUDA_CHECK(cudaEventSynchronize(done[j]));
        std::memcpy(d + prev_off, buf[j], prev_n);
      }
      prev_off = off;
      prev_n = n;
    }
    if (kind == CopyKind::DeviceToHost && nbytes > 0) {
      const int k = static_cast<int>((chunk_index - 1) % 2);
      DFX_CUDA_CHECK(cudaEventSynchronize(done[k]));
      std::memcpy(d + prev_off, buf[k], prev_n);
    }
    DFX_CUDA_CHECK(cudaStreamSynchronize(stream));
  } catch (...) {
    (void)cudaStreamSynchronize(stream);
    cleanup();
    throw;
  }
  cleanup();
}

}  // namespace

int64_t host_waits() { return g_host_waits.load(std::memory_order_relaxed); }

void* pinned_alloc(size_t nbytes) { return pinned().allocate(nbytes); }
void pinned_free(void* ptr, size_t) { pinned().free(ptr); }
bool is_pinned(const void* ptr) { return pinned().block_of(ptr) != nullptr; }
MemoryStats pinned_memory_stats() { return pinned().stats(); }

// ---- transfers -----------------------------------------------------------------------------

void copy_bytes(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) {
  if (nbytes == 0) return;
  check_device_index(device, "copy_bytes");
  DeviceGuard guard(device);
  cudaStream_t stream = current_cuda_stream(device);
  const void* host = host_side(dst, src, kind);
  note_host_wait();
  if (host == nullptr || nbytes < kDirectPageable || is_pinned(host)) {
    DFX_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, native_kind(kind), stream));
    DFX_CUDA_CHECK(cudaStreamSynchronize(stream));
    return;
  }
  staged_copy(dst, src, nbytes, kind, stream);
}

void copy_bytes_async(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) {
  if (nbytes == 0) return;
  check_device_index(device, "copy_bytes_async");
  const void* host = host_side(dst, src, kind);
  DFX_CHECK(host == nullptr || is_pinned(host), "copy_bytes_async: the host side of a ",
            kind == CopyKind::HostToDevice ? "host-to-device" : "device-to-host",
            " copy of ", nbytes, " bytes is pageable memory; asynchronous copies need pinned "
            "memory (Tensor::pin_memory or cuda::pinned_alloc)");
  DeviceGuard guard(device);
  cudaStream_t stream = current_cuda_stream(device);
  DFX_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, native_kind(kind), stream));
  if (host) pinned().note_use(host, stream);
}

void synchronize(int device) {
  check_device_index(device, "synchronize");
  DeviceGuard guard(device);
  note_host_wait();
  DFX_CUDA_CHECK(cudaDeviceSynchronize());
}

// ---- strided copy and fill -----------------------------------------------------------------
namespace {

template <class D, class S>
__device__ __forceinline__ D convert(S v) {
  if constexpr (std::is_same_v<D, bool>) return v != S(0);
  else return static_cast<D>(v);
}

template <class D, class S, class Index>
__global__ void copy_kernel(D* dst, const S* src, StridedPlan<2> plan, Index n) {
  const Index step = static_cast<Index>(blockDim.x) * gridDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[2];
    strided_offsets<Index, 2>(plan, i, off);
    dst[off[0]] = convert<D>(src[off[1]]);
  }
}

template <class D, class Index>
__global__ void fill_kernel(D* dst, D value, StridedPlan<1> plan, Index n) {
  const Index step = static_cast<Index>(blockDim.x) * gridDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[1];
    strided_offsets<Index, 1>(plan, i, off);
    dst[off[0]] = value;
  }
}

template <class F>
void dispatch_dtype(DType t, const char* op, const Tensor& which, F&& f) {
  switch (t) {
    case DType::Float32: f(float{}); break;
    case DType::Float64: f(double{}); break;
    case DType::Int64: f(int64_t{}); break;
    case DType::Bool: f(bool{}); break;
    default: DFX_FAIL(op, ": dtype ", dtype_name(t), " has no CUDA kernel yet (", which.describe(),
                      ")");
  }
}

void check_on_cuda(const Tensor& t, const char* op) {
  DFX_CHECK(t.defined() && t.device().is_cuda(), op, ": expected a CUDA tensor, got ",
            t.describe());
}

}  // namespace

void copy_strided(const Tensor& dst, const Tensor& src) {
  check_on_cuda(dst, "copy_");
  check_on_cuda(src, "copy_");
  DFX_CHECK(dst.device() == src.device(), "copy_: ", dst.describe(), " and ", src.describe(),
            " are on different devices (cuda::copy_strided copies within one GPU)");
  const int64_t n = dst.numel();
  if (n == 0) return;
  Tensor s = src.expand(dst.shape());
  DeviceGuard guard(dst.device().index);
  // Same layout and dtype without aliasing: one driver copy beats a kernel.
  if (s.dtype() == dst.dtype() && s.is_contiguous() && dst.is_contiguous() &&
      s.shape() == dst.shape() && !s.shares_storage(dst)) {
    DFX_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), s.raw_data(), dst.nbytes(),
                                   cudaMemcpyDeviceToDevice, current_cuda_stream(dst.device().index)));
    return;
  }
  cudaStream_t stream = current_cuda_stream(dst.device().index);
  StridedPlan<2> plan = make_strided_plan<2>(dst.shape(), {&dst.strides(), &s.strides()});
  dispatch_dtype(dst.dtype(), "copy_", dst, [&](auto dz) {
    using D = decltype(dz);
    dispatch_dtype(s.dtype(), "copy_", src, [&](auto sz) {
      using S = decltype(sz);
      D* d = static_cast<D*>(dst.raw_data());
      const S* p = static_cast<const S*>(s.raw_data());
      if (fits_u32(n)) {
        copy_kernel<D, S, uint32_t><<<grid_for(n), kThreads, 0, stream>>>(d, p, plan, uint32_t(n));
      } else {
        copy_kernel<D, S, uint64_t><<<grid_for(n), kThreads, 0, stream>>>(d, p, plan, uint64_t(n));
      }
      DFX_CUDA_CHECK_LAUNCH(::dfx::detail::cat("copy_kernel<", dtype_name(dst.dtype()), " <- ",
                                               dtype_name(s.dtype()), ">"),
                            dst.shape());
    });
  });
}

void fill(const Tensor& dst, double value) {
  check_on_cuda(dst, "fill_");
  const int64_t n = dst.numel();
  if (n == 0) return;
  DeviceGuard guard(dst.device().index);
  cudaStream_t stream = current_cuda_stream(dst.device().index);
  StridedPlan<1> plan = make_strided_plan<1>(dst.shape(), {&dst.strides()});
  dispatch_dtype(dst.dtype(), "fill_", dst, [&](auto dz) {
    using D = decltype(dz);
    // Converted on the host exactly as the CPU fill converts, so both give the same bits.
    D v;
    if constexpr (std::is_same_v<D, bool>) v = value != 0.0;
    else v = static_cast<D>(value);
    D* d = static_cast<D*>(dst.raw_data());
    if (fits_u32(n)) {
      fill_kernel<D, uint32_t><<<grid_for(n), kThreads, 0, stream>>>(d, v, plan, uint32_t(n));
    } else {
      fill_kernel<D, uint64_t><<<grid_for(n), kThreads, 0, stream>>>(d, v, plan, uint64_t(n));
    }
    DFX_CUDA_CHECK_LAUNCH(::dfx::detail::cat("fill_kernel<", dtype_name(dst.dtype()), ">"),
                          dst.shape());
  });
}

}  // namespace dfx::cuda
