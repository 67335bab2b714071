// bench/micro/bench_util.h — what every dfx_micro benchmark shares: rate counters in the units
// STYLE.md asks for (FLOP/s, bytes/s, nodes/s, powers of 1000) and the check that must pass
// before a kernel is timed, so a broken kernel is reported as an error instead of a fast number.
#pragma once
#include <benchmark/benchmark.h>

#include <cmath>
#include <deque>
#include <string>

#include "core/tensor.h"

namespace dfx::bench {

// Per-iteration work, shown as rates: flop=95G/s is 95 GFLOP/s, bytes=12G/s is 12 GB/s. Bytes are
// the compulsory traffic (each operand read once, each result written once), so bytes/s is a
// lower bound on the bandwidth the kernel drew.
inline void set_rates(benchmark::State& state, double flop, double bytes, double nodes = 0) {
  using benchmark::Counter;
  auto rate = [](double v) {
    return Counter(v, Counter::kIsIterationInvariantRate, Counter::OneK::kIs1000);
  };
  if (flop > 0) state.counters["flop"] = rate(flop);
  if (bytes > 0) state.counters["bytes"] = rate(bytes);
  if (nodes > 0) state.counters["nodes"] = rate(nodes);
}

// Skips the benchmark (it is then listed with ERROR OCCURRED and the message) unless `ok`.
// Returns `ok`; callers return before their timing loop when it is false.
inline bool validate(benchmark::State& state, bool ok, const std::string& what) {
  if (ok) return true;
  static std::deque<std::string> messages;  // SkipWithError may keep the pointer
  messages.push_back("validation failed: " + what);
  state.SkipWithError(messages.back().c_str());
  return false;
}

// |got - want| <= rtol * scale + atol, where scale is a sum of |terms| (the size of the rounding
// error a correct float32 kernel may make), and both numbers are finite.
inline bool near(double got, double want, double scale, double rtol = 1e-4, double atol = 1e-6) {
  return std::isfinite(got) && std::isfinite(want) &&
         std::abs(got - want) <= rtol * scale + atol;
}

inline bool all_finite(const Tensor& t) {
  const float* p = t.data<float>();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

inline double nbytes(const Tensor& t) { return static_cast<double>(t.nbytes()); }

}  // namespace dfx::bench
