// pde/metrics.cpp — relative L2 errors. Values are read out as float64 (any dtype or device), and
// sums run in a fixed order, so the figure for a sample does not depend on its batch.
#include "pde/metrics.h"

#include <algorithm>
#include <cmath>

namespace dfx::pde {

std::vector<double> relative_l2_per_sample(const Tensor& pred, const Tensor& ref) {
  DFX_CHECK(pred.shape() == ref.shape(), "relative_l2: pred ", pred.describe(), " and ref ",
            ref.describe(), " must have the same shape");
  DFX_CHECK(pred.dim() >= 1 && pred.numel() > 0, "relative_l2: expected a non-empty [B, ...] "
            "tensor, got ", pred.describe());
  DFX_CHECK(is_floating(pred.dtype()) && is_floating(ref.dtype()), "relative_l2: expected "
            "floating-point tensors, got ", pred.describe(), " and ", ref.describe());
  const std::vector<double> p = pred.to_vector(), r = ref.to_vector();
  const int64_t B = pred.size(0);
  const int64_t n = pred.numel() / B;
  std::vector<double> err(B);
  for (int64_t b = 0; b < B; ++b) {
    double num = 0.0, den = 0.0;
    for (int64_t i = b * n; i < (b + 1) * n; ++i) {
      num += (p[i] - r[i]) * (p[i] - r[i]);
      den += r[i] * r[i];
    }
    DFX_CHECK(den > 0.0, "relative_l2: sample ", b, " of ref ", ref.describe(),
              " is zero, so the relative error is undefined");
    err[b] = std::sqrt(num / den);
  }
  return err;
}

double relative_l2(const Tensor& pred, const Tensor& ref) {
  return relative_l2_per_sample(pred.reshape({1, pred.numel()}), ref.reshape({1, ref.numel()}))[0];
}

ErrorSummary relative_l2_summary(const Tensor& pred, const Tensor& ref) {
  ErrorSummary s;
  s.per_sample = relative_l2_per_sample(pred, ref);
  for (double e : s.per_sample) {
    s.mean += e;
    s.max = std::max(s.max, e);
  }
  s.mean /= static_cast<double>(s.per_sample.size());
  return s;
}

}  // namespace dfx::pde
