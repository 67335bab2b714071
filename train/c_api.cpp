// train/c_api.cpp — the C API of train/dfx_c.h: the JSON configuration (the keys and defaults
// of `dfx train`, apps/run_common.cpp and apps/cmd_train.cpp) becomes a train::TrainConfig, a
// problem, a U-Net and a communicator, and a train::Trainer runs them. Every entry point catches
// everything and leaves the message in a thread-local string.
#include "train/dfx_c.h"

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config.h"
#include "core/cuda_runtime.h"
#include "dist/communicator.h"
#include "dist/threads.h"
#include "kernels/conv_config.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

#if DFX_HAVE_MPI
#include <mpi.h>

#include "dist/mpi_communicator.h"
#endif

using namespace dfx;

struct dfx_trainer {
  train::TrainConfig cfg;
  std::shared_ptr<pde::Problem> problem;
  std::shared_ptr<dist::Communicator> comm;
  Device device = Device::cpu();
  std::unique_ptr<train::Trainer> trainer;
  // A checkpoint at or past the configured steps was loaded (weights only in effect).
  bool at_end = false;
  int64_t end_step = 0;
};

namespace {

thread_local std::string last_error;

// Status codes for the failures the wrappers recognise.
struct Status : std::runtime_error {
  int code;
  Status(int c, const std::string& m) : std::runtime_error(m), code(c) {}
};

template <typename F>
int guarded(const char* fn, F&& f) {
  try {
    return f();
  } catch (const Status& s) {
    last_error = std::string(fn) + ": " + s.what();
    return s.code;
  } catch (const std::exception& e) {
    last_error = std::string(fn) + ": " + e.what();
    return DFX_ERROR;
  } catch (...) {
    last_error = std::string(fn) + ": unknown exception";
    return DFX_ERROR;
  }
}

void need(bool ok, const char* what) {
  if (!ok) throw Status(DFX_EINVAL, what);
}

// ---- the configuration: `dfx train`'s option table, as text values --------------------------
enum class Ty { Int, Float, String, Bool };
struct Key {
  const char* name;
  Ty type;
  const char* value;                    // default
  std::vector<std::string> choices = {};
};

std::vector<Key> keys() {
  return {
      {"problem", Ty::String, "poisson2d", pde::problem_names()},
      {"res", Ty::Int, "64"},
      {"depth", Ty::Int, "4"},
      {"width", Ty::Int, "16"},
      {"batch", Ty::Int, "8"},
      {"optimizer", Ty::String, "adam", optim::optimizer_names()},
      {"history_size", Ty::Int, "10"},
      {"cg_iters", Ty::Int, "20"},
      {"trust_radius", Ty::Float, "1"},
      {"cg_forcing", Ty::Float, "-1"},
      {"damping", Ty::Float, "1"},
      {"precondition", Ty::Bool, "false"},
      {"hessian_every", Ty::Int, "1"},
      {"hessian_power", Ty::Float, "1"},
      {"lr", Ty::Float, "0.001"},  // the optimiser's customary rate when not given
      {"schedule", Ty::String, "constant", {"constant", "cosine", "step", "multistep", "exponential"}},
      {"warmup_steps", Ty::Int, "0"},
      {"lr_min", Ty::Float, "0"},
      {"gamma", Ty::Float, "0.1"},
      {"step_size", Ty::Int, "1000"},
      {"milestones", Ty::String, ""},
      {"momentum", Ty::Float, "0.9"},
      {"weight_decay", Ty::Float, "0"},
      {"seed", Ty::Int, "0"},
      {"device", Ty::String, "cpu"},
      {"channels_last", Ty::Bool, "false"},
      {"tf32", Ty::Bool, "false"},
      {"activation_checkpoint", Ty::Bool, "false"},
      {"bn_recompute", Ty::Bool, "false"},
      {"conv_backend", Ty::String, "", {"auto", "native", "cudnn"}},
      {"dtype", Ty::String, "float32", {"float32", "float64"}},
      {"threads", Ty::Int, "0"},
      {"visc", Ty::Float, "0.01"},
      {"boundary_factor", Ty::Float, "64"},
      {"steps", Ty::Int, "0"},
      {"epochs", Ty::Int, "1"},
      {"samples", Ty::Int, "256"},
      {"out", Ty::String, ""},  // `dfx train`: runs/latest
      {"checkpoint_every", Ty::Int, "0"},
      {"keep_checkpoints", Ty::Int, "3"},
      {"resume", Ty::String, ""},
      {"eval_samples", Ty::Int, "8"},
      {"eval_every", Ty::Int, "0"},
      {"max_time", Ty::Float, "0"},
      {"eval_train_samples", Ty::Int, "0"},
      {"precise_bn", Ty::Int, "0"},
      {"output_precondition", Ty::Bool, "false"},
      {"output_blend", Ty::Float, "0.1"},
      {"panels", Ty::Int, "3"},      // ignored (pictures are the command line's)
      {"log_every", Ty::Int, "10"},  // ignored
      {"bucket_mb", Ty::Float, "25"},
      {"sync_bn", Ty::Bool, "true"},
      {"overlap", Ty::Bool, "true"},
      {"levels", Ty::String, ""},
      {"level_steps", Ty::String, ""},
      {"level_lr", Ty::String, ""},
      {"cycle", Ty::String, "half-v", {"half-v", "v", "w", "f"}},
      {"cycles", Ty::Int, "1"},
      {"check_memory", Ty::Bool, "true"},
      {"comm", Ty::String, "auto", {"auto", "local", "mpi", "nccl"}},  // ignored: given by the call
  };
}

class Config {
 public:
  explicit Config(const nlohmann::json& j) {
    for (const Key& k : keys()) {
      table_[k.name] = k;
      values_[k.name] = k.value;
    }
    apply(j, "the configuration");
  }
  void apply(const nlohmann::json& j, const std::string& source) {
    DFX_CHECK(j.is_object(), source, " must be a JSON object, got ", j.dump());
    for (auto it = j.begin(); it != j.end(); ++it) {
      const auto& v = it.value();
      if (v.is_null()) continue;
      std::string text;
      if (v.is_string()) text = v.get<std::string>();
      else if (v.is_boolean()) text = v.get<bool>() ? "true" : "false";
      else if (v.is_number_integer()) text = std::to_string(v.get<int64_t>());
      else if (v.is_number()) {
        std::ostringstream os;
        os.precision(17);
        os << v.get<double>();
        text = os.str();
      } else {
        DFX_FAIL("key '", it.key(), "' in ", source, " must be a string, number or boolean");
      }
      assign(it.key(), text, source);
    }
  }
  int64_t i(const std::string& k) const { return std::stoll(values_.at(k)); }
  double f(const std::string& k) const { return std::stod(values_.at(k)); }
  const std::string& s(const std::string& k) const { return values_.at(k); }
  bool b(const std::string& k) const { return values_.at(k) == "true"; }
  bool given(const std::string& k) const { return given_.count(k) != 0; }

 private:
  void assign(const std::string& key, const std::string& value, const std::string& source) {
    auto it = table_.find(key);
    if (it == table_.end()) {
      std::string list;
      for (const auto& [name, k] : table_) list += (list.empty() ? "" : ", ") + name;
      DFX_FAIL("unknown key '", key, "' in ", source, "; the keys are those of `dfx train --help` "
               "with _ for -: ", list);
    }
    const Key& k = it->second;
    auto bad = [&] {
      const char* what = k.type == Ty::Int ? "an integer" : k.type == Ty::Float ? "a number" : "true or false";
      DFX_FAIL("key '", key, "' in ", source, " must be ", what, ", got '", value, "'");
    };
    size_t used = 0;
    try {
      switch (k.type) {
        case Ty::Int: std::stoll(value, &used); if (used != value.size()) bad(); break;
        case Ty::Float: std::stod(value, &used); if (used != value.size()) bad(); break;
        case Ty::Bool:
          if (value != "true" && value != "false" && value != "1" && value != "0") bad();
          break;
        case Ty::String:
          if (!k.choices.empty()) {
            bool ok = false;
            std::string list;
            for (const auto& c : k.choices) {
              ok = ok || c == value;
              list += (list.empty() ? "" : "|") + c;
            }
            DFX_CHECK(ok, "key '", key, "' in ", source, " must be one of ", list, ", got '", value, "'");
          }
          break;
      }
    } catch (const std::invalid_argument&) {
      bad();
    } catch (const std::out_of_range&) {
      bad();
    }
    values_[key] = k.type == Ty::Bool ? (value == "true" || value == "1" ? "true" : "false") : value;
    given_[key] = true;
  }
  std::map<std::string, Key> table_;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> given_;
};

optim::Schedule schedule_config(const Config& o) {
  optim::Schedule s;
  s.kind = optim::Schedule::parse_kind(o.s("schedule"));
  s.base_lr = o.f("lr");
  s.min_lr = o.f("lr_min");
  s.gamma = o.f("gamma");
  s.step_size = o.i("step_size");
  s.warmup_steps = o.i("warmup_steps");
  DFX_CHECK(s.warmup_steps >= 0 && s.step_size >= 1, "warmup_steps must be >= 0 and step_size >= 1");
  s.milestones = train::parse_step_list(o.s("milestones"), "milestones");
  return s;
}

Device device_of(const Config& o, dist::Communicator& comm) {
  const std::string name = o.s("device");
  Device d = Device::parse(name);
  if (d.is_cuda()) {
    DFX_CHECK(cuda::is_built(), "device ", d.str(), ": dfx was built without CUDA");
    const int n = cuda::device_count();
    DFX_CHECK(n > 0, "device ", d.str(), ": no CUDA device is visible");
    DFX_CHECK(d.index < n, "device ", d.str(), ": only ", n, " CUDA device(s) visible");
    if (name == "cuda") d.index = dist::node_rank(comm).local_rank % n;
  }
  if (o.b("tf32")) kernels::set_allow_tf32(true);
  if (!o.s("conv_backend").empty()) {
    const kernels::ConvBackend b = kernels::parse_conv_backend(o.s("conv_backend"), "conv_backend");
    DFX_CHECK(b != kernels::ConvBackend::Cudnn || kernels::cudnn_available(),
              "conv_backend cudnn: dfx was built without cuDNN");
    kernels::set_conv_backend(b);
  }
  return d;
}

std::unique_ptr<train::Trainer> make_trainer(dfx_trainer& h) {
  auto model = train::build_unet(h.cfg.model, h.problem->dims(), h.device, h.cfg.optimizer.name);
  return std::make_unique<train::Trainer>(h.cfg, model, h.problem, h.comm);
}

int create(const char* json, std::shared_ptr<dist::Communicator> comm, dfx_trainer** out) {
  need(json != nullptr, "json is NULL");
  const nlohmann::json given = nlohmann::json::parse(json, nullptr, false);
  DFX_CHECK(!given.is_discarded(), "the configuration is not valid JSON: ", json);
  Config o(given);
  if (!o.s("resume").empty()) {
    // Architecture and problem from the checkpoint unless given (as `dfx train --resume`).
    train::LoadedCheckpoint meta = train::read_checkpoint_metadata(o.s("resume"));
    for (const char* k : {"problem", "res", "depth", "width", "dtype", "seed"})
      if (!o.given(k) && meta.config.contains(k)) o.apply(nlohmann::json{{k, meta.config[k]}}, "the checkpoint");
  }
  auto h = std::make_unique<dfx_trainer>();
  h->comm = std::move(comm);
  DFX_CHECK(o.i("threads") >= 0, "threads must be >= 0, got ", o.i("threads"));
  if (o.i("threads") > 0) dist::configure_threads(*h->comm, o.i("threads"));
  pde::ProblemOptions p;
  p.name = o.s("problem");
  p.res = o.i("res");
  p.seed = static_cast<uint64_t>(o.i("seed"));
  p.visc = o.f("visc");
  p.boundary_factor = o.f("boundary_factor");
  DFX_CHECK(p.visc >= 0, "visc must be >= 0, got ", p.visc);
  h->problem = pde::make_problem(p);
  h->device = device_of(o, *h->comm);

  train::TrainConfig& cfg = h->cfg;
  cfg.model.depth = static_cast<int>(o.i("depth"));
  cfg.model.width = o.i("width");
  cfg.model.dtype = o.s("dtype") == "float64" ? DType::Float64 : DType::Float32;
  cfg.model.seed = static_cast<uint64_t>(o.i("seed"));
  cfg.model.channels_last = o.b("channels_last");
  cfg.model.bn_recompute = o.b("bn_recompute");
  cfg.model.activation_checkpoint = o.b("activation_checkpoint");
  train::check_resolution(cfg.model, p.res);
  optim::OptimizerConfig& c = cfg.optimizer;
  c.name = o.s("optimizer");
  c.lr = o.given("lr") ? o.f("lr") : optim::optimizer_info(c.name).default_lr;
  c.momentum = o.f("momentum");
  c.weight_decay = o.f("weight_decay");
  c.history_size = static_cast<int>(o.i("history_size"));
  c.cg_iters = static_cast<int>(o.i("cg_iters"));
  c.trust_radius = o.f("trust_radius");
  c.cg_forcing = o.f("cg_forcing");
  c.damping = o.f("damping");
  c.precondition = o.b("precondition");
  c.hessian_every = static_cast<int>(o.i("hessian_every"));
  c.hessian_power = o.f("hessian_power");
  c.seed = static_cast<uint64_t>(o.i("seed"));
  cfg.schedule = schedule_config(o);
  cfg.schedule.base_lr = c.lr;
  cfg.batch = o.i("batch");
  cfg.steps = o.i("steps");
  cfg.epochs = o.i("epochs");
  cfg.samples = o.i("samples");
  cfg.seed = static_cast<uint64_t>(o.i("seed"));
  cfg.out = o.s("out");
  cfg.checkpoint_every = o.i("checkpoint_every");
  cfg.keep_checkpoints = o.i("keep_checkpoints");
  cfg.resume = o.s("resume");
  cfg.eval_samples = o.i("eval_samples");
  cfg.eval_every = o.i("eval_every");
  cfg.max_time = o.f("max_time");
  cfg.bucket_mb = o.f("bucket_mb");
  cfg.sync_bn = o.b("sync_bn");
  cfg.overlap = o.b("overlap");
  cfg.eval_train_samples = o.i("eval_train_samples");
  cfg.precise_bn_batches = o.i("precise_bn");
  cfg.output_precondition = o.b("output_precondition");
  cfg.output_blend = o.f("output_blend");
  cfg.check_memory = o.b("check_memory");
  cfg.levels = train::parse_levels(o.s("levels"), o.s("level_steps"), o.s("level_lr"),
                                   {"levels", "level_steps", "level_lr"});
  cfg.cycle = train::parse_cycle(o.s("cycle"));
  cfg.cycles = static_cast<int>(o.i("cycles"));
  cfg.record = given;
  h->trainer = make_trainer(*h);
  *out = h.release();
  return DFX_OK;
}

int64_t field_numel(const dfx_trainer& h, int64_t batch) {
  return shape_numel(h.problem->field_shape(batch));
}

}  // namespace

extern "C" {

const char* dfx_last_error(void) { return last_error.c_str(); }

int dfx_trainer_create_local(const char* json, dfx_trainer** out) {
  if (out) *out = nullptr;
  return guarded("dfx_trainer_create_local", [&] {
    need(out != nullptr, "out is NULL");
    return create(json, dist::make_local(), out);
  });
}

int dfx_trainer_create_mpi(const char* json, const void* comm, dfx_trainer** out) {
  if (out) *out = nullptr;
  return guarded("dfx_trainer_create_mpi", [&]() -> int {
    need(out != nullptr && comm != nullptr, "out or comm is NULL");
#if DFX_HAVE_MPI
    return create(json, dist::make_mpi(*static_cast<const MPI_Comm*>(comm)), out);
#else
    throw Status(DFX_ENOMPI, "dfx was built without MPI; use dfx_trainer_create_local");
#endif
  });
}

int dfx_trainer_create_f(const char* json, int fcomm, dfx_trainer** out) {
  if (out) *out = nullptr;
  return guarded("dfx_trainer_create_f", [&]() -> int {
    need(out != nullptr, "out is NULL");
#if DFX_HAVE_MPI
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) throw Status(DFX_ERROR, "MPI is not initialised (call MPI_Init first)");
    return create(json, dist::make_mpi(MPI_Comm_f2c(static_cast<MPI_Fint>(fcomm))), out);
#else
    (void)fcomm;
    throw Status(DFX_ENOMPI, "dfx was built without MPI; use dfx_trainer_create_local");
#endif
  });
}

int dfx_trainer_train(dfx_trainer* t, int64_t steps) {
  return guarded("dfx_trainer_train", [&] {
    need(t != nullptr, "the trainer is NULL");
    need(steps >= 0, "steps must be >= 0");
    if (t->at_end || steps == 0) return DFX_OK;
    const train::TrainResult r = t->trainer->train(steps);
    if (r.reason == train::StopReason::NonFinite) {
      last_error = "dfx_trainer_train: non-finite loss at step " + std::to_string(r.steps_done + 1);
      return DFX_ENONFINITE;
    }
    return DFX_OK;
  });
}

int dfx_trainer_finish(dfx_trainer* t) {
  return guarded("dfx_trainer_finish", [&] {
    need(t != nullptr, "the trainer is NULL");
    t->trainer->finish();
    return DFX_OK;
  });
}

int dfx_trainer_last_loss(const dfx_trainer* t, double* loss) {
  return guarded("dfx_trainer_last_loss", [&] {
    need(t != nullptr && loss != nullptr, "the trainer or loss is NULL");
    *loss = t->trainer->last_loss();
    return DFX_OK;
  });
}

int dfx_trainer_step(const dfx_trainer* t, int64_t* step) {
  return guarded("dfx_trainer_step", [&] {
    need(t != nullptr && step != nullptr, "the trainer or step is NULL");
    *step = t->at_end ? t->end_step : t->trainer->step();
    return DFX_OK;
  });
}

int dfx_trainer_total_steps(const dfx_trainer* t, int64_t* total) {
  return guarded("dfx_trainer_total_steps", [&] {
    need(t != nullptr && total != nullptr, "the trainer or total is NULL");
    *total = t->trainer->total_steps();
    return DFX_OK;
  });
}

int dfx_trainer_rank(const dfx_trainer* t, int* rank, int* size) {
  return guarded("dfx_trainer_rank", [&] {
    need(t != nullptr, "the trainer is NULL");
    if (rank) *rank = t->comm->rank();
    if (size) *size = t->comm->size();
    return DFX_OK;
  });
}

int dfx_trainer_field_size(const dfx_trainer* t, int* dims, int64_t* res) {
  return guarded("dfx_trainer_field_size", [&] {
    need(t != nullptr, "the trainer is NULL");
    if (dims) *dims = t->problem->dims();
    if (res) *res = t->problem->options().res;
    return DFX_OK;
  });
}

int dfx_trainer_predict(dfx_trainer* t, const double* input, int64_t batch, double* output) {
  return guarded("dfx_trainer_predict", [&] {
    need(t != nullptr && input != nullptr && output != nullptr, "the trainer, input or output is NULL");
    need(batch >= 1, "batch must be >= 1");
    const Shape shape = t->problem->field_shape(batch);
    const int64_t n = field_numel(*t, batch);
    Tensor x = Tensor::empty(shape, DType::Float64);
    std::memcpy(x.raw_data(), input, static_cast<size_t>(n) * sizeof(double));
    Tensor u = t->trainer->predict(x).to(DType::Float64).contiguous();
    DFX_CHECK(u.numel() == n, "prediction has ", u.numel(), " values, expected ", n);
    std::memcpy(output, u.raw_data(), static_cast<size_t>(n) * sizeof(double));
    return DFX_OK;
  });
}

int dfx_trainer_save_checkpoint(dfx_trainer* t, const char* path) {
  return guarded("dfx_trainer_save_checkpoint", [&] {
    need(t != nullptr && path != nullptr, "the trainer or path is NULL");
    if (!t->trainer->save_checkpoint(path))
      throw Status(DFX_ENONFINITE, "dfx_trainer_save_checkpoint: the weights are not finite; '" +
                                       std::string(path) + "' was not written");
    return DFX_OK;
  });
}

int dfx_trainer_load_checkpoint(dfx_trainer* t, const char* path) {
  return guarded("dfx_trainer_load_checkpoint", [&] {
    need(t != nullptr && path != nullptr, "the trainer or path is NULL");
    const train::LoadedCheckpoint meta = train::read_checkpoint_metadata(path);
    if (meta.step >= t->trainer->total_steps()) {
      // Nothing left to train: weights and optimiser state into the present trainer.
      train::load_run_checkpoint(path, t->trainer->model(), &t->trainer->optimizer());
      t->at_end = true;
      t->end_step = meta.step;
      return DFX_OK;
    }
    // The Trainer resumes (weights, optimiser state, step) only when it is built, so a new one
    // is built on the same configuration, problem and communicator, resuming from `path`.
    train::TrainConfig cfg = t->cfg;
    cfg.resume = path;
    std::swap(cfg, t->cfg);
    try {
      auto fresh = make_trainer(*t);
      t->trainer = std::move(fresh);
    } catch (...) {
      std::swap(cfg, t->cfg);
      throw;
    }
    t->at_end = false;
    return DFX_OK;
  });
}

void dfx_trainer_free(dfx_trainer* t) {
  try {
    delete t;
  } catch (...) {
  }
}

}  // extern "C"
