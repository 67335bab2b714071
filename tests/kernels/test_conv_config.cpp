// tests/kernels/test_conv_config.cpp — the convolution switches of kernels/conv_config.h: their
// defaults (Native, TF32 off, deterministic, quiet), the environment variables and their errors,
// the setters, and that CPU tensors ignore the backend. The GPU side is in
// tests/gpu/test_cuda_cudnn.cpp.
#include <doctest/doctest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "core/rng.h"
#include "kernels/conv.h"
#include "kernels/conv_config.h"

using namespace dfx;
namespace k = dfx::kernels;
using k::ConvBackend;

namespace {

const char* const kVars[] = {"DFX_CONV_BACKEND", "DFX_TF32", "DFX_CONV_DETERMINISTIC",
                             "DFX_CONV_LOG"};

// Saves the variables and the switches, clears the variables, and restores everything at the end.
struct EnvGuard {
  std::optional<std::string> saved[4];
  ConvBackend backend = k::conv_backend();
  bool tf32 = k::allow_tf32(), det = k::conv_deterministic(), log = k::conv_log();
  EnvGuard() {
    for (int i = 0; i < 4; ++i) {
      if (const char* v = std::getenv(kVars[i])) saved[i] = v;
      unsetenv(kVars[i]);
    }
  }
  ~EnvGuard() {
    for (int i = 0; i < 4; ++i) {
      if (saved[i]) setenv(kVars[i], saved[i]->c_str(), 1);
      else unsetenv(kVars[i]);
    }
    k::set_conv_backend(backend);
    k::set_allow_tf32(tf32);
    k::set_conv_deterministic(det);
    k::set_conv_log(log);
  }
};

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE("conv config: defaults without the environment are native, TF32 off, deterministic") {
  EnvGuard env;
  k::reload_conv_settings_from_env();
  CHECK(k::conv_backend() == ConvBackend::Native);
  CHECK_FALSE(k::allow_tf32());
  CHECK(k::conv_deterministic());
  CHECK_FALSE(k::conv_log());
  CHECK_FALSE(k::ConvGeometry().backend.has_value());
  CHECK_FALSE(k::ConvGeometry::make(2, {1}, {0}, {1}).backend.has_value());
}

TEST_CASE("conv config: the environment variables are read; malformed values name the variable") {
  EnvGuard env;
  setenv("DFX_CONV_BACKEND", "auto", 1);
  setenv("DFX_TF32", "1", 1);
  setenv("DFX_CONV_DETERMINISTIC", "off", 1);
  setenv("DFX_CONV_LOG", "TRUE", 1);
  k::reload_conv_settings_from_env();
  CHECK(k::conv_backend() == ConvBackend::Auto);
  CHECK(k::allow_tf32());
  CHECK_FALSE(k::conv_deterministic());
  CHECK(k::conv_log());

  setenv("DFX_CONV_BACKEND", "native", 1);
  setenv("DFX_TF32", "0", 1);
  setenv("DFX_CONV_DETERMINISTIC", "yes", 1);
  setenv("DFX_CONV_LOG", "", 1);
  k::reload_conv_settings_from_env();
  CHECK(k::conv_backend() == ConvBackend::Native);
  CHECK_FALSE(k::allow_tf32());
  CHECK(k::conv_deterministic());
  CHECK_FALSE(k::conv_log());

  // A malformed value throws naming it and leaves every switch as it was.
  setenv("DFX_CONV_BACKEND", "fastest", 1);
  setenv("DFX_TF32", "1", 1);
  CHECK_THROWS_WITH_AS(k::reload_conv_settings_from_env(),
                       doctest::Contains("DFX_CONV_BACKEND=fastest"), Error);
  CHECK_THROWS_WITH_AS(k::reload_conv_settings_from_env(),
                       doctest::Contains("expected auto, native or cudnn"), Error);
  CHECK(k::conv_backend() == ConvBackend::Native);
  CHECK_FALSE(k::allow_tf32());
  setenv("DFX_CONV_BACKEND", "auto", 1);
  setenv("DFX_TF32", "maybe", 1);
  CHECK_THROWS_WITH_AS(k::reload_conv_settings_from_env(), doctest::Contains("DFX_TF32=maybe"),
                       Error);

  setenv("DFX_TF32", "0", 1);
  setenv("DFX_CONV_BACKEND", "cudnn", 1);
  if (k::cudnn_available()) {
    k::reload_conv_settings_from_env();
    CHECK(k::conv_backend() == ConvBackend::Cudnn);
  } else {
    CHECK_THROWS_WITH_AS(k::reload_conv_settings_from_env(),
                         doctest::Contains("built without"), Error);
  }
}

TEST_CASE("conv config: names, flags and setters") {
  EnvGuard env;
  for (ConvBackend b : {ConvBackend::Auto, ConvBackend::Native, ConvBackend::Cudnn})
    CHECK(k::parse_conv_backend(k::conv_backend_name(b), "test") == b);
  CHECK_THROWS_WITH_AS(k::parse_conv_backend("CUDNN", "--conv-backend"),
                       doctest::Contains("--conv-backend: unknown convolution backend 'CUDNN'"),
                       Error);
  for (const char* t : {"1", "true", "On", "YES"}) CHECK(k::parse_env_flag("X", t));
  for (const char* f : {"", "0", "false", "OFF", "no"}) CHECK_FALSE(k::parse_env_flag("X", f));
  CHECK_THROWS_WITH_AS(k::parse_env_flag("DFX_TF32", "2"), doctest::Contains("DFX_TF32=2"), Error);

  k::set_allow_tf32(true);
  CHECK(k::allow_tf32());
  k::set_allow_tf32(false);
  CHECK_FALSE(k::allow_tf32());
  k::set_conv_backend(ConvBackend::Auto);
  CHECK(k::conv_backend() == ConvBackend::Auto);
  if (k::cudnn_available()) {
    k::set_conv_backend(ConvBackend::Cudnn);
    CHECK(k::conv_backend() == ConvBackend::Cudnn);
  } else {
    CHECK_THROWS_WITH_AS(k::set_conv_backend(ConvBackend::Cudnn),
                         doctest::Contains("built without"), Error);
    CHECK(k::conv_backend() == ConvBackend::Auto);
  }
}

TEST_CASE("conv config: CPU convolutions ignore the backend and leave no autotune record") {
  EnvGuard env;
  k::clear_conv_tune_cache();
  const Tensor x = randn({2, 3, 7, 6}, 1, 0, 0, DType::Float64);
  const Tensor w = randn({4, 3, 3, 3}, 2, 0, 0, DType::Float64);
  k::ConvGeometry g = k::ConvGeometry::make(2, {1}, {1}, {1});
  const std::vector<double> want = k::conv(x, w, Tensor(), g).to_vector();
  for (ConvBackend b : {ConvBackend::Auto, ConvBackend::Native, ConvBackend::Cudnn}) {
    g.backend = b;
    CHECK(k::conv(x, w, Tensor(), g).to_vector() == want);
    const Tensor gy = randn({2, 4, 7, 6}, 3, 0, 0, DType::Float64);
    CHECK(k::conv_transpose(gy, w, Tensor(), x.shape(), g).shape() == x.shape());
    CHECK(k::conv_weight_grad(gy, x, w.shape(), g).shape() == w.shape());
  }
  k::set_conv_backend(ConvBackend::Auto);
  g.backend.reset();
  CHECK(k::conv(x, w, Tensor(), g).to_vector() == want);
  CHECK(k::conv_tune_records().empty());
}

}  // TEST_SUITE
