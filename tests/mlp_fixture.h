// tests/mlp_fixture.h — the small float64 problem the distribution suites share (tests/mpi,
// tests/gpu/test_nccl.cpp): a two-layer perceptron whose loss divides by the global sample
// count, samples that are pure functions of their index (so any rank can build any sample), and
// the relative difference the gradient comparisons use.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "autodiff/ops.h"
#include "core/copy.h"
#include "core/rng.h"
#include "kernels/elementwise.h"

namespace dfx::testing {

constexpr int64_t kMlpIn = 5, kMlpHidden = 7, kMlpOut = 3;

// Samples idx as rows of [n, kMlpIn] on `device` (counter-based RNG: sample s depends on s only).
inline Tensor mlp_inputs(const std::vector<int64_t>& idx, Device device = Device::cpu()) {
  Tensor x = Tensor::empty({static_cast<int64_t>(idx.size()), kMlpIn}, DType::Float64);
  for (size_t i = 0; i < idx.size(); ++i)
    copy_(x.select(0, static_cast<int64_t>(i)),
          uniform({kMlpIn}, -1, 1, 99, static_cast<uint64_t>(idx[i])));
  return x.to(device);
}

struct Mlp {
  std::vector<ad::Var> params;
  explicit Mlp(Device device = Device::cpu()) {
    auto param = [&](const Shape& shape, double scale, uint64_t stream) {
      return ad::Var(uniform(shape, -scale, scale, 5, stream, 0, DType::Float64).to(device), true);
    };
    params = {param({kMlpIn, kMlpHidden}, 0.7, 0), param({kMlpHidden}, 0.2, 1),
              param({kMlpHidden, kMlpOut}, 0.7, 2)};
  }
  // Sum of per-sample losses (sum_j (y_j - tanh(x_j))^2) divided by `global_count`.
  ad::Var loss(const Tensor& x, int64_t global_count) const {
    ad::Var h = ad::tanh(ad::matmul(ad::Var(x), params[0]) + params[1]);
    ad::Var y = ad::matmul(h, params[2]);
    Tensor target = kernels::unary(kernels::UnaryOp::Tanh, x.narrow(1, 0, kMlpOut));
    return ad::sum(ad::square(y - ad::Var(target))) * (1.0 / static_cast<double>(global_count));
  }
  std::vector<Tensor> values() const {
    std::vector<Tensor> v;
    for (auto& p : params) v.push_back(p.data());
    return v;
  }
};

// max |a - b| / max |b|, in float64 on the host.
inline double max_rel(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double m = 0, scale = 1e-300;
  for (double v : y) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]) / scale);
  return m;
}

}  // namespace dfx::testing
