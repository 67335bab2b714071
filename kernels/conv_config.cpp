// kernels/conv_config.cpp — the convolution switches of kernels/conv_config.h: atomics filled
// from the environment on first use, so reading them on every convolution costs nothing.
#include "kernels/conv_config.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <mutex>

#include "config.h"
#include "core/error.h"
#include "kernels/cpu/amx_gemm.h"
#if DFX_HAVE_CUDNN
#include "kernels/cuda/conv_cudnn.cuh"
#endif

namespace dfx::kernels {
namespace {

struct State {
  std::atomic<int> backend{static_cast<int>(ConvBackend::Native)};
  std::atomic<bool> tf32{false}, amx_bf16{false}, deterministic{true}, log{false};
};

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

ConvBackend checked_backend(ConvBackend b, const std::string& source) {
  DFX_CHECK(b != ConvBackend::Cudnn || cudnn_available(), source,
            ": the cudnn convolution backend needs cuDNN, but dfx was built without it; "
            "rebuild with -Dcudnn=enabled (and -Dcudnn_root=PREFIX if cuDNN is not in the CUDA "
            "toolkit), or use native or auto");
  return b;
}

// Parses every variable before storing any, so a malformed one leaves the previous values.
void load_env(State& s) {
  const std::string b = env("DFX_CONV_BACKEND");
  const ConvBackend backend =
      b.empty() ? ConvBackend::Native
                : checked_backend(parse_conv_backend(b, "DFX_CONV_BACKEND=" + b),
                                  "DFX_CONV_BACKEND=" + b);
  const std::string det = env("DFX_CONV_DETERMINISTIC");
  const bool tf32 = parse_env_flag("DFX_TF32", env("DFX_TF32"));
  const bool amx_bf16 = parse_env_flag("DFX_AMX_BF16", env("DFX_AMX_BF16"));
  const bool deterministic = det.empty() ? true : parse_env_flag("DFX_CONV_DETERMINISTIC", det);
  const bool log = parse_env_flag("DFX_CONV_LOG", env("DFX_CONV_LOG"));
  s.backend = static_cast<int>(backend);
  s.tf32 = tf32;
  s.amx_bf16 = amx_bf16;
  s.deterministic = deterministic;
  s.log = log;
}

// The switches, read from the environment once. A malformed variable throws here; the next call
// tries again (std::call_once is not marked done by an exception).
State& state() {
  static State s;
  static std::once_flag once;
  std::call_once(once, [] { load_env(s); });
  return s;
}

}  // namespace

const char* conv_backend_name(ConvBackend b) {
  switch (b) {
    case ConvBackend::Auto: return "auto";
    case ConvBackend::Native: return "native";
    case ConvBackend::Cudnn: return "cudnn";
  }
  return "?";
}

ConvBackend parse_conv_backend(const std::string& text, const std::string& source) {
  if (text == "auto") return ConvBackend::Auto;
  if (text == "native") return ConvBackend::Native;
  if (text == "cudnn") return ConvBackend::Cudnn;
  DFX_FAIL(source, ": unknown convolution backend '", text, "'; expected auto, native or cudnn");
}

bool parse_env_flag(const std::string& name, const std::string& value) {
  std::string v = value;
  std::transform(v.begin(), v.end(), v.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (v == "1" || v == "true" || v == "on" || v == "yes") return true;
  if (v.empty() || v == "0" || v == "false" || v == "off" || v == "no") return false;
  DFX_FAIL(name, "=", value, ": expected 1 or 0 (also true/false, on/off, yes/no)");
}

bool cudnn_available() { return DFX_HAVE_CUDNN != 0; }

ConvBackend conv_backend() { return static_cast<ConvBackend>(state().backend.load()); }
void set_conv_backend(ConvBackend b) {
  state().backend = static_cast<int>(checked_backend(b, "set_conv_backend(cudnn)"));
}

bool allow_tf32() { return state().tf32.load(); }
void set_allow_tf32(bool on) { state().tf32 = on; }

bool allow_amx_bf16() { return state().amx_bf16.load(); }
void set_allow_amx_bf16(bool on) { state().amx_bf16 = on; }
bool amx_bf16_available() { return cpu::amx_usable(); }
bool amx_bf16_active() { return allow_amx_bf16() && amx_bf16_available(); }

bool conv_deterministic() { return state().deterministic.load(); }
void set_conv_deterministic(bool on) { state().deterministic = on; }

bool conv_log() { return state().log.load(); }
void set_conv_log(bool on) { state().log = on; }

void reload_conv_settings_from_env() { load_env(state()); }

std::vector<ConvTuneRecord> conv_tune_records() {
#if DFX_HAVE_CUDNN
  return cuda::cudnn::tune_records();
#else
  return {};
#endif
}

void clear_conv_tune_cache() {
#if DFX_HAVE_CUDNN
  cuda::cudnn::clear_tune_cache();
#endif
}

}  // namespace dfx::kernels
