// kernels/profile.h — per-kernel timings: every kernel entry point (conv, gemm, elementwise,
// reductions, batch norm, pooling, FEM) opens a KernelProfileScope; when profiling is on it times
// the call, on the CPU with a steady clock and on a GPU with a pair of CUDA timing events on the
// current stream (read only at report time, so profiling adds no host synchronisation to the
// step). Off by default; DFX_KERNEL_PROFILE=1 or set_kernel_profiling(true) turns it on.
// Times are inclusive: an entry point that calls another (conv adding its bias through an
// elementwise op, say) counts that call's time too.
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dfx::kernels {

bool kernel_profiling();
void set_kernel_profiling(bool on);

struct KernelTiming {
  std::string name;    // entry point, e.g. "conv", "unary:leaky_relu"
  std::string device;  // "cpu", "cuda:0"
  int64_t calls = 0;
  double total_ms = 0.0;
};

// Totals since the last reset, largest first. Waits for the GPU events still pending.
std::vector<KernelTiming> kernel_profile();
void reset_kernel_profile();
// A table of kernel_profile() (name, device, calls, total ms, ms per call, share of the total).
void print_kernel_profile(std::FILE* out);

// Times its own lifetime as one call of `name` (+ ":" + `detail` when given) on `like`'s device.
// `name` is an entry-point name or a DFX_BACKEND call text (cut at the first '(').
class KernelProfileScope {
 public:
  KernelProfileScope(const Tensor& like, const char* name, const char* detail = nullptr) {
    if (kernel_profiling()) begin(like, name, detail);
  }
  ~KernelProfileScope() {
    if (active_) end();
  }
  KernelProfileScope(const KernelProfileScope&) = delete;
  KernelProfileScope& operator=(const KernelProfileScope&) = delete;

 private:
  void begin(const Tensor& like, const char* name, const char* detail);
  void end() noexcept;
  bool active_ = false;
  int slot_ = -1;  // the pending GPU record
  std::string key_;  // CPU: the totals' name
  Device device_;
  double t0_ = 0.0;
};

}  // namespace dfx::kernels
