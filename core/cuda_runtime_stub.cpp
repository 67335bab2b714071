// core/cuda_runtime_stub.cpp — the CUDA door when dfx is built without CUDA: reports no devices
// and turns every request for device memory or device work into a clear error.
#include "core/cuda_runtime.h"

namespace dfx::cuda {

namespace {
[[noreturn]] void not_built(const char* what) {
  DFX_FAIL(what, ": dfx was built without CUDA (configure with -Dcuda=enabled where nvcc exists)");
}
}  // namespace

bool is_built() { return false; }
int device_count() { return 0; }
int64_t host_waits() { return 0; }
std::string device_name(int) { return "none"; }
void* device_alloc(size_t, int) { not_built("device_alloc"); }
void device_free(void*, size_t, int) {}
MemoryStats device_memory_stats(int) { return {}; }
size_t device_free_bytes(int) { return 0; }
void reset_device_peak(int) {}
void empty_cache(int) {}
Stream Stream::create(int, bool) { not_built("Stream::create"); }
void Stream::synchronize() const {}
bool Stream::query() const { return true; }
Stream current_stream(int device) { return Stream::default_stream(device); }
void set_current_stream(const Stream& s) {
  if (!s.is_default()) not_built("set_current_stream");
}
Event::~Event() = default;
Event::Event(Event&& o) noexcept = default;
Event& Event::operator=(Event&& o) noexcept = default;
void Event::record(const Stream&) { not_built("Event::record"); }
void Event::wait(const Stream&) const {}
void Event::synchronize() const {}
bool Event::query() const { return true; }
float Event::elapsed_ms(const Event&) const { not_built("Event::elapsed_ms"); }
void record_stream(const Tensor&, const Stream&) {}
void copy_bytes(void*, const void*, size_t, CopyKind, int) { not_built("copy_bytes"); }
void copy_bytes_async(void*, const void*, size_t, CopyKind, int) {
  not_built("copy_bytes_async");
}
void* pinned_alloc(size_t) { not_built("pinned_alloc"); }
void pinned_free(void*, size_t) {}
bool is_pinned(const void*) { return false; }
MemoryStats pinned_memory_stats() { return {}; }
void synchronize(int) {}
void copy_strided(const Tensor&, const Tensor&) { not_built("copy_"); }
void fill(const Tensor&, double) { not_built("fill_"); }

}  // namespace dfx::cuda
