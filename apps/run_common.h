// apps/run_common.h — what train, eval and bench share: the options of a run (typed,
// train/options.h), the devices, communicator, model and optimiser they describe, checkpoints
// holding both (plus the resolved config), threads, and small file helpers (atomic JSON writes).
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "dist/communicator.h"
#include "dist/threads.h"
#include "models/unet.h"
#include "optim/optimizer.h"
#include "optim/registry.h"
#include "optim/schedule.h"
#include "pde/problem.h"
#include "train/checkpoint.h"
#include "train/options.h"
#include "train/trainer.h"

namespace dfx::app {
using pde::make_problem;
using pde::Problem;
using pde::ProblemOptions;
using train::ensure_directory;
using train::load_run_checkpoint;
using train::LoadedCheckpoint;
using train::read_checkpoint_metadata;
using train::save_run_checkpoint;
using train::write_text_atomic;
using train::RunOptions;
using train::TrainOptions;
using train::apply_optimizer_defaults;
using train::model_config;
using train::optimizer_config;
using train::problem_options;
using train::run_dtype;
using train::schedule_config;

// --device, checked against the devices present. Plain "cuda" (no index) is
// cuda:(local_rank % device count), so the ranks of one host spread over its GPUs; "cuda:N" is
// cuda:N on every rank. Also applies --tf32, --amx-bf16 and --conv-backend.
Device run_device(const RunOptions& o, int local_rank = 0);

// The communicator of `dfx train --comm` and this rank's --device (docs/distributed.md):
// local: this process alone; mpi: MPI (device tensors staged through host memory); nccl: NCCL
// on the rank's GPU, bootstrapped over MPI under a launcher (Local otherwise), needs --device
// cuda; auto: NCCL when launched by MPI with --device cuda, dfx has NCCL and every rank of each
// host gets its own GPU, else MPI under a launcher, else Local.
struct RunComm {
  std::shared_ptr<dist::Communicator> comm;
  Device device;
};
RunComm make_run_comm(const TrainOptions& o);
// Threads of OpenMP and OpenBLAS (dist/threads.h): --threads, else OMP_NUM_THREADS, else the
// cores of this rank's affinity mask shared among the ranks on its host. Collective on `comm`
// (a local communicator when null).
dist::ThreadChoice apply_threads(int64_t threads, dist::Communicator* comm = nullptr);

// The U-Net of --depth/--width/--dtype/--seed, on --device (or on `device`).
std::shared_ptr<nn::UNet> build_model(const RunOptions& o, int dims);
// `grown`: levels a --grow-depth run added at the top (a checkpoint's "grown_levels").
std::shared_ptr<nn::UNet> build_model(const RunOptions& o, int dims, Device device, int grown = 0);
std::unique_ptr<optim::Optimizer> build_optimizer(const RunOptions& o, std::vector<ad::Var> params);

double seconds_since(const std::chrono::steady_clock::time_point& t0);
std::string format_duration(double seconds);

}  // namespace dfx::app
