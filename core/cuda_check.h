// core/cuda_check.h — error checks for CUDA runtime calls and kernel launches, and a scoped
// current-device switch. Include only from .cu files (it needs the CUDA runtime headers); every
// failure becomes a dfx::Error naming the call or kernel, file:line and CUDA's own message.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/cuda_runtime.h"
#include "core/error.h"

// Not `detail`: a dfx::cuda::detail would hide dfx::detail (cat, LoopPlan) inside dfx::cuda.
namespace dfx::cuda::check_impl {

inline void check(cudaError_t err, const char* call, const char* file, int line) {
  if (err == cudaSuccess) return;
  // Reset the runtime's last-error slot so an unrelated later check does not report this one
  // again (sticky errors such as an illegal address stay regardless).
  (void)cudaGetLastError();
  DFX_FAIL("CUDA call ", call, " failed at ", file, ":", line, ": ", cudaGetErrorString(err),
           " (", cudaGetErrorName(err), ")");
}

// Launch-configuration errors surface through cudaGetLastError right after the launch; faults
// inside the kernel surface at the next synchronising call, which is checked in turn.
[[noreturn]] inline void launch_failed(cudaError_t err, const std::string& kernel,
                                       const std::vector<int64_t>& shape, const char* file,
                                       int line) {
  DFX_FAIL("CUDA kernel ", kernel, " on shape ", shape, " failed to launch at ", file, ":", line,
           ": ", cudaGetErrorString(err), " (", cudaGetErrorName(err), ")");
}

}  // namespace dfx::cuda::check_impl

// DFX_CUDA_CHECK(cudaMalloc(&p, n)) throws dfx::Error with the call text on failure.
#define DFX_CUDA_CHECK(call) ::dfx::cuda::check_impl::check((call), #call, __FILE__, __LINE__)
// Right after kernel<<<...>>>(...): DFX_CUDA_CHECK_LAUNCH("fill_kernel<float32>", t.shape()).
// The name is only built when the launch failed, so it may be an expensive expression.
#define DFX_CUDA_CHECK_LAUNCH(kernel, shape)                                               \
  do {                                                                                     \
    cudaError_t dfx_launch_err_ = cudaGetLastError();                                      \
    if (dfx_launch_err_ != cudaSuccess)                                                    \
      ::dfx::cuda::check_impl::launch_failed(dfx_launch_err_, (kernel), (shape), __FILE__, \
                                             __LINE__);                                    \
  } while (0)

namespace dfx::cuda {

// Makes `device` current for the scope and restores the previous one, so dfx never leaves the
// embedding program on a different device than it found.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    DFX_CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != device) {
      DFX_CUDA_CHECK(cudaSetDevice(device));
      switched_ = true;
    }
  }
  ~DeviceGuard() {
    if (switched_) (void)cudaSetDevice(prev_);  // destructors must not throw
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool switched_ = false;
};

// The cudaStream_t behind a dfx Stream, and the current stream of `device` on this host thread
// (core/cuda_runtime.h): every launch, library call and copy in dfx goes there.
inline cudaStream_t native(const Stream& s) { return static_cast<cudaStream_t>(s.handle()); }
inline cudaStream_t current_cuda_stream(int device) { return native(current_stream(device)); }

// The stream every kernel launch, memset and library call in kernels/cuda goes to: the current
// stream of the current device. Entry points hold a DeviceGuard for their tensors' device, so
// the current device is theirs.
inline cudaStream_t launch_stream() {
  int device = 0;
  check_impl::check(cudaGetDevice(&device), "cudaGetDevice", __FILE__, __LINE__);
  return current_cuda_stream(device);
}

}  // namespace dfx::cuda
