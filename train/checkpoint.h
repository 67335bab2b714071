// train/checkpoint.h — run checkpoints: the model's state (PyTorch state_dict names), the
// optimiser's state under "optim.", and metadata {"config": the resolved run configuration,
// "step", "epoch"}, written atomically (temporary file, then rename). Beside each run checkpoint
// the trainer writes `model.safetensors` with weights and buffers only, which PyTorch's
// `model.load_state_dict(load_file(path))` accepts strictly.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "models/module.h"
#include "optim/optimizer.h"

namespace dfx::train {

void save_run_checkpoint(const std::string& path, const nn::Module& model,
                         const optim::Optimizer* opt, const nlohmann::json& config, int64_t step,
                         int64_t epoch);
// Weights and buffers only (no optimiser state, no run metadata), atomically.
void save_model_weights(const std::string& path, const nn::Module& model);
struct LoadedCheckpoint {
  nlohmann::json config;
  int64_t step = 0, epoch = 0;
  bool has_optimizer_state = false;
};
// Reads only the metadata (to rebuild the model before loading weights).
LoadedCheckpoint read_checkpoint_metadata(const std::string& path);
// Loads weights into `model` (strict: names, shapes) and, when given, the optimiser state.
LoadedCheckpoint load_run_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer* opt);

void write_text_atomic(const std::string& path, const std::string& text);
void ensure_directory(const std::string& dir);  // creates it (and parents); throws if not writable

// An exclusive claim on a run directory: `dir/.lock` holding the owner's pid, flock()ed for the
// object's lifetime and removed with it. A second claim (another process, even on another rank's
// view of the same file system where flock works) throws naming the owner's pid; the lock of a
// process that died (SIGKILL, a crash) is released by the kernel and taken over.
class DirLock {
 public:
  explicit DirLock(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace dfx::train
