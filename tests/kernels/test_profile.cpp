// tests/kernels/test_profile.cpp — the per-kernel timer (kernels/profile.h) on the CPU: off by
// default, counts each entry-point call once under its name and device, resets, and stays quiet
// when switched off again.
#include <doctest/doctest.h>

#include <string>

#include "core/rng.h"
#include "kernels/conv.h"
#include "kernels/elementwise.h"
#include "kernels/profile.h"

using namespace dfx;
namespace k = dfx::kernels;

namespace {

const k::KernelTiming* find(const std::vector<k::KernelTiming>& rows, const std::string& name) {
  for (const auto& r : rows)
    if (r.name == name) return &r;
  return nullptr;
}

}  // namespace

TEST_CASE("kernels: the kernel profile counts entry-point calls by name and device") {
  const bool was_on = k::kernel_profiling();
  k::reset_kernel_profile();
  Tensor x = randn({2, 3, 12, 12}, 11, 0, 0, DType::Float64);
  Tensor w = randn({4, 3, 3, 3}, 12, 0, 0, DType::Float64);
  const auto g = k::ConvGeometry::make(2, {1}, {1}, {1});

  k::set_kernel_profiling(false);
  (void)k::conv(x, w, Tensor(), g);
  CHECK(find(k::kernel_profile(), "conv") == nullptr);

  k::set_kernel_profiling(true);
  (void)k::conv(x, w, Tensor(), g);
  (void)k::conv(x, w, Tensor(), g);
  (void)k::unary(k::UnaryOp::Exp, x, 0.0);
  const auto rows = k::kernel_profile();
  const k::KernelTiming* conv = find(rows, "conv");
  REQUIRE(conv != nullptr);
  CHECK(conv->calls == 2);
  CHECK(conv->device == "cpu");
  CHECK(conv->total_ms > 0.0);
  const k::KernelTiming* ex = find(rows, "unary:exp");
  REQUIRE(ex != nullptr);
  CHECK(ex->calls == 1);
  // Largest total first.
  for (size_t i = 1; i < rows.size(); ++i) CHECK(rows[i - 1].total_ms >= rows[i].total_ms);

  k::reset_kernel_profile();
  CHECK(k::kernel_profile().empty());
  k::set_kernel_profiling(was_on);
}
