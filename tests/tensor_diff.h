// tests/tensor_diff.h — the largest elementwise difference of two tensors of one shape (any
// dtype, device or layout: compared as logical float64 values), shared by the suites.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dfx::testing {

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  double m = 0.0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

// Optimiser state with every tensor cloned (state() shares storage with the live slots).
inline std::map<std::string, Tensor> deep_copy(const std::map<std::string, Tensor>& s) {
  std::map<std::string, Tensor> c;
  for (const auto& [k, t] : s) c[k] = t.clone();
  return c;
}

}  // namespace dfx::testing
