// core/cuda_runtime.h — the narrow door from core to the CUDA runtime. Implemented in
// core/cuda_runtime.cu when CUDA is built and in core/cuda_runtime_stub.cpp otherwise, so the rest
// of core compiles identically either way.
#pragma once
#include <cstddef>
#include <cstdint>
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
// Bytes a new allocation on `device` can still get: what the driver reports free plus what dfx's
// cache holds unused (reserved - live). 0 when not built or no such device.
size_t device_free_bytes(int device);
void reset_device_peak(int device);
// Returns every cached free block of `device` to the driver (reserved_bytes drops to
// current_bytes); live tensors are untouched.
void empty_cache(int device);

// ---- streams and events ------------------------------------------------------------------
// Every dfx kernel, cuBLAS/cuDNN call, NCCL call and copy runs on the *current stream* of its
// device: per host thread, the legacy default stream until set_current_stream/StreamGuard
// changes it (the PyTorch model). Handles are opaque here so that code without the CUDA headers
// can hold them; .cu files get the cudaStream_t through core/cuda_check.h.
class Stream {
 public:
  Stream() = default;  // the legacy default stream of cuda:0
  Stream(void* handle, int device) : handle_(handle), device_(device) {}
  static Stream default_stream(int device) { return Stream(nullptr, device); }
  // A new non-blocking stream on `device` (does not synchronise with the legacy default stream).
  // Streams are pooled for the life of the process: creating one is cheap after the first few.
  static Stream create(int device, bool high_priority = false);

  void* handle() const { return handle_; }
  int device() const { return device_; }
  bool is_default() const { return handle_ == nullptr; }
  void synchronize() const;  // host waits for all work queued on this stream
  bool query() const;        // true when all its work is done (never blocks)
  bool operator==(const Stream& o) const { return handle_ == o.handle_ && device_ == o.device_; }
  bool operator!=(const Stream& o) const { return !(*this == o); }

 private:
  void* handle_ = nullptr;
  int device_ = 0;
};

Stream current_stream(int device);
void set_current_stream(const Stream& s);  // for s.device(), on this host thread

// Makes `s` current for the scope and restores the previous current stream of its device.
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& s) : prev_(current_stream(s.device())) {
    set_current_stream(s);
  }
  ~StreamGuard() { set_current_stream(prev_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  Stream prev_;
};

// A CUDA event. The underlying cudaEvent_t is created on the first record(), on that stream's
// device. Timing events cost more; ask for them only to measure.
class Event {
 public:
  explicit Event(bool timing = false) : timing_(timing) {}
  ~Event();
  Event(Event&& o) noexcept;
  Event& operator=(Event&& o) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void record(const Stream& s);
  void record() { record(current_stream(device_)); }
  void wait(const Stream& s) const;  // work queued on s after this call waits for the event
  void synchronize() const;          // the host waits for the event
  bool query() const;                // true once the recorded work is done (or never recorded)
  // Milliseconds between this event and `end`; both must be timing events, recorded and complete.
  float elapsed_ms(const Event& end) const;
  bool recorded() const { return event_ != nullptr; }
  int device() const { return device_; }

 private:
  void* event_ = nullptr;
  int device_ = 0;
  bool timing_ = false;
};

// `t`'s device block is also used on stream `s` (not only the stream it was allocated on):
// when t's storage is freed, the allocator reuses the block only after the work queued on `s`
// up to now has finished. Needed for tensors handed to a side stream (NCCL, copies).
void record_stream(const Tensor& t, const Stream& s);

// ---- host waits ----------------------------------------------------------------------------
// How many times, since the process began, the host has waited for a device: synchronous copies
// to or from the host (a staged pageable copy counts once), Stream/Event/device synchronize, and
// the caching allocator's device-wide waits (cudaFree, waiting on pending frees). A training
// step makes none (tests/gpu/test_cuda_training.cpp). Always 0 without CUDA.
int64_t host_waits();

// ---- copies --------------------------------------------------------------------------------
enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };
// Synchronous byte copy, queued on the current stream of `device` and waited for. A pageable
// host side goes through a pinned staging buffer in chunks; a pinned host side goes directly.
void copy_bytes(void* dst, const void* src, size_t nbytes, CopyKind kind, int device);
// Queued on the current stream of `device` and not waited for: the host side must be pinned
// (pinned_alloc / Tensor::pin_memory) and must stay alive and untouched until the stream has
// passed the copy. Throws when the host side is pageable.
void copy_bytes_async(void* dst, const void* src, size_t nbytes, CopyKind kind, int device);
void synchronize(int device);

// ---- pinned (page-locked) host memory ------------------------------------------------------
// Page-locked host blocks (cudaHostAlloc), cached by size class like device blocks, so that
// host<->device copies run asynchronously at full bus speed. A block freed while an async copy
// that uses it is still queued is reused only after that copy's stream has passed it.
void* pinned_alloc(size_t nbytes);
void pinned_free(void* ptr, size_t nbytes);
bool is_pinned(const void* ptr);  // inside a live pinned block dfx handed out
MemoryStats pinned_memory_stats();

// Same-device strided copy with broadcasting and dtype conversion, and fill, on the GPU.
void copy_strided(const Tensor& dst, const Tensor& src);
void fill(const Tensor& dst, double value);

}  // namespace dfx::cuda
