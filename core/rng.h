// core/rng.h — counter-based randomness (Philox4x32-10, Salmon et al. 2011). A value is a pure
// function of (seed, stream, index): no generator state to carry, share or keep in sync, so the
// same sample is drawn whichever thread, process or rank asks for it.
#pragma once
#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace dfx {

// Four 32-bit words for counter `index` in `stream` under key `seed`.
std::array<uint32_t, 4> philox4x32(uint64_t seed, uint64_t stream, uint64_t index);

// Uniform double in [0, 1) with 53 random bits, from words 0-1 of philox4x32(seed, stream, index).
double philox_uniform(uint64_t seed, uint64_t stream, uint64_t index);
// Standard normal from Box-Muller on the same counter (uses all four words).
double philox_normal(uint64_t seed, uint64_t stream, uint64_t index);

// Element i (row-major) of the result uses counter index `offset + i`.
Tensor rand(const Shape& shape, uint64_t seed, uint64_t stream = 0, uint64_t offset = 0,
            DType dtype = DType::Float32, Device device = Device::cpu());
Tensor uniform(const Shape& shape, double low, double high, uint64_t seed, uint64_t stream = 0,
               uint64_t offset = 0, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor randn(const Shape& shape, uint64_t seed, uint64_t stream = 0, uint64_t offset = 0,
             DType dtype = DType::Float32, Device device = Device::cpu());

}  // namespace dfx
