// train/trainer.cpp — the training loop of the library (see trainer.h).
#include "train/trainer.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>

#include "autodiff/ops.h"
#include "core/copy.h"
#include "core/rng.h"
#include "models/layers.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/reduce.h"
#include "kernels/shape_ops.h"
#include "optim/kfac.h"
#include "train/checkpoint.h"
#include "train/memory.h"
#include "train/signals.h"

namespace dfx::train {
namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The training order of epoch e: a permutation of [0, n) keyed by (seed, epoch) alone, so every
// rank computes the same one without communicating.
std::vector<uint64_t> epoch_order(uint64_t n, uint64_t seed, int64_t epoch) {
  std::vector<uint64_t> p(n);
  for (uint64_t i = 0; i < n; ++i) p[i] = i;
  for (uint64_t i = n; i > 1; --i) {
    uint64_t j = static_cast<uint64_t>(philox_uniform(seed ^ 0x5eedull, 1000 + epoch, i) * i);
    std::swap(p[i - 1], p[std::min(j, i - 1)]);
  }
  return p;
}

// The global loss of one global batch: this rank's share (sum of its per-sample losses / global
// count) all-reduced. Newton-CG, and AdaHessian on the steps it re-estimates the diagonal, ask
// for HVPs at the point where they take the gradient (expect_hvp): that gradient is then taken
// differentiably and its graph kept (dist::Hessian), so each HVP costs one reverse pass.
// The Gauss-Newton product G v = J^T C J v (J = du/dtheta, C the problem's output-space
// curvature) is summed over ranks like the gradient; J v is ad::jvp on the network's graph.
class BatchObjective : public optim::Objective {
 public:
  // forward(): this rank's network input x and output u (undefined when it has no share and
  // needs no collectives), with the graph.
  using Forward = std::function<std::pair<Tensor, ad::Var>()>;
  BatchObjective(dist::Communicator& comm, dist::GradReducer& reducer, optim::Optimizer& opt,
                 std::function<ad::Var()> local_loss, Forward forward, const pde::Problem& problem,
                 int64_t global_count, std::vector<uint64_t> samples, bool every_rank_runs,
                 bool twice_differentiable, bool l2_metric)
      : comm_(comm), reducer_(reducer), opt_(opt), local_loss_(std::move(local_loss)),
        forward_(std::move(forward)), problem_(problem), count_(global_count),
        samples_(std::move(samples)), has_share_(!samples_.empty()),
        every_rank_runs_(every_rank_runs), hvp_ok_(twice_differentiable), l2_metric_(l2_metric) {}

  // K-FAC's statistics: one more forward with the convolutions recorded, r ~ N(0, C) drawn per
  // sample (keyed by the draw and the sample's global index, so 1 and N ranks draw alike), and
  // one backward of r giving each convolution's output gradient and the sampled gradient.
  bool has_kronecker_factors() const override { return hvp_ok_; }
  optim::KroneckerStatistics kronecker_factors(uint64_t draw) override {
    DFX_CHECK(hvp_ok_, "kfac needs the network's whole graph; --bn-recompute and "
              "--activation-checkpoint keep too little of it");
    DFX_CHECK(every_rank_runs_, "kfac: a rank holds no sample of this batch (global batch ",
              count_, " on ", comm_.size(), " ranks) and, without synchronised batch norm, does "
              "not run the network, so the ranks' factors cannot be summed; use a global batch "
              "of at least the number of ranks");
    const auto& params = opt_.params();
    nn::ConvRecorder recorder;
    auto [x, u] = forward_();
    std::vector<uint64_t> keys;
    for (uint64_t s : samples_) keys.push_back((draw << 32) ^ s);
    Tensor r = l2_metric_ ? l2_sample(u.data(), keys)
                          : problem_.curvature_sample(u.data(), x, count_, keys);
    DFX_CHECK(r.defined(), "kfac: problem '", problem_.name(), "' cannot sample its curvature "
              "(pde::Problem::curvature_sample); use another optimiser");
    const std::vector<nn::ConvRecord>& rec = recorder.records;
    std::vector<ad::Var> wrt;
    for (const nn::ConvRecord& c : rec) wrt.push_back(c.output);
    for (const ad::Var& p : params) wrt.push_back(p);
    const std::vector<ad::Var> grads = ad::grad({u}, wrt, {ad::Var(r)});
    auto index_of = [&](const ad::Var* v) -> int64_t {
      for (size_t i = 0; i < params.size(); ++i)
        if (v && params[i].node() == v->node()) return static_cast<int64_t>(i);
      return -1;
    };
    // Products in the rows' precision (float32 for a float32 network: a SYRK at twice the
    // float64 rate, on half the bytes), summed and averaged in float64.
    auto gram = [](const Tensor& rows) { return kernels::gram(rows).to(DType::Float64); };
    optim::KroneckerStatistics st;
    for (size_t j = 0; j < rec.size(); ++j) {
      const nn::ConvRecord& c = rec[j];
      const int64_t w = index_of(c.weight), b = index_of(c.bias);
      DFX_CHECK(w >= 0, "kfac: a convolution's weight is not among the optimiser's parameters");
      const bool fold = b >= 0 && !c.transposed;
      optim::ConvRows rows = optim::conv_rows(c.input.data(), grads[j].data(), c.transposed, fold,
                                              c.kernel, c.params.stride, c.params.padding,
                                              c.params.dilation);
      optim::KroneckerBlock k{static_cast<size_t>(w), fold ? b : -1, gram(rows.left_rows),
                              gram(rows.right_rows)};
      Tensor positions = full({}, static_cast<double>(rows.left_rows.size(0)), DType::Float64);
      comm_.all_reduce(k.left);
      comm_.all_reduce(k.right);
      comm_.all_reduce(positions);
      // F ~= mean over positions of a a^T  kron  sum of g g^T (the loss is already a mean).
      Tensor& act = rows.activation_left ? k.left : k.right;
      act = kernels::mul(act, full({}, 1.0 / std::max(positions.item(), 1.0), DType::Float64));
      st.blocks.push_back(std::move(k));
    }
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor g = grads[rec.size() + i].data().cpu().to(DType::Float64).contiguous().clone();
      comm_.all_reduce(g);
      st.sampled_gradient.push_back(g);
    }
    return st;
  }

  bool has_gauss_newton() const override { return hvp_ok_; }
  std::vector<Tensor> gauss_newton(const std::vector<Tensor>& v) override {
    DFX_CHECK(hvp_ok_, "Gauss-Newton products need a twice-differentiable network; "
              "--bn-recompute and --activation-checkpoint keep too little of the graph");
    const auto& params = opt_.params();
    std::vector<Tensor> out;
    // One forward and one differentiable pass per point, shared by every product there (the
    // diagonal probe and the CG iterations): each product is then two reverse passes.
    if (!linear_) {
      auto [x, u] = forward_();
      linear_.emplace(Linearization{x, u, u.defined() ? std::optional<ad::Jacobian>(std::in_place,
                                    std::vector<ad::Var>{u}, params) : std::nullopt});
    }
    if (linear_->jacobian) {
      // Every rank that runs the network takes the same passes (SyncBatchNorm's collectives).
      const ad::Jacobian& jac = *linear_->jacobian;
      Tensor jv = jac.apply(v)[0];
      Tensor cjv = has_share_ ? problem_.curvature(linear_->u.data(), linear_->x, count_)(jv)
                              : zeros_like(jv);
      for (Tensor& g : jac.transpose_apply({cjv})) out.push_back(g.clone());
    } else {
      for (const ad::Var& p : params) out.push_back(zeros_like(p.data()));
    }
    for (Tensor& t : out) comm_.all_reduce(t);
    return out;
  }

  double evaluate(bool need_grad) override {
    hessian_.reset();  // the parameters may have moved since they were built
    linear_.reset();
    Tensor sum = zeros({}, DType::Float64);
    const auto& params = opt_.params();
    if (need_grad && expect_hvp_) {
      opt_.zero_grad();
      ad::Var l = local_loss_();
      hessian_.emplace(comm_, l, params);
      for (size_t i = 0; i < params.size(); ++i) {
        ad::Var p = params[i];
        p.set_grad(ad::Var(hessian_->gradient()[i]));
      }
      if (l.defined() && has_share_) sum = l.data().to(DType::Float64).cpu().clone();
    } else if (need_grad) {
      opt_.zero_grad();
      ad::Var l = local_loss_();
      if (l.defined()) {
        l.backward();
        if (has_share_) sum = l.data().to(DType::Float64).cpu().clone();
      }
      reducer_.finish();
    } else {
      ad::NoGradGuard ng;
      ad::Var l = local_loss_();
      if (l.defined() && has_share_) sum = l.data().to(DType::Float64).cpu().clone();
    }
    comm_.all_reduce(sum);
    return sum.item();
  }
  bool has_hvp() const override { return hvp_ok_; }
  // The global Hessian-vector product at the current parameters (the sum of local HVPs).
  std::vector<Tensor> hvp(const std::vector<Tensor>& v) override {
    DFX_CHECK(hvp_ok_, "Hessian-vector products need a twice-differentiable network; "
              "--bn-recompute and --activation-checkpoint keep too little of the graph");
    if (!hessian_) hessian_.emplace(comm_, local_loss_(), opt_.params());
    return hessian_->apply(v);
  }
  void expect_hvp(bool on) override { expect_hvp_ = on; }

 private:
  dist::Communicator& comm_;
  dist::GradReducer& reducer_;
  optim::Optimizer& opt_;
  std::function<ad::Var()> local_loss_;
  Forward forward_;
  const pde::Problem& problem_;
  int64_t count_;
  std::vector<uint64_t> samples_;  // this rank's global sample indices
  bool has_share_, every_rank_runs_, hvp_ok_, expect_hvp_ = false;
  // With --output-precondition the gradient is J^T B dL/du with B ~ C^-1 (the V-cycle), so the
  // parameter step that matches it is Gauss-Newton in the output's L2 metric: K-FAC's factors
  // then come from r ~ N(0, I / count) instead of N(0, C).
  bool l2_metric_ = false;
  Tensor l2_sample(const Tensor& u, const std::vector<uint64_t>& keys) const {
    Shape one = u.shape();
    one[0] = 1;
    std::vector<Tensor> rows;
    for (uint64_t k : keys) rows.push_back(randn(one, 0x12c0a7a75eull, k, 0, DType::Float64));
    Tensor r = rows.empty() ? zeros(u.shape(), DType::Float64) : kernels::concat(rows, 0);
    kernels::scale_(r, 1.0 / std::sqrt(static_cast<double>(count_)));
    return r.to(u.dtype()).to(u.device());
  }
  std::optional<dist::Hessian> hessian_;
  struct Linearization {
    Tensor x;
    ad::Var u;
    std::optional<ad::Jacobian> jacobian;  // empty when this rank does not run the network
  };
  std::optional<Linearization> linear_;
};

// Temporary files of atomic writes ("<name>.tmp.<pid>") whose writer is gone: a run killed while
// writing leaves them, and nothing else ever would remove them.
void remove_stale_temporaries(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.rfind(".tmp.");
    if (at == std::string::npos) continue;
    const std::string pid = name.substr(at + 5);
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(static_cast<pid_t>(std::stoll(pid)), 0) != 0 && errno == ESRCH)
      std::filesystem::remove(e.path(), ec);
  }
}

// Keeps the newest `keep` step_*.safetensors of `dir` (their names sort by step), and `spare`.
void prune_step_checkpoints(const std::string& dir, int64_t keep, const std::string& spare) {
  if (keep <= 0) return;
  std::vector<std::filesystem::path> steps;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) == 0 && name.size() > 12 &&
        name.compare(name.size() - 12, 12, ".safetensors") == 0)
      steps.push_back(e.path());
  }
  std::sort(steps.begin(), steps.end());
  const std::filesystem::path keep_too = spare.empty() ? std::filesystem::path() : std::filesystem::path(spare);
  for (size_t i = 0; i + static_cast<size_t>(keep) < steps.size(); ++i)
    if (keep_too.empty() || !std::filesystem::equivalent(steps[i], keep_too, ec)) std::filesystem::remove(steps[i], ec);
}

}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::Done: return "done";
    case StopReason::Paused: return "paused";
    case StopReason::TimeBudget: return "time budget";
    case StopReason::NonFinite: return "non-finite loss";
    case StopReason::Interrupted: return "interrupted";
  }
  return "?";
}

Cycle parse_cycle(const std::string& name) {
  if (name == "half-v") return Cycle::HalfV;
  if (name == "v") return Cycle::V;
  if (name == "w") return Cycle::W;
  if (name == "f") return Cycle::F;
  DFX_FAIL("unknown multigrid cycle '", name, "'; expected half-v, v, w or f");
}

const char* cycle_name(Cycle c) {
  switch (c) {
    case Cycle::HalfV: return "half-v";
    case Cycle::V: return "v";
    case Cycle::W: return "w";
    case Cycle::F: return "f";
  }
  return "?";
}

namespace {
void push_level(std::vector<int>& seq, int k) {
  if (seq.empty() || seq.back() != k) seq.push_back(k);
}
void v_cycle(std::vector<int>& seq, int top) {  // top, ..., 0, ..., top
  for (int k = top; k >= 0; --k) push_level(seq, k);
  for (int k = 1; k <= top; ++k) push_level(seq, k);
}
void w_cycle(std::vector<int>& seq, int k) {
  push_level(seq, k);
  if (k > 0) {
    w_cycle(seq, k - 1);
    w_cycle(seq, k - 1);
  }
  push_level(seq, k);
}
}  // namespace

std::vector<int> cycle_levels(int n, Cycle c) {
  DFX_CHECK(n >= 1, "multigrid: need at least one level, got ", n);
  std::vector<int> seq;
  switch (c) {
    case Cycle::HalfV:
      for (int k = 0; k < n; ++k) push_level(seq, k);
      break;
    case Cycle::V: v_cycle(seq, n - 1); break;
    case Cycle::W: w_cycle(seq, n - 1); break;
    case Cycle::F:
      push_level(seq, 0);
      for (int top = 1; top < n; ++top) {
        push_level(seq, top);
        v_cycle(seq, top);
      }
      break;
  }
  return seq;
}

namespace {
// "a,b,c" as numbers; `what` names the setting in errors.
std::vector<double> number_list(const std::string& text, const std::string& what) {
  std::vector<double> v;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t used = 0;
    double x = 0;
    try {
      x = std::stod(item, &used);
    } catch (...) {
      used = 0;
    }
    DFX_CHECK(used == item.size() && !item.empty(), what, ": '", item,
              "' is not a number; expected a comma-separated list such as 32,64,128");
    v.push_back(x);
    pos = comma == std::string::npos ? text.size() : comma + 1;
  }
  return v;
}
}  // namespace

std::vector<Level> parse_levels(const std::string& levels, const std::string& steps_text,
                                const std::string& lr_text, const std::vector<std::string>& names) {
  DFX_CHECK(names.size() == 3, "parse_levels: need the names of levels, steps and lr factors");
  if (levels.empty()) {
    DFX_CHECK(steps_text.empty() && lr_text.empty(), names[1], " and ", names[2], " need ",
              names[0], " (the multigrid resolutions)");
    return {};
  }
  const std::vector<double> res = number_list(levels, names[0]);
  std::vector<double> steps = number_list(steps_text, names[1]);
  std::vector<double> lr = number_list(lr_text, names[2]);
  DFX_CHECK(!steps.empty(), names[0], " needs ", names[1], " (steps per visit of each level)");
  auto per_level = [&](std::vector<double>& v, const std::string& what) {
    if (v.size() == 1) v.assign(res.size(), v[0]);
    DFX_CHECK(v.empty() || v.size() == res.size(), what, " has ", v.size(), " values for ",
              res.size(), " levels; give one value or one per level");
  };
  per_level(steps, names[1]);
  per_level(lr, names[2]);
  std::vector<Level> out;
  for (size_t k = 0; k < res.size(); ++k)
    out.push_back({static_cast<int64_t>(res[k]), static_cast<int64_t>(steps[k]), lr.empty() ? 1.0 : lr[k]});
  return out;
}

std::vector<int64_t> parse_step_list(const std::string& m, const std::string& name) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos < m.size()) {
    size_t comma = m.find(',', pos);
    std::string item = m.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    try {
      out.push_back(std::stoll(item));
    } catch (...) {
      DFX_FAIL(name, ": '", item, "' is not a step number; expected e.g. 1000,1500");
    }
    pos = comma == std::string::npos ? m.size() : comma + 1;
  }
  return out;
}

void check_resolution(const ModelConfig& m, int64_t res) {
  const int64_t div = int64_t{1} << (m.depth - 1);
  DFX_CHECK(res % div == 0, "--res ", res, " is not divisible by 2^(depth-1) = ", div,
            " (the U-Net halves the grid depth-1 times); pick a multiple of ", div);
}

std::shared_ptr<nn::UNet> build_unet(const ModelConfig& m, int dims, Device device,
                                     const std::string& optimizer) {
  nn::UNetOptions u;
  u.dims = dims;
  u.depth = m.depth;
  u.width = m.width;
  u.dtype = m.dtype;
  u.seed = m.seed;
  u.grown = m.grown;
  DFX_CHECK(u.depth >= 1 && u.depth <= 8, "--depth must be in 1..8, got ", u.depth);
  DFX_CHECK(u.width >= 1, "--width must be >= 1, got ", u.width);
  u.batch_norm.recompute_input = m.bn_recompute;
  u.checkpoint = m.activation_checkpoint;
  // Both keep fewer activations than a second derivative needs.
  const bool second = optim::optimizer_info(optimizer).second_order;
  for (const auto& [on, flag] : {std::pair{m.bn_recompute, "--bn-recompute"},
                                 std::pair{m.activation_checkpoint, "--activation-checkpoint"}}) {
    DFX_CHECK(!on || !second, flag, " keeps fewer activations than a second derivative needs, "
              "so the network cannot be differentiated twice; --optimizer ", optimizer,
              " needs curvature from the full graph: drop ", flag, " or use a first-order optimiser");
  }
  auto model = std::make_shared<nn::UNet>(u);
  if (!device.is_cpu()) model->to(device);
  if (m.channels_last) model->to(MemoryFormat::ChannelsLast);
  return model;
}

Trainer::Trainer(TrainConfig config, std::shared_ptr<nn::Module> model,
                 std::shared_ptr<pde::Problem> problem, std::shared_ptr<dist::Communicator> comm)
    : cfg_(std::move(config)), model_(std::move(model)), problem_(std::move(problem)),
      comm_(std::move(comm)) {
  DFX_CHECK(model_ && problem_ && comm_, "Trainer: need a model, a problem and a communicator");
  DFX_CHECK(cfg_.batch >= 1, "--batch must be >= 1, got ", cfg_.batch);
  DFX_CHECK(cfg_.samples >= 1, "--samples must be >= 1, got ", cfg_.samples);
  DFX_CHECK(cfg_.keep_checkpoints >= 0, "--keep-checkpoints must be >= 0 (0: keep all), got ",
            cfg_.keep_checkpoints);
  DFX_CHECK(cfg_.eval_samples >= 0, "--eval-samples must be >= 0, got ", cfg_.eval_samples);
  DFX_CHECK(cfg_.steps >= 0, "--steps must be >= 1 (or 0: --epochs passes over --samples), got ",
            cfg_.steps);
  DFX_CHECK(cfg_.epochs >= 0, "--epochs must be >= 0, got ", cfg_.epochs);
  DFX_CHECK(cfg_.checkpoint_every >= 0, "--checkpoint-every must be >= 0 steps (0: only at the "
            "end), got ", cfg_.checkpoint_every);
  DFX_CHECK(cfg_.eval_every >= 0, "--eval-every must be >= 0 steps (0: only at the end), got ",
            cfg_.eval_every);
  DFX_CHECK(std::isfinite(cfg_.max_time) && cfg_.max_time >= 0, "--max-time must be >= 0 seconds "
            "(0: no limit), got ", cfg_.max_time);
  DFX_CHECK(std::isfinite(cfg_.bucket_mb) && cfg_.bucket_mb > 0, "--bucket-mb must be > 0 MiB, got ",
            cfg_.bucket_mb);
  {
    const double lr = optim::resolved_lr(cfg_.optimizer);
    DFX_CHECK(std::isfinite(lr) && lr > 0, "--lr must be a finite rate > 0, got ", lr);
    const optim::Schedule& sc = cfg_.schedule;
    DFX_CHECK(std::isfinite(sc.gamma) && sc.gamma > 0, "--gamma must be a finite factor > 0 (the "
              "step/multistep decay, or exponential per-step factor; typically 0 < gamma <= 1), got ",
              sc.gamma);
    DFX_CHECK(std::isfinite(sc.min_lr) && sc.min_lr >= 0, "--lr-min must be >= 0, got ", sc.min_lr);
    const optim::OptimizerConfig& oc = cfg_.optimizer;
    DFX_CHECK(oc.weight_decay >= 0, "--weight-decay must be >= 0, got ", oc.weight_decay);
    DFX_CHECK(oc.momentum >= 0 && oc.momentum < 1, "--momentum must be in [0, 1), got ", oc.momentum);
  }
  steps_per_epoch_ = (cfg_.samples + cfg_.batch - 1) / cfg_.batch;
  const int64_t finest = problem_->options().res;
  if (cfg_.levels.empty()) {
    total_steps_ = cfg_.steps > 0 ? cfg_.steps : cfg_.epochs * steps_per_epoch_;
    DFX_CHECK(total_steps_ >= 1, "nothing to do: --steps and --epochs are both 0");
    DFX_CHECK(!cfg_.grow_depth, "--grow-depth needs a multigrid schedule (--levels): the network "
              "grows one level per level of it");
    phases_.push_back({0, finest, 0, total_steps_, 1.0, cfg_.model.depth});
  } else {
    DFX_CHECK(cfg_.cycles >= 1, "--cycles must be >= 1, got ", cfg_.cycles);
    const int n = static_cast<int>(cfg_.levels.size());
    for (int k = 0; k < n; ++k) {
      const Level& l = cfg_.levels[k];
      DFX_CHECK(l.res >= 4 && l.steps >= 0 && l.lr_factor > 0, "--levels: level ", k, " (res ",
                l.res, ", ", l.steps, " steps, lr factor ", l.lr_factor,
                ") needs res >= 4, steps >= 0 and a positive lr factor");
      DFX_CHECK(k == 0 || l.res > cfg_.levels[k - 1].res, "--levels must list resolutions "
                "coarsest first, strictly increasing; got ", cfg_.levels[k - 1].res, " then ", l.res);
      ModelConfig at_level = cfg_.model;
      if (cfg_.grow_depth) at_level.depth += k;
      check_resolution(at_level, l.res);
      DFX_CHECK(!cfg_.grow_depth || k == 0 || l.res == 2 * cfg_.levels[k - 1].res, "--grow-depth: "
                "level ", k, " has res ", l.res, " after ", cfg_.levels[k - 1].res, "; each level "
                "must double the previous one's resolution (the grown top level halves the grid "
                "for the levels below it)");
    }
    DFX_CHECK(!cfg_.grow_depth || (cfg_.cycle == Cycle::HalfV && cfg_.cycles == 1),
              "--grow-depth needs --cycle half-v and --cycles 1 (got --cycle ", cycle_name(cfg_.cycle),
              ", --cycles ", cfg_.cycles, "): a network cannot give back the levels it grew");
    if (cfg_.grow_depth) {
      auto* unet = dynamic_cast<nn::UNet*>(model_.get());
      DFX_CHECK(unet && unet->options().depth == cfg_.model.depth, "--grow-depth: the model must "
                "be the U-Net of the configuration's depth ", cfg_.model.depth, " (the coarsest "
                "level's), got ", model_->describe());
    }
    DFX_CHECK(cfg_.levels.back().res == finest, "--levels: the finest level (", cfg_.levels.back().res,
              ") must be the run's resolution --res ", finest, " (held-out evaluation runs there)");
    int64_t begin = 0;
    for (int c = 0; c < cfg_.cycles; ++c)
      for (int k : cycle_levels(n, cfg_.cycle)) {
        const Level& l = cfg_.levels[k];
        if (l.steps == 0) continue;
        if (!phases_.empty() && phases_.back().level == k) {
          phases_.back().steps += l.steps;  // the last level of a cycle starts the next
        } else {
          phases_.push_back({k, l.res, begin, l.steps, l.lr_factor,
                             cfg_.model.depth + (cfg_.grow_depth ? k : 0)});
        }
        begin += l.steps;
      }
    total_steps_ = begin;
    DFX_CHECK(total_steps_ >= 1, "nothing to do: every level has 0 steps");
    DFX_CHECK(cfg_.steps == 0 || cfg_.steps == total_steps_, "--steps ", cfg_.steps,
              " contradicts the multigrid schedule's ", total_steps_,
              " steps (the sum over its levels); drop --steps");
  }
  level_problems_[finest] = problem_;
  // (CPU: the host's free memory shared by its ranks; CUDA: the device's free memory)
  if (cfg_.check_memory)
    train::check_memory(cfg_, *model_, *problem_, comm_->size(), dist::node_rank(*comm_).local_size,
                        comm_->is_root());
  model_->train();
  params_ = model_->parameters();
  opt_ = optim::make_optimizer(params_, cfg_.optimizer);
  // A grown run resumed: the network of the checkpoint's step before its weights are loaded.
  if (!cfg_.resume.empty() && cfg_.grow_depth)
    grow_to(phase_at(read_checkpoint_metadata(cfg_.resume).step).depth);
  DFX_CHECK(cfg_.output_vcycles >= 1, "--output-vcycles must be >= 1, got ", cfg_.output_vcycles);
  DFX_CHECK(std::isfinite(cfg_.output_blend) && cfg_.output_blend >= 0,
            "--output-blend must be a finite number >= 0, got ", cfg_.output_blend);
  if (cfg_.output_precondition) {
    // K-FAC takes the direction as it is too, and then draws its factors in the L2 metric.
    DFX_CHECK(dynamic_cast<optim::FirstOrder*>(opt_.get()) ||
                  dynamic_cast<optim::KFAC*>(opt_.get()),
              "--output-precondition needs an optimiser that only follows the gradient (sgd, "
              "adam, lamb, lars, kfac): the preconditioned direction is not the loss's "
              "gradient, which ", cfg_.optimizer.name, "'s line search or model relies on");
    const Tensor probe = problem_->input({0}, cfg_.model.dtype);
    DFX_CHECK(static_cast<bool>(problem_->preconditioner(Tensor(), probe, 1)),
              "--output-precondition: problem '", problem_->name(),
              "' has no output-space preconditioner");
  }
  schedule_ = cfg_.schedule;
  schedule_.base_lr = optim::resolved_lr(cfg_.optimizer);
  schedule_.total_steps = total_steps_;
  DFX_CHECK(schedule_.warmup_steps >= 0 && schedule_.step_size >= 1,
            "--warmup-steps must be >= 0 and --step-size >= 1");
  if (!cfg_.resume.empty()) {
    const LoadedCheckpoint c = load_run_checkpoint(cfg_.resume, *model_, opt_.get());
    // Every optimiser keeps at least its step count: a file without it cannot continue the run.
    DFX_CHECK(c.has_optimizer_state, "--resume: checkpoint '", cfg_.resume, "' holds no optimiser "
              "state (no optim.* tensors), so the run cannot continue as it was; resume from a "
              "run checkpoint (checkpoints/last.safetensors or step_*.safetensors), not from "
              "model.safetensors (weights only)");
    DFX_CHECK(weights_finite(), "--resume: checkpoint '", cfg_.resume, "' holds non-finite "
              "weights; resume from an earlier checkpoint");
    start_step_ = c.step;
    DFX_CHECK(start_step_ < total_steps_, "--resume: the checkpoint is at step ", start_step_,
              ", at or past the requested ", total_steps_, " steps; raise --steps or --epochs");
    last_good_ = cfg_.resume;
  }
  step_ = start_step_;
  std::vector<Tensor> state;
  for (auto& [name, t] : model_->state_dict()) state.push_back(t);
  dist::broadcast_tensors(*comm_, state);  // rank 0's weights everywhere
  attach_parameters();
  cfg_.record["ranks"] = comm_->size();
  cfg_.record["backend"] = comm_->backend();
  if (comm_->is_root() && !cfg_.out.empty()) {
    ensure_directory(cfg_.out);
    lock_ = std::make_unique<DirLock>(cfg_.out);  // before anything in it is touched
    write_text_atomic(cfg_.out + "/config.json", cfg_.record.dump(2) + "\n");
    ensure_directory(cfg_.out + "/checkpoints");
    remove_stale_temporaries(cfg_.out);
    remove_stale_temporaries(cfg_.out + "/checkpoints");
  }
  // Held-out fields and their reference solutions, once: periodic evaluations only run the model.
  if (comm_->is_root() && cfg_.eval_samples > 0) {
    held_out_ = prepare_eval(*problem_, cfg_.eval_samples, cfg_.model.dtype);
    if (cfg_.eval_train_samples > 0) {
      std::vector<uint64_t> first(static_cast<size_t>(std::min(cfg_.eval_train_samples, cfg_.samples)));
      for (size_t i = 0; i < first.size(); ++i) first[i] = i;
      train_probe_ = prepare_eval(*problem_, first, cfg_.model.dtype);
    }
  }
}

void Trainer::attach_parameters() {
  if (comm_->size() > 1 && cfg_.sync_bn)
    for (nn::BatchNorm* bn : nn::batch_norm_layers(*model_))
      bn->set_all_reduce(dist::channel_all_reduce(comm_));
  reducer_ = std::make_unique<dist::GradReducer>(
      comm_, params_, static_cast<size_t>(cfg_.bucket_mb * 1048576.0), cfg_.overlap);
}

void Trainer::grow_to(int depth) {
  auto* unet = dynamic_cast<nn::UNet*>(model_.get());
  DFX_CHECK(unet, "grow_depth: the model is not a U-Net: ", model_->describe());
  if (unet->options().depth >= depth) return;
  std::shared_ptr<nn::UNet> grown;
  while (unet->options().depth < depth) {
    grown = nn::grow_unet(*unet);  // the same on every rank: old weights and seeded new ones
    unet = grown.get();
  }
  model_ = grown;
  params_ = model_->parameters();
  opt_ = optim::make_optimizer(params_, cfg_.optimizer);
  cfg_.record["grown_levels"] = unet->options().grown;
  if (reducer_) attach_parameters();  // (the constructor attaches once, after loading)
}

void Trainer::evaluate_now() {
  run_eval(*model_, *problem_, held_out_);
  if (cfg_.eval_train_samples > 0) run_eval(*model_, *problem_, train_probe_);
}

Tensor Trainer::batch_input(int64_t k) const {
  std::vector<int64_t> mine = dist::shard_indices(batch_indices(k), comm_->rank(), comm_->size());
  std::vector<uint64_t> local(mine.begin(), mine.end());
  const DType dtype = cfg_.model.dtype;
  return local.empty() ? Tensor::empty(problem_->field_shape(0), dtype) : problem_->input(local, dtype);
}

double Trainer::eval_mode_loss(int64_t batches) {
  const bool was_training = model_->is_training();
  model_->eval();  // running statistics: no batch moments, so no collectives inside
  Tensor total = zeros({}, DType::Float64);
  {
    ad::NoGradGuard ng;
    for (int64_t k = 0; k < batches; ++k) {
      const Tensor x = batch_input(k).to(model_->device());
      if (x.shape()[0] == 0) continue;
      const ad::Var u = (*model_)(ad::Var(x));
      const Tensor l = problem_->loss(u, x, static_cast<int64_t>(batch_indices(k).size())).data();
      total = ad::add(ad::Var(total), ad::Var(l.to(DType::Float64).cpu())).data();
    }
  }
  model_->train(was_training);
  comm_->all_reduce(total);
  return total.item() / static_cast<double>(std::max<int64_t>(batches, 1));
}

Trainer::PreciseBn Trainer::precise_bn(int64_t batches) {
  const bool sync_bn = comm_->size() > 1 && cfg_.sync_bn;
  DFX_CHECK(sync_bn || comm_->size() == 1 || cfg_.batch >= comm_->size(),
            "precise BN without SyncBatchNorm needs a global batch >= the ranks (", comm_->size(),
            "), got ", cfg_.batch);
  PreciseBn r;
  r.loss_before = eval_mode_loss(batches);
  const BnSnapshot training_averages(*model_);  // put back if re-estimating does not pay
  train::precise_bn(*model_, batches, [&](int64_t k) { return batch_input(k); });
  if (!sync_bn && comm_->size() > 1) {
    // Local moments differ per rank: every rank keeps their mean.
    for (nn::BatchNorm* bn : nn::batch_norm_layers(*model_))
      for (Tensor* t : {&bn->running_mean(), &bn->running_var()}) {
        comm_->all_reduce(*t);
        copy_(*t, ad::mul(ad::Var(*t), 1.0 / static_cast<double>(comm_->size())).data());
      }
  }
  r.loss_after = eval_mode_loss(batches);
  r.kept = r.loss_after < r.loss_before;  // all-reduced values: the same on every rank
  if (!r.kept) training_averages.restore();
  return r;
}

Trainer::~Trainer() = default;

std::vector<int64_t> Trainer::batch_indices(int64_t step) const {
  const int64_t epoch = step / steps_per_epoch_, k = step % steps_per_epoch_;
  std::vector<uint64_t> order = epoch_order(static_cast<uint64_t>(cfg_.samples), cfg_.seed, epoch);
  const int64_t begin = k * cfg_.batch, count = std::min(cfg_.batch, cfg_.samples - begin);
  std::vector<int64_t> global(count);
  for (int64_t i = 0; i < count; ++i) global[i] = static_cast<int64_t>(order[begin + i]);
  return global;
}

const Phase& Trainer::phase_at(int64_t step) const {
  for (const Phase& p : phases_)
    if (step < p.begin + p.steps) return p;
  return phases_.back();
}

const pde::Problem& Trainer::problem_at(int64_t res) {
  auto it = level_problems_.find(res);
  if (it != level_problems_.end()) return *it->second;
  // The same problem (name, seed, parameters) sampled at this level's resolution.
  pde::ProblemOptions o = problem_->options();
  o.res = res;
  std::shared_ptr<pde::Problem> p = pde::make_problem(o);
  level_problems_[res] = p;
  return *p;
}

double Trainer::run_step() {
  double loss = 0;
  with_objective(step_, [&](optim::Objective& objective) {
    opt_->set_lr(schedule_.lr(step_) * phase_at(step_).lr_factor);
    loss = opt_->step(objective);
  });
  return loss;
}

std::vector<Tensor> Trainer::gauss_newton(const std::vector<Tensor>& v) {
  std::vector<Tensor> out;
  with_objective(step_, [&](optim::Objective& objective) { out = objective.gauss_newton(v); });
  return out;
}

void Trainer::with_objective(int64_t step, const std::function<void(optim::Objective&)>& fn) {
  const Phase& phase = phase_at(step);
  const pde::Problem& problem = problem_at(phase.res);
  const std::vector<int64_t> global = batch_indices(step);
  const int64_t count = static_cast<int64_t>(global.size());
  std::vector<int64_t> mine = dist::shard_indices(global, comm_->rank(), comm_->size());
  std::vector<uint64_t> local(mine.begin(), mine.end());
  const bool sync_bn = comm_->size() > 1 && cfg_.sync_bn;
  const Device device = model_->device();
  const DType dtype = cfg_.model.dtype;
  // An empty shard still runs the network when SyncBatchNorm needs its collectives.
  auto forward = [&]() -> std::pair<Tensor, ad::Var> {
    if (local.empty() && !sync_bn) return {Tensor(), ad::Var()};
    // Non-blocking: on a GPU the step then waits for nothing but the loss it reports.
    Tensor x = (local.empty() ? Tensor::empty(problem.field_shape(0), dtype)
                              : problem.input(local, dtype)).to(device, /*non_blocking=*/true);
    return {x, (*model_)(ad::Var(x))};
  };
  auto local_loss = [&]() -> ad::Var {
    auto [x, u] = forward();
    if (!u.defined()) return ad::Var();
    if (!cfg_.output_precondition) return problem.loss(u, x, count);
    // The loss's value with the gradient J^T B dL/du: dL/du from the output alone, then
    // s = <u, B dL/du> carries the preconditioned gradient into the network, and s - s
    // (detached) + L keeps the value.
    ad::Var u_out = u.detach();
    u_out.requires_grad_();
    ad::Var l = problem.loss(u_out, x, count);
    l.backward();
    const Tensor g = u_out.grad().data();
    Tensor z = problem.preconditioner(u_out.data(), x, cfg_.output_vcycles)(g);
    if (cfg_.output_blend != 0)
      z = ad::add(ad::Var(z), ad::mul(ad::Var(g), cfg_.output_blend)).data();
    ad::Var s = ad::sum(ad::mul(u, ad::Var(z)));
    return ad::add(ad::sub(s, s.detach()), l.detach());
  };
  const bool twice = !cfg_.model.bn_recompute && !cfg_.model.activation_checkpoint;
  BatchObjective objective(*comm_, *reducer_, *opt_, local_loss, forward, problem, count, local,
                           sync_bn || count >= comm_->size(), twice, cfg_.output_precondition);
  fn(objective);
}

TrainResult Trainer::train(int64_t max_steps) {
  TrainResult r;
  const bool root = comm_->is_root();
  // The handlers stay only while this call runs (a host's own come back afterwards).
  struct Handlers {
    bool on;
    Handlers(bool on, bool announce) : on(on) { if (on) install_stop_handlers(announce); }
    ~Handlers() { if (on) restore_stop_handlers(); }
  } handlers(cfg_.stop_on_signal, root);
  auto t_start = std::chrono::steady_clock::now();
  const double elapsed0 = train_seconds_, eval_before = eval_seconds_;
  // Training time excludes this call's evaluations (earlier calls' are already out of elapsed0).
  auto elapsed_now = [&] { return elapsed0 + since(t_start) - (eval_seconds_ - eval_before); };
  int64_t taken = 0;
  r.reason = StopReason::Paused;
  while (step_ < total_steps_ && taken < max_steps) {
    const int64_t epoch = step_ / steps_per_epoch_;
    const int64_t count = static_cast<int64_t>(batch_indices(step_).size());
    const int64_t res = phase_at(step_).res;
    if (cfg_.grow_depth) grow_to(phase_at(step_).depth);
    auto t0 = std::chrono::steady_clock::now();
    const double loss = run_step();
    if (!std::isfinite(loss)) {
      r.reason = StopReason::NonFinite;
      last_loss_ = loss;
      break;
    }
    // This loss was taken at the weights of a checkpoint written at this step: they are good.
    if (candidate_step_ == step_) last_good_ = candidate_;
    ++step_;
    ++taken;
    last_loss_ = loss;
    const double dt = since(t0), elapsed = elapsed_now();
    wait_total_ += reducer_->last_wait_seconds();
    step_total_ += dt;
    if (callbacks_.on_step)
      callbacks_.on_step({step_, res, total_steps_, start_step_, epoch, loss, dt, elapsed,
                          static_cast<double>(count) / dt, opt_->lr(), reducer_->last_wait_seconds()});
    if (root && cfg_.eval_samples > 0 && cfg_.eval_every > 0 && step_ % cfg_.eval_every == 0) {
      auto te = std::chrono::steady_clock::now();
      evaluate_now();
      eval_seconds_ += since(te);
      if (callbacks_.on_eval)
        callbacks_.on_eval({step_, elapsed,
                            static_cast<double>(step_ * cfg_.batch) / static_cast<double>(cfg_.samples),
                            held_out_, cfg_.eval_train_samples > 0 ? &train_probe_ : nullptr});
    }
    // Every rank stops at the same step: a stop request on any rank (signals reach the ranks of
    // a job at slightly different times) and rank 0's clock for the time budget.
    int signal = stop_requested();
    bool out_of_time = cfg_.max_time > 0 && elapsed >= cfg_.max_time;
    if (comm_->size() > 1) {
      Tensor flags = from_vector<int64_t>({signal, root && out_of_time ? 1 : 0}, {2});
      comm_->all_reduce(flags, dist::ReduceOp::Max);
      signal = static_cast<int>(flags.data<int64_t>()[0]);
      out_of_time = flags.data<int64_t>()[1] != 0;
    }
    if (signal != 0 && step_ < total_steps_) {
      r.reason = StopReason::Interrupted;
      r.signal = signal;
      if (!cfg_.out.empty()) {
        if (save_checkpoint(cfg_.out + "/checkpoints/last.safetensors"))
          r.checkpoint = cfg_.out + "/checkpoints/last.safetensors";
        else
          r.reason = StopReason::NonFinite;
      }
      break;
    }
    if (out_of_time && step_ < total_steps_) {
      r.reason = StopReason::TimeBudget;
      break;
    }
    if (cfg_.checkpoint_every > 0 && step_ % cfg_.checkpoint_every == 0 && step_ < total_steps_ &&
        !cfg_.out.empty()) {
      char name[64];
      std::snprintf(name, sizeof name, "/checkpoints/step_%06lld.safetensors", (long long)step_);
      // A finite loss can still leave non-finite weights after the update: stop before a
      // checkpoint would hold them.
      if (!save_checkpoint(cfg_.out + name)) {
        r.reason = StopReason::NonFinite;
        last_loss_ = std::numeric_limits<double>::quiet_NaN();
        break;
      }
      save_checkpoint(cfg_.out + "/checkpoints/last.safetensors");
      if (comm_->is_root()) prune_step_checkpoints(cfg_.out + "/checkpoints", cfg_.keep_checkpoints, last_good_);
    }
  }
  if (step_ >= total_steps_ && r.reason == StopReason::Paused) r.reason = StopReason::Done;
  train_seconds_ = elapsed_now();
  r.steps_done = step_;
  r.last_loss = last_loss_;
  r.last_good_checkpoint = last_good_;
  return r;
}

TrainResult Trainer::fit() {
  TrainResult r = train(total_steps_);
  // Interrupted: the checkpoint is written; the caller is on its way out, so no evaluation.
  if (r.reason != StopReason::NonFinite && r.reason != StopReason::Interrupted) finish();
  r.last_good_checkpoint = last_good_;
  return r;
}

bool Trainer::weights_finite() const {
  for (const ad::Var& p : params_)
    if (!std::isfinite(kernels::sum(p.data()).item())) return false;
  return true;
}

bool Trainer::save_checkpoint(const std::string& path) {
  // Never overwrite a good checkpoint with NaN weights (every rank takes the same branch).
  if (!weights_finite()) return false;
  if (!comm_->is_root()) return true;
  const int64_t epoch = step_ > 0 ? (step_ - 1) / steps_per_epoch_ : 0;
  save_run_checkpoint(path, *model_, opt_.get(), cfg_.record, step_, epoch);
  // Weights alone beside it, for a strict load_state_dict in PyTorch.
  const std::string dir = path.substr(0, path.find_last_of('/') + 1);
  save_model_weights(dir + "model.safetensors", *model_);
  if (candidate_step_ != step_) {  // good once the next step's loss is finite
    candidate_ = path;
    candidate_step_ = step_;
  }
  if (callbacks_.on_checkpoint) callbacks_.on_checkpoint(path);
  return true;
}

void Trainer::finish() {
  if (finished_) return;
  finished_ = true;
  if (cfg_.precise_bn_batches > 0) precise_bn_result_ = precise_bn(cfg_.precise_bn_batches);
  if (!cfg_.out.empty()) save_checkpoint(cfg_.out + "/checkpoints/last.safetensors");
  if (comm_->is_root() && cfg_.eval_samples > 0) evaluate_now();
}

double Trainer::comm_wait_fraction() const { return wait_total_ / std::max(step_total_, 1e-12); }
size_t Trainer::bucket_count() const { return reducer_->bucket_count(); }

Tensor Trainer::predict(const Tensor& input) {
  const bool was_training = model_->is_training();
  model_->eval();
  ad::NoGradGuard ng;
  Tensor u = (*model_)(ad::Var(input.to(cfg_.model.dtype).to(model_->device()))).data();
  model_->train(was_training);
  return problem_->prediction(u).cpu();
}

}  // namespace dfx::train
