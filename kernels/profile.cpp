// kernels/profile.cpp — the per-kernel timer behind KernelProfileScope (see kernels/profile.h).
#include "kernels/profile.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "core/cuda_runtime.h"

namespace dfx::kernels {
namespace {

std::atomic<bool> g_enabled{[] {
  const char* e = std::getenv("DFX_KERNEL_PROFILE");
  return e && *e && std::string(e) != "0";
}()};

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

struct Totals {
  int64_t calls = 0;
  double ms = 0.0;
};

// A GPU call whose events have not been read yet.
struct Pending {
  std::string key_name;
  std::string device;
  cuda::Event start{true};
  cuda::Event stop{true};
};

struct Profile {
  std::mutex mu;
  std::map<std::pair<std::string, std::string>, Totals> totals;  // (name, device) -> totals
  std::map<int, Pending> pending;                                 // GPU slots
  int next_slot = 0;

  // Folds completed (or, with wait, all) GPU records into the totals. Caller holds mu.
  void drain(bool wait) {
    for (auto it = pending.begin(); it != pending.end();) {
      Pending& p = it->second;
      if (!p.stop.recorded()) {  // still open
        ++it;
        continue;
      }
      if (!wait && !p.stop.query()) {
        ++it;
        continue;
      }
      p.stop.synchronize();
      Totals& t = totals[{p.key_name, p.device}];
      t.calls += 1;
      t.ms += p.start.elapsed_ms(p.stop);
      it = pending.erase(it);
    }
  }
};

Profile& profile() {
  static Profile* p = new Profile();  // never destroyed: scopes may close during exit
  return *p;
}

std::string key(const char* name, const char* detail) {
  // DFX_BACKEND passes its call text, "conv(x.contiguous(), ...)": keep the function name.
  const char* paren = std::strchr(name, '(');
  std::string k = paren ? std::string(name, paren) : std::string(name);
  if (detail && *detail) k += std::string(":") + detail;
  return k;
}

}  // namespace

bool kernel_profiling() { return g_enabled.load(std::memory_order_relaxed); }
void set_kernel_profiling(bool on) { g_enabled.store(on); }

void KernelProfileScope::begin(const Tensor& like, const char* name, const char* detail) {
  device_ = like.defined() ? like.device() : Device::cpu();
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mu);
  if (device_.is_cuda()) {
    // Many GPU records pile up between reports: fold the finished ones in as we go.
    if (p.pending.size() > 4096) p.drain(/*wait=*/false);
    slot_ = p.next_slot++;
    Pending& rec = p.pending[slot_];
    rec.key_name = key(name, detail);
    rec.device = device_.str();
    rec.start.record(cuda::current_stream(device_.index));
  } else {
    key_ = key(name, detail);
    t0_ = now_ms();
  }
  active_ = true;
}

void KernelProfileScope::end() noexcept {
  Profile& p = profile();
  const double t1 = device_.is_cuda() ? 0.0 : now_ms();
  try {
    std::lock_guard<std::mutex> lock(p.mu);
    if (device_.is_cuda()) {
      auto it = p.pending.find(slot_);
      if (it != p.pending.end()) it->second.stop.record(cuda::current_stream(device_.index));
    } else {
      Totals& t = p.totals[{key_, "cpu"}];
      t.calls += 1;
      t.ms += t1 - t0_;
    }
  } catch (...) {
    // A failing device shows up in the kernel's own error; the profile just loses this call.
  }
}

std::vector<KernelTiming> kernel_profile() {
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mu);
  p.drain(/*wait=*/true);
  std::vector<KernelTiming> out;
  for (const auto& [k, t] : p.totals) out.push_back({k.first, k.second, t.calls, t.ms});
  std::sort(out.begin(), out.end(),
            [](const KernelTiming& a, const KernelTiming& b) { return a.total_ms > b.total_ms; });
  return out;
}

void reset_kernel_profile() {
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mu);
  p.drain(/*wait=*/true);
  p.totals.clear();
}

void print_kernel_profile(std::FILE* out) {
  const std::vector<KernelTiming> rows = kernel_profile();
  double all = 0.0;
  for (const KernelTiming& r : rows) all += r.total_ms;
  std::fprintf(out, "%-32s %-7s %8s %11s %10s %6s\n", "kernel", "device", "calls", "total ms",
               "ms/call", "share");
  for (const KernelTiming& r : rows) {
    std::fprintf(out, "%-32s %-7s %8lld %11.3f %10.4f %5.1f%%\n", r.name.c_str(),
                 r.device.c_str(), static_cast<long long>(r.calls), r.total_ms,
                 r.calls ? r.total_ms / static_cast<double>(r.calls) : 0.0,
                 all > 0 ? 100.0 * r.total_ms / all : 0.0);
  }
}

}  // namespace dfx::kernels
