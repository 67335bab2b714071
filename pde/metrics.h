// pde/metrics.h — accuracy figures of the workloads: relative L2 error ||pred - ref|| / ||ref||
// per sample, and its mean and maximum over a batch (WORKLOADS.md reports the mean over >= 64
// held-out fields).
#pragma once
#include <vector>

#include "core/tensor.h"

namespace dfx::pde {

struct ErrorSummary {
  std::vector<double> per_sample;
  double mean = 0.0;
  double max = 0.0;
};

// Whole tensors as one sample; any float dtypes and devices, computed in float64. Throws when the
// shapes differ or ||ref|| = 0 (a relative error is undefined there).
double relative_l2(const Tensor& pred, const Tensor& ref);
// Samples along dim 0 ([B, ...]).
std::vector<double> relative_l2_per_sample(const Tensor& pred, const Tensor& ref);
ErrorSummary relative_l2_summary(const Tensor& pred, const Tensor& ref);

}  // namespace dfx::pde
