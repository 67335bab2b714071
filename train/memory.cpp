// train/memory.cpp — the pre-flight memory estimate (see memory.h).
#include "train/memory.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/cuda_runtime.h"
#include "models/module.h"
#include "optim/registry.h"
#include "pde/problem.h"
#include "train/trainer.h"

namespace dfx::train {
namespace {

// Calibration (float32, depth 4, width 16, batch 4 and 8, Adam, peak RSS): the backward keeps
// about 26 feature maps of `width` channels per grid node and sample (30 at N = 64, 27 at 128,
// 25 at 256); --bn-recompute keeps 0.7 of that, --activation-checkpoint 0.85, the second-order
// optimisers (a graph kept for Hessian-vector products) about 3x; the process itself ~30 MB plus
// ~700 bytes per node of problem data.
constexpr double kMapsPerNode = 26;
constexpr double kBaseBytes = 30e6, kBasePerNode = 700;

double optimizer_slots(const std::string& name, int history) {
  if (name == "sgd" || name == "lars") return 1;
  if (name == "adam" || name == "adamw" || name == "lamb") return 2;
  if (name == "lbfgs") return 2.0 * history + 2;
  if (name == "adahessian") return 3;
  return 4;  // newton-cg, gauss-newton: CG vectors
}

}  // namespace

MemoryEstimate estimate_memory(const TrainConfig& cfg, const nn::Module& model,
                               const pde::Problem& problem, int ranks, bool root) {
  MemoryEstimate e;
  const double bytes = static_cast<double>(dtype_size(cfg.model.dtype));
  const double params = static_cast<double>(model.num_parameters());
  double nodes = 1;
  for (int64_t d : problem.field_shape(1)) nodes *= static_cast<double>(d);
  e.weights = 3 * params * bytes;  // values, gradients, buckets
  e.optimizer = optimizer_slots(cfg.optimizer.name, cfg.optimizer.history_size) * params * bytes;
  e.local_batch = (cfg.batch + ranks - 1) / ranks;
  double per_sample = kMapsPerNode * static_cast<double>(cfg.model.width) * nodes * bytes;
  if (cfg.model.bn_recompute) per_sample *= 0.7;
  if (cfg.model.activation_checkpoint) per_sample *= 0.85;
  if (optim::optimizer_info(cfg.optimizer.name).second_order) per_sample *= 3;
  e.activations = per_sample * static_cast<double>(e.local_batch);
  if (root) e.held_out = 3 * 8 * nodes * static_cast<double>(cfg.eval_samples);
  e.base = kBaseBytes + kBasePerNode * nodes;
  return e;
}

double available_memory_bytes(Device device) {
  if (device.is_cuda()) {
    const size_t free_b = cuda::device_free_bytes(device.index);
    return free_b > 0 ? static_cast<double>(free_b) : -1.0;
  }
  if (!device.is_cpu()) return -1;
  double avail = -1;
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (in >> key >> kb) {
    std::getline(in, unit);
    if (key == "MemAvailable:") {
      avail = kb * 1024;
      break;
    }
  }
  // A cgroup (container, batch job) may allow less than the machine has free.
  std::ifstream max_in("/sys/fs/cgroup/memory.max"), cur_in("/sys/fs/cgroup/memory.current");
  std::string max_s;
  double cur = 0;
  if (max_in >> max_s && max_s != "max" && cur_in >> cur) {
    const double left = std::stod(max_s) - cur;
    if (avail < 0 || left < avail) avail = left;
  }
  return avail;
}

std::string format_bytes(double b) {
  char buf[32];
  if (b >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f GiB", b / (1024.0 * 1024 * 1024));
  else std::snprintf(buf, sizeof buf, "%.0f MiB", b / (1024.0 * 1024));
  return buf;
}

void check_memory(const TrainConfig& cfg, const nn::Module& model, const pde::Problem& problem,
                  int ranks, int ranks_on_host, bool root) {
  const bool gpu = model.device().is_cuda();
  const double avail = available_memory_bytes(model.device());
  if (avail <= 0) return;
  // A GPU is one rank's (one device per rank); host memory is shared by the host's ranks. On a
  // GPU only the model, its state and the activations live there.
  const double share = gpu ? avail : avail / std::max(ranks_on_host, 1);
  const MemoryEstimate e = estimate_memory(cfg, model, problem, ranks, root);
  const double need = gpu ? e.weights + e.optimizer + e.activations : e.total();
  if (need <= 0.9 * share) return;
  std::ostringstream os;
  os << "this run needs about " << format_bytes(need) << " of " << (gpu ? model.device().str() + " " : "")
     << "memory per rank (activations "
     << format_bytes(e.activations) << " for a local batch of " << e.local_batch << " at N="
     << problem.options().res << ", weights and gradients " << format_bytes(e.weights)
     << ", optimiser state " << format_bytes(e.optimizer);
  if (e.held_out > 0) os << ", held-out fields " << format_bytes(e.held_out);
  os << "), but only " << format_bytes(share) << " is free"
     << (ranks_on_host > 1 ? " per rank (" + std::to_string(ranks_on_host) + " ranks on this host)" : "")
     << ". Lower it with a smaller --batch (activations scale with it), more ranks (each keeps "
        "batch/ranks samples), --bn-recompute (about 30% fewer activation bytes), "
        "--activation-checkpoint, a smaller --width or --res; --check-memory false skips this "
        "estimate";
  DFX_FAIL(os.str());
}

}  // namespace dfx::train
