// tests/models/model_test_util.h — helpers shared by the models suites: a scratch directory, the
// fixture path (tests/fixtures, overridable with $DFX_FIXTURES_DIR) and a norm-wise relative error.
#pragma once
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "core/tensor.h"
#include "tests/models/fixtures_dir.h"

namespace dfx::testing {

// A fresh directory per use, removed afterwards.
struct ScratchDir {
  std::filesystem::path dir;
  explicit ScratchDir(const std::string& tag = "models") {
    static int count = 0;
    dir = std::filesystem::temp_directory_path() /
          ("dfx_test_" + tag + "_" + std::to_string(getpid()) + "_" + std::to_string(count++));
    std::filesystem::create_directories(dir);
  }
  ~ScratchDir() { std::filesystem::remove_all(dir); }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

inline std::string fixture_path(const std::string& name) {
  const char* env = std::getenv("DFX_FIXTURES_DIR");
  return std::string(env && *env ? env : DFX_FIXTURES_DIR) + "/" + name;
}

// ||a - b|| / ||b|| over all elements (in double), or ||a - b|| when b is zero.
inline double rel_err(const Tensor& a, const Tensor& b) {
  DFX_CHECK(a.shape() == b.shape(), "rel_err: shapes ", a.shape(), " and ", b.shape(), " differ");
  const auto va = a.to_vector(), vb = b.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    num += (va[i] - vb[i]) * (va[i] - vb[i]);
    den += vb[i] * vb[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Same bytes (shape, dtype and every element's bit pattern).
inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor ca = a.cpu().contiguous(), cb = b.cpu().contiguous();
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

}  // namespace dfx::testing
