// train/options.h — typed configuration: the options of a run as plain structs (RunOptions, what
// the problem, network and optimiser are; TrainOptions, a whole `dfx train`), and one declaration
// per option (key, member, help, allowed choices, how --resume treats it) from which everything
// else comes: JSON apply/dump (config.json, the checkpoints' "config", the C API's JSON string),
// the command line and its --help (apps/cli.h binds the same list to CLI11), "given explicitly"
// tracking, and errors for unknown keys that suggest the nearest valid name.
// Keys are JSON spellings (underscores); on the command line they are --flags with dashes.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "optim/registry.h"
#include "optim/schedule.h"
#include "pde/problem.h"
#include "train/trainer.h"

namespace dfx::train {

enum class OptionType { Int, Float, String, Bool };  // in the order of Option::member's variant

// How `dfx train --resume` treats an option given again (apps/cmd_train.cpp).
enum class ResumePolicy {
  Fixed,          // shapes the trajectory: taken from the checkpoint; another value is refused
  Overridable,    // taken from the checkpoint unless given; another value is allowed
  PerInvocation,  // how to run, not what: never taken from the checkpoint
};

// The keys given explicitly (by a file, a flag, a JSON string or a checkpoint), not defaults.
struct OptionSet {
  std::set<std::string> given;
  std::string config;  // the command line's --config FILE (no key of the C API)
  bool was_given(const std::string& key) const { return given.count(key) != 0; }
};

// One option of the struct S: its key, the member it sets, its help, allowed values (strings).
template <class S>
struct Option {
  using Member = std::variant<int64_t S::*, double S::*, std::string S::*, bool S::*>;
  std::string key;
  Member member;
  std::string help;
  std::vector<std::string> choices;
  ResumePolicy resume;
  Option(std::string k, Member m, std::string h, std::vector<std::string> c = {},
         ResumePolicy r = ResumePolicy::Fixed)
      : key(std::move(k)), member(m), help(std::move(h)), choices(std::move(c)), resume(r) {}
  Option(std::string k, Member m, std::string h, ResumePolicy r)
      : Option(std::move(k), m, std::move(h), {}, r) {}
  OptionType type() const { return static_cast<OptionType>(member.index()); }
};

// What a schema says about one option, without the struct (help, the command line binding).
struct OptionInfo {
  std::string key;
  OptionType type;
  std::string help;
  std::string default_text;  // "" for an unset string
  std::vector<std::string> choices;
  ResumePolicy resume;
};

// How errors spell options: as --flags (the command line, prefix "dfx train: ") or as JSON keys
// (the C API).
struct OptionStyle {
  std::string prefix;
  bool flags = true;
};

std::string flag_of(const std::string& key);   // "check_memory" -> "--check-memory"
std::string key_of(const std::string& flag);   // "--check-memory" -> "check_memory"
// The valid key nearest to `key` by edit distance (dashes read as underscores), or "" when none
// is near enough to be a likely misspelling.
std::string nearest_key(const std::string& key, const std::vector<std::string>& keys);
// Checks `text` as a value of `info` and returns it normalised (Bool: "true"/"false"); throws
// naming the option, where it came from and what is expected.
std::string checked_value(const OptionInfo& info, const std::string& text, const std::string& source,
                          const OptionStyle& style);
// Throws: `key` is no option of this table (with the nearest valid name and the list).
[[noreturn]] void unknown_option(const std::string& key, const std::string& source,
                                 const std::vector<std::string>& keys, const OptionStyle& style);
// A JSON scalar as option text (null: nullopt-like "" with *skip = true).
std::string json_value_text(const nlohmann::json& v, const std::string& key, const std::string& source,
                            const OptionStyle& style, bool* skip);

// The declarations of one options struct S (which derives from OptionSet), and what they give.
template <class S>
class Schema {
 public:
  Schema(std::vector<Option<S>> options, OptionStyle style)
      : options_(std::move(options)), style_(std::move(style)) {
    const S defaults{};
    for (const auto& o : options_) {
      keys_.push_back(o.key);
      infos_.push_back({o.key, o.type(), o.help, text(defaults, o), o.choices, o.resume});
    }
  }
  const std::vector<Option<S>>& options() const { return options_; }
  const std::vector<OptionInfo>& infos() const { return infos_; }
  const std::vector<std::string>& keys() const { return keys_; }
  const OptionStyle& style() const { return style_; }
  bool known(const std::string& key) const { return find(key) != nullptr; }
  const OptionInfo& info(const std::string& key, const std::string& source) const {
    for (const auto& i : infos_)
      if (i.key == key) return i;
    unknown_option(key, source, keys_, style_);
  }

  // Sets one option from its text form, as given (from `source`, named in errors).
  void set(S& s, const std::string& key, const std::string& value, const std::string& source) const {
    const Option<S>* o = find(key);
    if (!o) unknown_option(key, source, keys_, style_);
    const std::string v = checked_value(info(key, source), value, source, style_);
    std::visit(
        [&](auto m) {
          using T = std::decay_t<decltype(s.*m)>;
          if constexpr (std::is_same_v<T, int64_t>) s.*m = std::stoll(v);
          else if constexpr (std::is_same_v<T, double>) s.*m = std::stod(v);
          else if constexpr (std::is_same_v<T, bool>) s.*m = v == "true";
          else s.*m = v;
        },
        o->member);
    s.given.insert(key);
  }
  // Applies a JSON object's keys (a config file, a checkpoint's stored config, the C API's
  // string) as if given; null values are skipped.
  void apply_json(S& s, const nlohmann::json& j, const std::string& source) const {
    if (!j.is_object()) DFX_FAIL(style_.prefix, source, " must hold a JSON object, got ", j.dump());
    for (auto it = j.begin(); it != j.end(); ++it) {
      bool skip = false;
      const std::string v = json_value_text(it.value(), it.key(), source, style_, &skip);
      if (!skip) set(s, it.key(), v, source);
    }
  }
  // Every option, resolved and typed (unset strings as null): config.json's record.
  nlohmann::json to_json(const S& s) const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& o : options_)
      std::visit(
          [&](auto m) {
            using T = std::decay_t<decltype(s.*m)>;
            if constexpr (std::is_same_v<T, std::string>) {
              if ((s.*m).empty()) j[o.key] = nullptr;
              else j[o.key] = s.*m;
            } else {
              j[o.key] = s.*m;
            }
          },
          o.member);
    return j;
  }
  // The value of an option as text (what --help shows as its default).
  static std::string text(const S& s, const Option<S>& o) {
    return std::visit(
        [&](auto m) -> std::string {
          using T = std::decay_t<decltype(s.*m)>;
          if constexpr (std::is_same_v<T, bool>) return (s.*m) ? "true" : "false";
          else if constexpr (std::is_same_v<T, std::string>) return s.*m;
          else if constexpr (std::is_same_v<T, int64_t>) return std::to_string(s.*m);
          else return nlohmann::json(s.*m).dump();
        },
        o.member);
  }

 private:
  const Option<S>* find(const std::string& key) const {
    for (const auto& o : options_)
      if (o.key == key) return &o;
    return nullptr;
  }
  std::vector<Option<S>> options_;
  OptionStyle style_;
  std::vector<OptionInfo> infos_;
  std::vector<std::string> keys_;
};

// ---- the options of a run ----------------------------------------------------------------------

// The problem, the network, the optimiser and the devices (train, bench; eval reads them back
// from a checkpoint's stored config).
struct RunOptions : OptionSet {
  std::string problem = "poisson2d";
  int64_t res = 64, depth = 4, width = 16, batch = 8;
  std::string optimizer = "adam";
  int64_t history_size = 10, cg_iters = 20;
  double trust_radius = 1, cg_forcing = -1, damping = -1;
  bool precondition = false;
  int64_t hessian_every = 0;
  double hessian_power = 1;
  double kl_clip = 0.1;
  double lr = 0.001;  // the optimiser's customary rate when not given (apply_optimizer_defaults)
  std::string schedule = "constant";
  int64_t warmup_steps = 0;
  double lr_min = 0, gamma = 0.1;
  int64_t step_size = 1000;
  std::string milestones;
  double momentum = 0.9, weight_decay = 0;
  int64_t seed = 0;
  std::string device = "cpu";
  bool channels_last = false, tf32 = false, amx_bf16 = false, activation_checkpoint = false,
       bn_recompute = false;
  std::string conv_backend;  // "": DFX_CONV_BACKEND or the default
  std::string dtype = "float32";
  int64_t threads = 0;
  double visc = 0.01, boundary_factor = 64;
  std::string advection = "central";
};

// Everything `dfx train` takes (and, with `out` defaulting to none, the C API's JSON keys).
struct TrainOptions : RunOptions {
  int64_t steps = 0, epochs = 1, samples = 256;
  std::string out = "runs/latest";
  int64_t checkpoint_every = 0, keep_checkpoints = 3;
  std::string resume;
  int64_t eval_samples = 8, eval_every = 0, eval_train_samples = 0, precise_bn = 0;
  double max_time = 0;
  int64_t panels = 3, log_every = 10;  // the command line's pictures and progress lines
  double bucket_mb = 25;
  bool output_precondition = false;
  double output_blend = 0.1;
  int64_t output_vcycles = 1;
  bool sync_bn = true, overlap = true;
  std::string levels, level_steps, level_lr, cycle = "half-v";
  int64_t cycles = 1;
  bool grow_depth = false;
  bool check_memory = true;
  std::string comm = "auto";
};

// The declarations of RunOptions' members, for any struct derived from it.
template <class S>
std::vector<Option<S>> run_options() {
  using R = ResumePolicy;
  return {
      {"problem", &S::problem, "workload", pde::problem_names()},
      {"res", &S::res, "grid nodes per side (divisible by 2^(depth-1))"},
      {"depth", &S::depth, "U-Net levels"},
      {"width", &S::width, "U-Net base width C"},
      {"batch", &S::batch, "global batch size (split over MPI ranks)"},
      {"optimizer", &S::optimizer, "optimiser (optim/registry.h)", optim::optimizer_names()},
      {"history_size", &S::history_size, "L-BFGS history"},
      {"cg_iters", &S::cg_iters, "Newton-CG, Gauss-Newton: CG iterations per step"},
      {"trust_radius", &S::trust_radius, "Newton-CG: initial trust radius"},
      {"cg_forcing", &S::cg_forcing, "Newton-CG, Gauss-Newton: CG stops at |r| <= forcing |g| (< 0: "
       "Newton-CG min(0.5, sqrt |g|), Gauss-Newton 0.1)"},
      {"damping", &S::damping, "Gauss-Newton: initial Levenberg-Marquardt damping (adapted per step); "
       "K-FAC: Tikhonov damping (< 0: Gauss-Newton 1, K-FAC 3e-2)"},
      {"precondition", &S::precondition, "Newton-CG: Jacobi preconditioner from a Hutchinson diagonal"},
      {"hessian_every", &S::hessian_every, "AdaHessian: steps between Hessian-diagonal estimates; "
       "K-FAC: steps between factor inversions (<= 0: AdaHessian 1, K-FAC 10)"},
      {"hessian_power", &S::hessian_power, "AdaHessian: Hessian power k"},
      {"kl_clip", &S::kl_clip, "K-FAC: cap on the step's predicted change lr^2 <d, g> (0: none)"},
      {"lr", &S::lr, "learning rate (the schedule's base rate; default: the optimiser's own)"},
      {"schedule", &S::schedule, "learning-rate schedule",
       {"constant", "cosine", "step", "multistep", "exponential"}},
      {"warmup_steps", &S::warmup_steps, "linear learning-rate warm-up steps"},
      {"lr_min", &S::lr_min, "cosine schedule's final rate"},
      {"gamma", &S::gamma, "step/multistep factor, or exponential per-step factor"},
      {"step_size", &S::step_size, "steps between step-schedule decays"},
      {"milestones", &S::milestones, "multistep decay steps, comma separated (e.g. 1000,1500)"},
      {"momentum", &S::momentum, "SGD, LARS and K-FAC momentum"},
      {"weight_decay", &S::weight_decay, "weight decay (decoupled for adamw)"},
      {"seed", &S::seed, "seed of the weights and of the sampled fields"},
      {"device", &S::device, "cpu or cuda[:N]", R::PerInvocation},
      {"channels_last", &S::channels_last,
       "lay convolution weights and activations out channels-last (NHWC strides; same results)",
       R::Overridable},
      {"tf32", &S::tf32, "float32 CUDA convolutions may use TF32 (or DFX_TF32=1)", R::PerInvocation},
      {"amx_bf16", &S::amx_bf16, "float32 CPU convolutions larger than 1x1 may run on AMX tiles "
       "with bf16 operands and float32 sums (or DFX_AMX_BF16=1; no effect without AMX)",
       R::PerInvocation},
      {"activation_checkpoint", &S::activation_checkpoint,
       "activation checkpointing: keep only each U-Net level's inputs and recompute the level in "
       "the backward (same gradients; first-order optimisers only)", R::Overridable},
      {"bn_recompute", &S::bn_recompute,
       "batch norm + leaky ReLU keep only their output and rebuild their input in the backward "
       "(less activation memory; first-order optimisers only)", R::Overridable},
      {"conv_backend", &S::conv_backend, "CUDA convolutions: dfx's kernels, cuDNN, or auto (timed "
       "per shape); unset: DFX_CONV_BACKEND, else auto on a GPU when dfx has cuDNN, else native",
       {"auto", "native", "cudnn"}, R::PerInvocation},
      {"dtype", &S::dtype, "parameter and activation precision", {"float32", "float64"}},
      {"threads", &S::threads, "CPU threads per process (0: OpenMP default)", R::PerInvocation},
      {"visc", &S::visc, "Burgers viscosity (0 = inviscid)"},
      {"boundary_factor", &S::boundary_factor, "Burgers boundary-loss weight"},
      {"advection", &S::advection, "Burgers u u_x in the loss: central differences (accurate for "
       "visc > 0), or upwind (conservative Engquist-Osher flux, converges at shocks: for visc = 0)",
       {"central", "upwind"}},
  };
}

// The declarations of every `dfx train` option (run_options, then the training ones): the one
// list behind `dfx train`, its --help and the C API.
std::vector<Option<TrainOptions>> train_options();

// ---- from options to the library's typed configuration ---------------------------------------
// Errors spell the options as flags (--visc), as the trainer's own checks do.

pde::ProblemOptions problem_options(const RunOptions& o);
DType run_dtype(const RunOptions& o);
ModelConfig model_config(const RunOptions& o);
optim::OptimizerConfig optimizer_config(const RunOptions& o);
optim::Schedule schedule_config(const RunOptions& o);  // total_steps left to the trainer
// --lr, when not given, becomes the optimiser's customary rate (optim/registry.h).
void apply_optimizer_defaults(RunOptions& o);
// Everything of a TrainConfig the options say; `record` is left to the caller, and `names`
// spell --levels/--level-steps/--level-lr in errors.
TrainConfig train_config(const TrainOptions& o, const std::vector<std::string>& level_names = {
                                                    "--levels", "--level-steps", "--level-lr"});

}  // namespace dfx::train
