// train/checkpoint.cpp — run checkpoints and atomic writes (see checkpoint.h).
#include "train/checkpoint.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "models/checkpoint.h"

namespace dfx::train {

void save_run_checkpoint(const std::string& path, const nn::Module& model,
                         const optim::Optimizer* opt, const nlohmann::json& config, int64_t step,
                         int64_t epoch) {
  nn::Named<Tensor> tensors = model.state_dict();
  if (opt)
    for (const auto& [k, t] : opt->state()) tensors.emplace_back("optim." + k, t);
  nn::Metadata meta;
  meta["config"] = config.dump();
  meta["step"] = std::to_string(step);
  meta["epoch"] = std::to_string(epoch);
  meta["format"] = "dfx run checkpoint 1";
  nn::save_safetensors(path, tensors, meta);
}

void save_model_weights(const std::string& path, const nn::Module& model) {
  nn::Metadata meta;
  meta["format"] = "pt";
  nn::save_safetensors(path, model.state_dict(), meta);
}

static LoadedCheckpoint parse_meta(const std::string& path, const nn::Metadata& meta) {
  auto it = meta.find("config");
  DFX_CHECK(it != meta.end(), "checkpoint '", path, "' has no run configuration in its metadata; "
            "expected a file written by dfx train");
  LoadedCheckpoint c;
  try {
    c.config = nlohmann::json::parse(it->second);
    c.step = std::stoll(meta.at("step"));
    c.epoch = std::stoll(meta.at("epoch"));
  } catch (const std::exception& e) {
    DFX_FAIL("checkpoint '", path, "' has corrupt metadata: ", e.what());
  }
  return c;
}

LoadedCheckpoint read_checkpoint_metadata(const std::string& path) {
  nn::Metadata meta;
  nn::load_safetensors(path, &meta);
  return parse_meta(path, meta);
}

LoadedCheckpoint load_run_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer* opt) {
  nn::Metadata meta;
  nn::Named<Tensor> all = nn::load_safetensors(path, &meta);
  LoadedCheckpoint c = parse_meta(path, meta);
  nn::Named<Tensor> weights;
  std::map<std::string, Tensor> optim_state;
  for (auto& [k, t] : all) {
    if (k.rfind("optim.", 0) == 0) optim_state[k.substr(6)] = t;
    else weights.emplace_back(k, t);
  }
  nn::load_state_dict(model, weights, true, "checkpoint '" + path + "'");
  c.has_optimizer_state = !optim_state.empty();
  if (opt && !optim_state.empty()) opt->load_state(optim_state);
  return c;
}

void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    DFX_CHECK(out.good(), "cannot write '", path, "' (opening ", tmp, " failed)");
    out << text;
    out.flush();
    DFX_CHECK(out.good(), "writing '", tmp, "' failed (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    DFX_FAIL("cannot rename '", tmp, "' to '", path, "'");
  }
}

void ensure_directory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  DFX_CHECK(!ec && std::filesystem::is_directory(dir), "cannot create output directory '", dir,
            "': ", ec ? ec.message() : "not a directory");
  DFX_CHECK(::access(dir.c_str(), W_OK) == 0, "output directory '", dir, "' is not writable");
}

}  // namespace dfx::train
