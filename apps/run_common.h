// apps/run_common.h — what train, eval and bench share: the options of a run, the model and
// optimiser they describe, checkpoints holding both (plus the resolved config), threads, and
// small file helpers (atomic JSON writes).
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/options.h"
#include "apps/problem.h"
#include "dist/communicator.h"
#include "models/unet.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"

namespace dfx::app {

// Options describing the problem, the network and the optimiser (train, eval, bench).
std::vector<OptionSpec> run_option_specs();
ProblemOptions problem_options(const Options& o);
DType run_dtype(const Options& o);
// --device, checked against the devices present. Plain "cuda" (no index) is
// cuda:(local_rank % device count), so the ranks of one host spread over its GPUs; "cuda:N" is
// cuda:N on every rank. Also applies --tf32 and --conv-backend.
Device run_device(const Options& o, int local_rank = 0);

// The communicator of `dfx train --comm` and this rank's --device (docs/distributed.md):
// local: this process alone; mpi: MPI (device tensors staged through host memory); nccl: NCCL
// on the rank's GPU, bootstrapped over MPI under a launcher (Local otherwise), needs --device
// cuda; auto: NCCL when launched by MPI with --device cuda, dfx has NCCL and every rank of each
// host gets its own GPU, else MPI under a launcher, else Local.
struct RunComm {
  std::shared_ptr<dist::Communicator> comm;
  Device device;
};
RunComm make_run_comm(const Options& o);
void apply_threads(int64_t threads);  // OpenMP and OpenBLAS; 0 keeps the defaults

// The U-Net of --depth/--width/--dtype/--seed, on --device (or on `device`).
std::shared_ptr<nn::UNet> build_model(const Options& o, int dims);
std::shared_ptr<nn::UNet> build_model(const Options& o, int dims, Device device);
void apply_optimizer_defaults(Options& o);  // --lr default per method when not given
std::unique_ptr<optim::Optimizer> build_optimizer(const Options& o, std::vector<ad::Var> params);
optim::Schedule build_schedule(const Options& o, int64_t total_steps);

// Model state (PyTorch state_dict names), optimiser state under "optim.", and metadata
// {"config": resolved options JSON, "step", "epoch"}, written atomically.
void save_run_checkpoint(const std::string& path, const nn::Module& model,
                         const optim::Optimizer* opt, const nlohmann::json& config, int64_t step,
                         int64_t epoch);
struct LoadedCheckpoint {
  nlohmann::json config;
  int64_t step = 0, epoch = 0;
};
// Reads only the metadata (to rebuild the model before loading weights).
LoadedCheckpoint read_checkpoint_metadata(const std::string& path);
// Loads weights into `model` (strict: names, shapes) and, when given, the optimiser state.
LoadedCheckpoint load_run_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer* opt);

void write_text_atomic(const std::string& path, const std::string& text);
void ensure_directory(const std::string& dir);  // creates it (and parents); throws if not writable

double seconds_since(const std::chrono::steady_clock::time_point& t0);
std::string format_duration(double seconds);

}  // namespace dfx::app
