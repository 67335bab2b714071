// core/rng.cpp — Philox4x32-10 (Salmon et al. 2011, Random123) and the tensor factories built on
// it. Tensors are filled on the CPU (each element from its own counter, so threads never matter)
// and then moved to the requested device.
#include "core/rng.h"

#include <cmath>
#include <limits>
#include <numbers>

namespace dfx {
namespace {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// 53 random bits from two words, scaled into [0, 1).
inline double to_unit(uint32_t lo, uint32_t hi) {
  uint64_t bits = ((static_cast<uint64_t>(hi) << 32) | lo) >> 11;
  return static_cast<double>(bits) * 0x1.0p-53;
}

// Values at or above `upper` (rounding in low + (high - low) * u, or in the cast to float) are
// moved just below it, so [low, high) stays half-open in either dtype.
template <class T, class F>
void fill_typed(T* p, int64_t n, double upper, F& value) {
  const T top = static_cast<T>(upper);
  const T below = std::nextafter(top, -std::numeric_limits<T>::infinity());
#pragma omp parallel for schedule(static) if (n >= 16384)
  for (int64_t i = 0; i < n; ++i) {
    T v = static_cast<T>(value(static_cast<uint64_t>(i)));
    p[i] = v >= top ? below : v;
  }
}

template <class F>
Tensor fill_random(const Shape& shape, DType dtype, Device device, const char* op, double upper,
                   F&& value) {
  DFX_CHECK(dtype == DType::Float32 || dtype == DType::Float64, op, ": dtype ", dtype_name(dtype),
            " for shape ", shape, " is not supported; expected float32 or float64");
  Tensor t = Tensor::empty(shape, dtype, Device::cpu());
  if (dtype == DType::Float32) fill_typed(t.data<float>(), t.numel(), upper, value);
  else fill_typed(t.data<double>(), t.numel(), upper, value);
  return t.to(device);
}

}  // namespace

std::array<uint32_t, 4> philox4x32(uint64_t seed, uint64_t stream, uint64_t index) {
  std::array<uint32_t, 4> c = {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                               static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)};
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c[0], hi0, lo0);
    mulhilo(kM1, c[2], hi1, lo1);
    c = {hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0};
    k0 += kW0;
    k1 += kW1;
  }
  return c;
}

double philox_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  auto w = philox4x32(seed, stream, index);
  return to_unit(w[0], w[1]);
}

double philox_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  auto w = philox4x32(seed, stream, index);
  // 1 - u lies in (0, 1], so the log never sees 0.
  double u1 = 1.0 - to_unit(w[0], w[1]);
  double u2 = to_unit(w[2], w[3]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

Tensor rand(const Shape& shape, uint64_t seed, uint64_t stream, uint64_t offset, DType dtype,
            Device device) {
  return fill_random(shape, dtype, device, "rand", 1.0,
                     [=](uint64_t i) { return philox_uniform(seed, stream, offset + i); });
}

Tensor uniform(const Shape& shape, double low, double high, uint64_t seed, uint64_t stream,
               uint64_t offset, DType dtype, Device device) {
  DFX_CHECK(low <= high, "uniform: low ", low, " > high ", high, " for shape ", shape,
            "; expected low <= high");
  // low == high gives a constant tensor, which must not be pushed below `high`.
  const double upper = low < high ? high : kInf;
  return fill_random(shape, dtype, device, "uniform", upper, [=](uint64_t i) {
    return low + (high - low) * philox_uniform(seed, stream, offset + i);
  });
}

Tensor randn(const Shape& shape, uint64_t seed, uint64_t stream, uint64_t offset, DType dtype,
             Device device) {
  return fill_random(shape, dtype, device, "randn", kInf,
                     [=](uint64_t i) { return philox_normal(seed, stream, offset + i); });
}

}  // namespace dfx
