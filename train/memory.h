// train/memory.h — the pre-flight memory estimate of a run: model, optimiser state, activations
// per sample times this rank's share of the batch, and the held-out fields, against what the
// machine has free, so a run that cannot fit stops at once with a message instead of meeting the
// out-of-memory killer hours later. The coefficients are calibrated on measured peak RSS of
// `dfx train`: within 30 % for W1 at N = 64/128/256/512, width 32, L-BFGS, --bn-recompute, Poisson
// 3D at N = 32 and Burgers at N = 128 (estimate 98/270/958/3713, 297, 560, 696, 300, 270 MB;
// measured 91/253/900/3471, 305, 495, 661, 238, 260 MB; batch 8 or 4, one thread).
#pragma once
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace dfx::nn { class Module; }
namespace dfx::pde { class Problem; }

namespace dfx::train {

struct TrainConfig;

struct MemoryEstimate {
  double weights = 0;      // parameters, gradients, all-reduce buckets
  double optimizer = 0;    // the optimiser's per-parameter state
  double activations = 0;  // what the backward keeps, for the local batch
  double held_out = 0;     // held-out fields and their references (rank 0)
  double base = 0;         // the process itself (library, problem data)
  int64_t local_batch = 0;
  double total() const { return weights + optimizer + activations + held_out + base; }
};

MemoryEstimate estimate_memory(const TrainConfig& cfg, const nn::Module& model,
                               const pde::Problem& problem, int ranks, bool root);
// Bytes free for this process on `device`: MemAvailable of /proc/meminfo (and the cgroup's
// limit when lower) on the CPU; on a CUDA device the driver's free bytes plus dfx's unused cache;
// < 0 when unknown.
double available_memory_bytes(Device device);
std::string format_bytes(double bytes);  // "1.5 GiB"
// Throws, naming the estimate, what is free and the flags that lower it, when the estimate of a
// rank exceeds its share (`ranks_on_host` ranks share one host's memory) of the free memory.
void check_memory(const TrainConfig& cfg, const nn::Module& model, const pde::Problem& problem,
                  int ranks, int ranks_on_host, bool root);

}  // namespace dfx::train
