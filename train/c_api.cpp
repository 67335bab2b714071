// train/c_api.cpp — the C API of train/dfx_c.h: the JSON configuration (the keys and defaults
// of `dfx train`: the same declarations, train/options.h) becomes a train::TrainConfig, a
// problem, a U-Net and a communicator, and a train::Trainer runs them. Every entry point catches
// everything and leaves the message in a thread-local string.
#include "train/dfx_c.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config.h"
#include "core/cuda_runtime.h"
#include "dist/communicator.h"
#include "dist/threads.h"
#include "kernels/conv_config.h"
#include "train/checkpoint.h"
#include "train/options.h"
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

// ---- the configuration: `dfx train`'s own declarations (train/options.h), keys as JSON -------
const train::Schema<train::TrainOptions>& schema() {
  static const train::Schema<train::TrainOptions> s(train::train_options(), {"", false});
  return s;
}

Device device_of(const train::TrainOptions& o, dist::Communicator& comm) {
  Device d = Device::parse(o.device);
  if (d.is_cuda()) {
    DFX_CHECK(cuda::is_built(), "device ", d.str(), ": dfx was built without CUDA");
    const int n = cuda::device_count();
    DFX_CHECK(n > 0, "device ", d.str(), ": no CUDA device is visible");
    DFX_CHECK(d.index < n, "device ", d.str(), ": only ", n, " CUDA device(s) visible");
    if (o.device == "cuda") d.index = dist::node_rank(comm).local_rank % n;
  }
  if (o.tf32) kernels::set_allow_tf32(true);
  if (o.amx_bf16) kernels::set_allow_amx_bf16(true);
  if (!o.conv_backend.empty()) {
    const kernels::ConvBackend b = kernels::parse_conv_backend(o.conv_backend, "conv_backend");
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
  train::TrainOptions o;
  o.out = "";  // no run directory unless asked
  schema().apply_json(o, given, "the configuration");
  if (!o.resume.empty()) {
    // Architecture and problem from the checkpoint unless given (as `dfx train --resume`).
    train::LoadedCheckpoint meta = train::read_checkpoint_metadata(o.resume);
    for (const char* k : {"problem", "res", "depth", "width", "dtype", "seed"})
      if (!o.was_given(k) && meta.config.contains(k))
        schema().apply_json(o, nlohmann::json{{k, meta.config[k]}}, "the checkpoint");
  }
  auto h = std::make_unique<dfx_trainer>();
  h->comm = std::move(comm);
  DFX_CHECK(o.threads >= 0, "threads must be >= 0, got ", o.threads);
  if (o.threads > 0) dist::configure_threads(*h->comm, o.threads);
  h->problem = pde::make_problem(train::problem_options(o));
  h->device = device_of(o, *h->comm);
  train::apply_optimizer_defaults(o);
  h->cfg = train::train_config(o, {"levels", "level_steps", "level_lr"});
  train::TrainConfig& cfg = h->cfg;
  train::check_resolution(cfg.model, o.res);
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
