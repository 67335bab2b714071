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
std::string device_name(int) { return "none"; }
void* device_alloc(size_t, int) { not_built("device_alloc"); }
void device_free(void*, size_t, int) {}
MemoryStats device_memory_stats(int) { return {}; }
void reset_device_peak(int) {}
void empty_cache(int) {}
void copy_bytes(void*, const void*, size_t, CopyKind, int) { not_built("copy_bytes"); }
void synchronize(int) {}
void copy_strided(const Tensor&, const Tensor&) { not_built("copy_"); }
void fill(const Tensor&, double) { not_built("fill_"); }

}  // namespace dfx::cuda
