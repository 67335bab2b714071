// train/checkpoint.cpp — run checkpoints and atomic writes (see checkpoint.h).
#include "train/checkpoint.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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
  c.config = nlohmann::json::parse(it->second, nullptr, false);
  DFX_CHECK(c.config.is_object(), "checkpoint '", path, "' has corrupt metadata: its run "
            "configuration is not a JSON object");
  auto count = [&](const char* key) -> int64_t {
    auto m = meta.find(key);
    DFX_CHECK(m != meta.end(), "checkpoint '", path, "' has corrupt metadata: no ", key, " entry");
    const std::string& v = m->second;
    DFX_CHECK(!v.empty() && v.size() < 19 && v.find_first_not_of("0123456789") == std::string::npos,
              "checkpoint '", path, "' has corrupt metadata: ", key, " '", v, "' is not a ", key,
              " number (expected a non-negative integer)");
    return std::stoll(v);
  };
  c.step = count("step");
  c.epoch = count("epoch");
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

DirLock::DirLock(const std::string& dir) : path_(dir + "/.lock") {
  // A few tries: the previous owner may remove the file between our open() and flock().
  for (int attempt = 0; attempt < 8; ++attempt) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    DFX_CHECK(fd_ >= 0, "cannot create the lock file '", path_, "': ", std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      char buf[32] = {0};
      ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
      std::string owner = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
      while (!owner.empty() && (owner.back() == '\n' || owner.back() == ' ')) owner.pop_back();
      ::close(fd_);
      fd_ = -1;
      DFX_CHECK(err == EWOULDBLOCK, "cannot lock '", path_, "': ", std::strerror(err));
      DFX_FAIL("output directory '", dir, "' is in use by another run (pid ", owner, ", lock file ",
               path_, "); wait for it to end or stop it, or choose another --out");
    }
    struct stat held {}, on_disk {};
    if (::fstat(fd_, &held) == 0 && ::stat(path_.c_str(), &on_disk) == 0 &&
        held.st_ino == on_disk.st_ino && held.st_dev == on_disk.st_dev) {
      const std::string pid = std::to_string(::getpid()) + "\n";
      if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
        // The lock holds without the pid; only the message of a second run suffers.
      }
      return;
    }
    ::close(fd_);  // we locked a file that was just removed: try the new one
    fd_ = -1;
  }
  DFX_FAIL("cannot take the lock file '", path_, "' (it keeps being replaced)");
}

DirLock::~DirLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while still holding it, so no one locks a removed file for good
  ::close(fd_);
}

}  // namespace dfx::train
