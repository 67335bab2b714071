// train/trainer.h — data-free training as a library object. A Trainer is built from a typed
// TrainConfig, a model, a problem and a communicator (the user's, MPI_COMM_WORLD's or a local
// one) and owns everything a run does between them: exact sharding of each global batch, the
// bucketed gradient all-reduce overlapped with backward, SyncBatchNorm wiring, the optimiser
// (by name, optim/registry.h) and its schedule, atomic checkpoints and bit-for-bit resume,
// held-out evaluation, the time budget and the all-ranks NaN stop. What the user wants to see
// arrives through callbacks; `dfx train` is this class plus its progress line, metrics.jsonl and
// pictures (apps/cmd_train.cpp).
//
//   auto problem = dfx::pde::make_problem({.name = "poisson2d", .res = 64});
//   dfx::train::TrainConfig cfg;  cfg.steps = 500;
//   auto model = dfx::train::build_unet(cfg.model, problem->dims(), dfx::Device::cpu());
//   dfx::train::Trainer t(cfg, model, std::move(problem), dfx::dist::make_default());
//   t.callbacks().on_step = [](const dfx::train::StepInfo& s) { ... };
//   t.fit();
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "dist/data_parallel.h"
#include "models/unet.h"
#include "optim/registry.h"
#include "optim/schedule.h"
#include "pde/problem.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"

namespace dfx::train {

struct ModelConfig {
  int depth = 4;
  int64_t width = 16;
  DType dtype = DType::Float32;
  uint64_t seed = 0;
  bool channels_last = false;
  bool bn_recompute = false;           // first-order optimisers only
  bool activation_checkpoint = false;  // first-order optimisers only
  int grown = 0;  // levels grown at the top (nn::UNetOptions::grown; a grown run's checkpoints)
};

// Multigrid (coarse-to-fine) training: the same fully convolutional weights trained on the
// problem at a hierarchy of resolutions, visited in the order of a multigrid cycle (Balu et al.,
// SC21). Levels are listed coarsest first; level i visited once runs steps[i] optimiser steps
// with the schedule's rate times lr_factor[i]. The global step alone decides the level, so a
// resumed run continues mid-cycle bit for bit.
enum class Cycle {
  HalfV,  // coarse to fine once: 0, 1, ..., n-1
  V,      // fine to coarse to fine: n-1, ..., 0, ..., n-1
  W,      // W(k) = k, W(k-1), W(k-1), k (coarse levels visited twice per visit of the next)
  F,      // full multigrid: coarsest, then each finer level reached by a V-cycle below it
};
Cycle parse_cycle(const std::string& name);  // half-v | v | w | f
const char* cycle_name(Cycle c);
// Level indices (0 = coarsest) visited by one cycle over n levels, repeated visits collapsed.
std::vector<int> cycle_levels(int n, Cycle c);

struct Level {
  int64_t res;
  int64_t steps;
  double lr_factor = 1;
};

// Levels from their text form, "32,64,128" with steps "400" (one for all) or "400,400,800" and
// optional lr factors alike; `names` spell the three settings in errors as the caller's user
// knows them ({"--levels", "--level-steps", "--level-lr"} or the JSON keys). Empty levels: none.
std::vector<Level> parse_levels(const std::string& levels, const std::string& steps,
                                const std::string& lr_factors, const std::vector<std::string>& names);
// "1000,1500" as step numbers (the multistep schedule's milestones); `name` as in parse_levels.
std::vector<int64_t> parse_step_list(const std::string& text, const std::string& name);

// One stretch of consecutive steps at one level.
struct Phase {
  int level;
  int64_t res, begin, steps;  // global steps [begin, begin + steps)
  double lr_factor;
  int depth;                  // of the U-Net during it (grows with the level under grow_depth)
};

struct TrainConfig {
  ModelConfig model;
  optim::OptimizerConfig optimizer;
  // kind, min_lr, gamma, step_size, milestones, warmup_steps; base_lr and total_steps are set
  // from the optimiser's rate and the run's length.
  optim::Schedule schedule;
  int64_t batch = 8;              // global batch, split over the ranks
  int64_t steps = 0;              // 0: epochs * ceil(samples / batch)
  int64_t epochs = 1;
  int64_t samples = 256;          // training fields per epoch (indices 0 .. samples-1)
  uint64_t seed = 0;              // of the epoch order (the problem has its own for the fields)
  std::string out;                // run directory for config.json and checkpoints ("": none);
                                  // locked (out/.lock) while the Trainer lives
  int64_t checkpoint_every = 0;   // steps between checkpoints (0: only at the end)
  int64_t keep_checkpoints = 3;   // newest step_*.safetensors kept (0: all); last.* always
  std::string resume;             // checkpoint to continue from (weights, optimiser state, step)
  int64_t eval_samples = 8;       // held-out fields evaluated at the end (0: none)
  int64_t eval_every = 0;         // steps between held-out evaluations (0: end only)
  double max_time = 0;            // seconds of training (evaluations excluded); 0: no limit
  // Also evaluated with the held-out fields: training fields 0..K-1 (their error beside the
  // held-out one separates optimisation from generalisation). 0: none.
  int64_t eval_train_samples = 0;
  // Precise BN at the end: the running BN statistics re-estimated as the mean batch moments
  // over this many training batches at the final weights, before the last checkpoint and
  // evaluation (0: keep the exponential averages of training).
  int64_t precise_bn_batches = 0;
  double bucket_mb = 25;          // gradient all-reduce bucket size
  bool sync_bn = true;            // batch-norm moments over the global batch when P > 1
  bool overlap = true;            // all-reduce buckets during backward
  // First-order methods move along J^T B dL/du, B the problem's output-space preconditioner
  // (pde::Problem::preconditioner; Poisson: a multigrid V-cycle on K(nu)) instead of J^T dL/du.
  // The loss, its minimiser and what is logged stay the problem's own.
  bool output_precondition = false;
  // ... plus this multiple of the plain output gradient: J^T (B + c I) dL/du. With B ~ K^-1 the
  // optimiser then sees the error in the norm e^T (I + c K) e (an H1-like norm for c > 0)
  // rather than in L2 alone, which leaves grid-scale roughness cheap.
  double output_blend = 0.1;
  // V-cycles per application of B (1: the measured default; more bring B closer to K^-1).
  int output_vcycles = 1;
  // SIGINT/SIGTERM stop the run after the current step (train/signals.h): the handlers are
  // installed for the duration of train(); every rank stops at the same step, a checkpoint is
  // written to out/checkpoints/last.safetensors (when `out` is set) and train() returns
  // StopReason::Interrupted. A second signal ends the process at once. Without this option a
  // host's own handler may call train::request_stop() for the same effect.
  bool stop_on_signal = false;
  // Before anything is allocated or written: refuse a run whose estimated memory (train/memory.h)
  // exceeds what its host has free.
  bool check_memory = true;
  // Multigrid training: empty = one level at the problem's resolution for `steps`. Otherwise the
  // finest level must be the problem's resolution (held-out evaluation runs there), and the run
  // lasts the cycles' steps (`steps` must then be 0 or equal to their sum).
  std::vector<Level> levels;
  Cycle cycle = Cycle::HalfV;
  int cycles = 1;
  // The U-Net grows one level at the top per level of the schedule (nn::grow_unet): level k
  // trains depth model.depth + k, so every old level keeps the grid spacing it was trained at.
  // Needs a half-V cycle run once over levels that double in resolution. The model given to
  // the Trainer is the coarsest level's; model() is replaced at each growth, and the optimiser's
  // state starts afresh for the grown parameters. Checkpoints record "grown_levels" (dfx eval
  // rebuilds the network from it); a resumed run grows to its step's depth before loading.
  bool grow_depth = false;
  // Stored as the "config" of config.json and of every checkpoint (the command line puts its
  // resolved options here); the trainer adds "ranks" and "backend".
  nlohmann::json record = nlohmann::json::object();
};

// The W1-W3 U-Net of `m` for a problem of `dims` spatial dimensions, on `device` (initialised on
// the CPU, so the same weights anywhere). Checks depth, width and the optimiser's needs.
std::shared_ptr<nn::UNet> build_unet(const ModelConfig& m, int dims, Device device,
                                     const std::string& optimizer = "adam");
// Throws unless `res` is divisible by 2^(depth-1).
void check_resolution(const ModelConfig& m, int64_t res);

struct StepInfo {
  int64_t step;         // 1-based, after the step
  int64_t res;          // the resolution it trained at
  int64_t total_steps, start_step, epoch;
  double loss;          // global loss of the step
  double time_s;        // wall time of the step
  double elapsed_s;     // training time so far (evaluations excluded)
  double samples_per_s, lr, comm_wait_s;
};

struct EvalInfo {
  int64_t step;
  double train_time_s, epochs;
  const EvalResult& result;
  const EvalResult* train = nullptr;  // the training fields' (eval_train_samples > 0)
};

struct Callbacks {
  std::function<void(const StepInfo&)> on_step;
  std::function<void(const EvalInfo&)> on_eval;         // periodic evaluations (eval_every)
  std::function<void(const std::string& path)> on_checkpoint;
};

// NonFinite: a non-finite loss, or non-finite weights found before a checkpoint would hold them.
// Interrupted: a stop request (a signal or train::request_stop()) on any rank.
enum class StopReason { Done, Paused, TimeBudget, NonFinite, Interrupted };

struct TrainResult {
  StopReason reason = StopReason::Done;
  int64_t steps_done = 0;     // optimiser steps taken in total, resumed ones included
  double last_loss = 0;
  // The newest checkpoint whose weights then gave a finite loss (the next step's), or the one
  // resumed from; never one that led to the non-finite loss.
  std::string last_good_checkpoint;
  std::string checkpoint;            // Interrupted: the checkpoint written at the stop
  int signal = 0;                    // Interrupted: the signal asked for (the largest over ranks)
};

class Trainer {
 public:
  Trainer(TrainConfig config, std::shared_ptr<nn::Module> model,
          std::shared_ptr<pde::Problem> problem, std::shared_ptr<dist::Communicator> comm);
  ~Trainer();

  Callbacks& callbacks() { return callbacks_; }
  // Runs until the schedule's end, the time budget or a non-finite loss; then finish().
  TrainResult fit();
  // Up to `max_steps` more steps (fewer at the end, the time budget or a non-finite loss).
  TrainResult train(int64_t max_steps);
  // The final checkpoint (when `out` is set) and the final held-out evaluation (rank 0).
  void finish();

  const TrainConfig& config() const { return cfg_; }
  nn::Module& model() { return *model_; }
  const pde::Problem& problem() const { return *problem_; }
  dist::Communicator& comm() { return *comm_; }
  optim::Optimizer& optimizer() { return *opt_; }
  int64_t step() const { return step_; }
  int64_t total_steps() const { return total_steps_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  // The multigrid phases (one phase at the problem's resolution without levels), and the one
  // global step `step` (0-based) belongs to.
  const std::vector<Phase>& phases() const { return phases_; }
  const Phase& phase_at(int64_t step) const;
  double last_loss() const { return last_loss_; }
  // The global batch of a step (the same on every rank) and this rank's share of it.
  std::vector<int64_t> batch_indices(int64_t step) const;
  // The final evaluation's result (after finish(), rank 0, eval_samples > 0).
  const EvalResult& held_out() const { return held_out_; }
  // The mean PDE loss of the network in evaluation mode (running statistics) over training
  // batches 0 .. batches - 1 of this run's sampling, all-reduced over ranks.
  double eval_mode_loss(int64_t batches);
  // The training fields' evaluation (rank 0, eval_train_samples > 0), updated with held_out().
  const EvalResult& train_fields() const { return train_probe_; }
  // Re-estimates the BN running statistics over `batches` training batches at the current
  // weights (see train::precise_bn), and keeps them only if they lower the PDE loss of the
  // network in evaluation mode over those batches (for an energy, the optimisation gap in the
  // energy norm: a choice made on the training objective alone, no solution data); otherwise
  // the training averages come back. Every rank must call it and takes the same choice.
  struct PreciseBn {
    double loss_before = 0, loss_after = 0;  // evaluation-mode loss, mean over the batches
    bool kept = false;
  };
  PreciseBn precise_bn(int64_t batches);
  // What finish()'s precise BN found (batches == 0: it did not run).
  const PreciseBn& precise_bn_result() const { return precise_bn_result_; }
  // Fraction of step time spent blocked on the gradient all-reduce, and its bucket count.
  double comm_wait_fraction() const;
  size_t bucket_count() const;
  // Writes a run checkpoint at `path` now (rank 0; every rank must call it). Refuses (returns
  // false, writes nothing, keeps the last good one) when the weights are not finite.
  bool save_checkpoint(const std::string& path);
  // Every parameter finite (the same answer on every rank: the weights are identical).
  bool weights_finite() const;
  // The global Gauss-Newton product J^T C J v at the current parameters on the next step's global
  // batch (C: the problem's output-space curvature), one Tensor per parameter.
  std::vector<Tensor> gauss_newton(const std::vector<Tensor>& v);
  // The model's prediction, boundary values applied, for a batch of input fields [B, 1, *S].
  Tensor predict(const Tensor& input);

 private:
  double run_step();
  // Runs fn on the global objective of step `step`'s batch at the current parameters.
  void with_objective(int64_t step, const std::function<void(optim::Objective&)>& fn);
  const pde::Problem& problem_at(int64_t res);
  // Grows model_ (a UNet) to `depth` levels and rebuilds what holds its parameters.
  void grow_to(int depth);
  void attach_parameters();  // params_, opt_ and the SyncBatchNorm wiring of model_
  TrainConfig cfg_;
  std::vector<Phase> phases_;
  std::map<int64_t, std::shared_ptr<pde::Problem>> level_problems_;
  std::shared_ptr<nn::Module> model_;
  std::shared_ptr<pde::Problem> problem_;
  std::shared_ptr<dist::Communicator> comm_;
  std::vector<ad::Var> params_;
  std::unique_ptr<optim::Optimizer> opt_;
  std::unique_ptr<dist::GradReducer> reducer_;
  optim::Schedule schedule_;
  Callbacks callbacks_;
  EvalResult held_out_, train_probe_;
  PreciseBn precise_bn_result_;
  Tensor batch_input(int64_t k) const;  // this rank's shard of training batch k
  void evaluate_now();
  int64_t step_ = 0, start_step_ = 0, total_steps_ = 0, steps_per_epoch_ = 1;
  double last_loss_ = 0, eval_seconds_ = 0, train_seconds_ = 0, wait_total_ = 0, step_total_ = 0;
  std::string last_good_;
  std::string candidate_;          // the first checkpoint written at step candidate_step_
  int64_t candidate_step_ = -1;
  std::unique_ptr<DirLock> lock_;  // of `out` (rank 0)
  bool finished_ = false;
};

const char* stop_reason_name(StopReason r);

}  // namespace dfx::train
