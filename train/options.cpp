// train/options.cpp — the declarations of `dfx train`'s options, their checking, and the
// conversion of the option structs into the library's typed configuration (see options.h).
#include "train/options.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace dfx::train {

std::string flag_of(const std::string& key) {
  std::string f = key;
  std::replace(f.begin(), f.end(), '_', '-');
  return "--" + f;
}

std::string key_of(const std::string& flag) {
  std::string k = flag.rfind("--", 0) == 0 ? flag.substr(2) : flag;
  std::replace(k.begin(), k.end(), '-', '_');
  return k;
}

namespace {

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
// neighbours ("stpes" is one from "steps").
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

}  // namespace

std::string nearest_key(const std::string& given, const std::vector<std::string>& keys) {
  const std::string k = key_of(given);
  std::string best;
  size_t best_d = 0;
  for (const auto& c : keys) {
    size_t d = edit_distance(k, c);
    if (k.size() >= 3 && c.rfind(k, 0) == 0) d = std::min<size_t>(d, 1);  // a prefix: --check-mem
    if (best.empty() || d < best_d) {
      best = c;
      best_d = d;
    }
  }
  const size_t limit = k.size() <= 4 ? 1 : k.size() <= 10 ? 2 : 3;
  return best_d <= limit ? best : "";
}

void unknown_option(const std::string& key, const std::string& source,
                    const std::vector<std::string>& keys, const OptionStyle& style) {
  std::string list;
  for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
  const std::string near = nearest_key(key, keys);
  // On the command line a suggestion is a flag; in a file or string, a key.
  const bool flag = style.flags && source == "the command line";
  const std::string hint =
      near.empty() ? "; " : "; did you mean " + (flag ? flag_of(near) : "'" + near + "'") + "? ";
  if (style.flags)
    DFX_FAIL(style.prefix, "unknown option '", key, "' in ", source, hint, "expected one of: ", list);
  DFX_FAIL(style.prefix, "unknown key '", key, "' in ", source, hint, "the keys are those of "
           "`dfx train --help` with _ for -: ", list);
}

std::string checked_value(const OptionInfo& info, const std::string& value, const std::string& source,
                          const OptionStyle& style) {
  const std::string who = style.flags ? style.prefix + flag_of(info.key) + " (" + source + ")"
                                      : style.prefix + "key '" + info.key + "' in " + source;
  const char* expect = info.type == OptionType::Int     ? "an integer"
                       : info.type == OptionType::Float ? "a number"
                       : info.type == OptionType::Bool  ? "a true/false value"
                                                        : "a string";
  auto bad = [&] { DFX_FAIL(who, style.flags ? " expects " : " must be ", expect, ", got '", value, "'"); };
  try {
    size_t used = 0;
    switch (info.type) {
      case OptionType::Int:
        std::stoll(value, &used);
        if (used != value.size()) bad();
        return value;
      case OptionType::Float: {
        const double x = std::stod(value, &used);
        if (used != value.size()) bad();
        // No option means anything by inf or nan.
        DFX_CHECK(std::isfinite(x), who, style.flags ? " expects" : " must be", " a finite number, got '",
                  value, "'");
        return value;
      }
      case OptionType::Bool:
        if (value != "true" && value != "false" && value != "1" && value != "0") bad();
        return value == "true" || value == "1" ? "true" : "false";
      case OptionType::String:
        if (!info.choices.empty() && std::find(info.choices.begin(), info.choices.end(), value) == info.choices.end()) {
          std::string list;
          for (const auto& c : info.choices) list += (list.empty() ? "" : "|") + c;
          DFX_FAIL(who, " must be one of ", list, ", got '", value, "'");
        }
        return value;
    }
  } catch (const std::invalid_argument&) {
    bad();
  } catch (const std::out_of_range&) {
    bad();
  }
  return value;
}

std::string json_value_text(const nlohmann::json& v, const std::string& key, const std::string& source,
                            const OptionStyle& style, bool* skip) {
  *skip = false;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) {
    std::ostringstream os;
    os.precision(17);
    os << v.get<double>();
    return os.str();
  }
  if (v.is_null()) {
    *skip = true;
    return "";
  }
  DFX_FAIL(style.prefix, "key '", key, "' in ", source, " must be a string, number or boolean");
}

std::vector<Option<TrainOptions>> train_options() {
  using S = TrainOptions;
  using R = ResumePolicy;
  std::vector<Option<S>> o = run_options<S>();
  o.insert(o.end(), {
      {"steps", &S::steps, "optimiser steps (0: use --epochs)", R::Overridable},
      {"epochs", &S::epochs, "passes over --samples training fields", R::Overridable},
      {"samples", &S::samples, "training fields per epoch"},
      {"out", &S::out, "run directory", R::PerInvocation},
      {"checkpoint_every", &S::checkpoint_every, "steps between checkpoints (0: only at the end)",
       R::Overridable},
      {"keep_checkpoints", &S::keep_checkpoints,
       "newest step checkpoints kept (0: all; last.safetensors always)", R::Overridable},
      {"resume", &S::resume, "continue from this checkpoint (weights, optimiser state, step)",
       R::PerInvocation},
      {"eval_samples", &S::eval_samples, "held-out fields evaluated at the end (0: none)", R::Overridable},
      {"eval_every", &S::eval_every,
       "steps between held-out evaluations logged to metrics.jsonl (0: end only)", R::Overridable},
      {"eval_train_samples", &S::eval_train_samples, "also evaluate training fields 0..K-1 with the "
       "held-out ones (train against held-out error separates optimisation from generalisation)",
       R::Overridable},
      {"precise_bn", &S::precise_bn, "re-estimate the BN running statistics over this many training "
       "batches at the end, before the last checkpoint and evaluation, kept only if they lower the "
       "evaluation-mode loss over those batches (0: keep training's averages)",
       R::Overridable},
      {"max_time", &S::max_time,
       "stop after this many seconds of training, evaluations excluded (0: no limit)", R::PerInvocation},
      {"panels", &S::panels, "held-out fields drawn in panels.png", R::Overridable},
      {"log_every", &S::log_every, "steps between plain progress lines (not on a terminal)",
       R::Overridable},
      {"bucket_mb", &S::bucket_mb, "gradient all-reduce bucket size (MiB)", R::Overridable},
      {"output_precondition", &S::output_precondition, "first-order (or kfac) training along "
       "J^T B dL/du, B the problem's output-space preconditioner (poisson: a multigrid V-cycle on "
       "K(nu); burgers: the inverse of the residual's Gauss-Newton matrix at u); the loss is "
       "unchanged; kfac then draws its factors in the output's L2 metric"},
      {"output_blend", &S::output_blend, "with --output-precondition: add this multiple of the plain "
       "gradient (direction J^T (B + c I) dL/du)"},
      {"output_vcycles", &S::output_vcycles, "with --output-precondition: multigrid V-cycles per "
       "application of B (more: closer to K^-1)"},
      {"sync_bn", &S::sync_bn, "batch-norm moments over the global batch under MPI"},
      {"overlap", &S::overlap, "start gradient all-reduces during backward (false: after it)",
       R::Overridable},
      {"levels", &S::levels, "multigrid training: resolutions coarsest first, the finest = --res "
       "(e.g. 32,64,128); empty: one level"},
      {"level_steps", &S::level_steps, "steps per visit of each level (one value for all, or one per level)"},
      {"level_lr", &S::level_lr, "learning-rate factor of each level (one value or one per level; default 1)"},
      {"cycle", &S::cycle, "order of the levels: half-v (coarse to fine), v, w or f", {"half-v", "v", "w", "f"}},
      {"cycles", &S::cycles, "multigrid cycles", R::Overridable},
      {"grow_depth", &S::grow_depth, "multigrid: add one U-Net level at the top per finer level "
       "(--depth is the coarsest level's; needs --cycle half-v and levels that double)"},
      {"check_memory", &S::check_memory, "refuse a run whose estimated memory exceeds what is free",
       R::PerInvocation},
      {"comm", &S::comm, "communicator: auto (NCCL for one GPU per MPI rank, else MPI under mpiexec, "
       "else one process), local, mpi (device tensors staged through the host) or nccl (needs "
       "--device cuda)", {"auto", "local", "mpi", "nccl"}, R::PerInvocation},
  });
  return o;
}

pde::ProblemOptions problem_options(const RunOptions& o) {
  pde::ProblemOptions p;
  p.name = o.problem;
  p.res = o.res;
  p.seed = static_cast<uint64_t>(o.seed);
  p.visc = o.visc;
  p.boundary_factor = o.boundary_factor;
  p.advection = o.advection;
  DFX_CHECK(p.visc >= 0, "--visc must be >= 0, got ", p.visc);
  return p;
}

DType run_dtype(const RunOptions& o) { return o.dtype == "float64" ? DType::Float64 : DType::Float32; }

ModelConfig model_config(const RunOptions& o) {
  ModelConfig m;
  m.depth = static_cast<int>(o.depth);
  m.width = o.width;
  m.dtype = run_dtype(o);
  m.seed = static_cast<uint64_t>(o.seed);
  m.channels_last = o.channels_last;
  m.bn_recompute = o.bn_recompute;
  m.activation_checkpoint = o.activation_checkpoint;
  return m;
}

optim::OptimizerConfig optimizer_config(const RunOptions& o) {
  optim::OptimizerConfig c;
  c.name = o.optimizer;
  c.lr = o.lr;
  c.momentum = o.momentum;
  c.weight_decay = o.weight_decay;
  c.history_size = static_cast<int>(o.history_size);
  c.cg_iters = static_cast<int>(o.cg_iters);
  c.trust_radius = o.trust_radius;
  c.cg_forcing = o.cg_forcing;
  c.damping = o.damping;
  c.precondition = o.precondition;
  c.hessian_every = static_cast<int>(o.hessian_every);
  c.hessian_power = o.hessian_power;
  c.kl_clip = o.kl_clip;
  c.seed = static_cast<uint64_t>(o.seed);
  return c;
}

optim::Schedule schedule_config(const RunOptions& o) {
  optim::Schedule s;
  s.kind = optim::Schedule::parse_kind(o.schedule);
  s.base_lr = o.lr;
  s.min_lr = o.lr_min;
  s.gamma = o.gamma;
  s.step_size = o.step_size;
  s.warmup_steps = o.warmup_steps;
  DFX_CHECK(s.warmup_steps >= 0 && s.step_size >= 1, "--warmup-steps must be >= 0 and --step-size >= 1");
  s.milestones = parse_step_list(o.milestones, "--milestones");
  return s;
}

void apply_optimizer_defaults(RunOptions& o) {
  // Each method's customary rate when the user gave none (optim/registry.h).
  if (!o.was_given("lr")) o.lr = optim::optimizer_info(o.optimizer).default_lr;
}

TrainConfig train_config(const TrainOptions& o, const std::vector<std::string>& level_names) {
  TrainConfig cfg;
  cfg.model = model_config(o);
  cfg.optimizer = optimizer_config(o);
  cfg.schedule = schedule_config(o);
  cfg.batch = o.batch;
  cfg.steps = o.steps;
  cfg.epochs = o.epochs;
  cfg.samples = o.samples;
  cfg.seed = static_cast<uint64_t>(o.seed);
  cfg.out = o.out;
  cfg.checkpoint_every = o.checkpoint_every;
  cfg.keep_checkpoints = o.keep_checkpoints;
  cfg.resume = o.resume;
  cfg.eval_samples = o.eval_samples;
  cfg.eval_every = o.eval_every;
  cfg.eval_train_samples = o.eval_train_samples;
  cfg.precise_bn_batches = o.precise_bn;
  cfg.max_time = o.max_time;
  cfg.bucket_mb = o.bucket_mb;
  cfg.sync_bn = o.sync_bn;
  cfg.overlap = o.overlap;
  cfg.output_precondition = o.output_precondition;
  cfg.output_blend = o.output_blend;
  cfg.output_vcycles = static_cast<int>(o.output_vcycles);
  cfg.levels = parse_levels(o.levels, o.level_steps, o.level_lr, level_names);
  cfg.cycle = parse_cycle(o.cycle);
  cfg.cycles = static_cast<int>(o.cycles);
  cfg.grow_depth = o.grow_depth;
  cfg.check_memory = o.check_memory;
  return cfg;
}

}  // namespace dfx::train
