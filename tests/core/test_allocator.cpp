// tests/core/test_allocator.cpp — host allocation statistics and the size-class cache of large
// blocks: a freed block is reused for the next request of its class, is counted as reserved
// (not current) while cached, and empty_host_cache() hands it back.
#include <doctest/doctest.h>

#include <cstdint>

#include "core/allocator.h"
#include "core/cuda_runtime.h"
#include "core/tensor.h"

using namespace dfx;

TEST_SUITE("core") {

TEST_CASE("host allocator: current/peak/reserved and reuse of cached large blocks") {
  empty_host_cache();
  const Device cpu = Device::cpu();
  const MemoryStats s0 = memory_stats(cpu);
  CHECK(s0.reserved_bytes >= s0.current_bytes);
  reset_peak_memory(cpu);
  const int64_t n = 3 * (1 << 20) / 4 + 17;  // ~3 MiB of float32: a cached class
  const void* first = nullptr;
  {
    Tensor t = full({n}, 1.5, DType::Float32);
    first = t.data<float>();
    const MemoryStats s1 = memory_stats(cpu);
    CHECK(s1.current_bytes == s0.current_bytes + n * 4);
    CHECK(s1.peak_bytes >= s1.current_bytes);
  }
  const MemoryStats s2 = memory_stats(cpu);
  CHECK(s2.current_bytes == s0.current_bytes);
  CHECK(s2.reserved_bytes >= s2.current_bytes + n * 4);  // held in the cache
  {
    Tensor u = full({n + 5}, -2.0, DType::Float32);  // same class: the block comes back
    CHECK(static_cast<const void*>(u.data<float>()) == first);
    CHECK(u.get({n + 4}) == -2.0);
    CHECK(memory_stats(cpu).reserved_bytes == s2.reserved_bytes);
  }
  empty_host_cache();
  const MemoryStats s3 = memory_stats(cpu);
  CHECK(s3.reserved_bytes == s0.reserved_bytes);
  CHECK(s3.peak_bytes >= s0.current_bytes + n * 4);
}

TEST_CASE("pinned host memory without a GPU is a clear error, and the CPU path needs none") {
  if (cuda::device_count() > 0) return;  // tests/gpu covers pinned memory where a GPU exists
  CHECK_THROWS_WITH(Tensor::empty_pinned({16}), doctest::Contains("pinned_alloc"));
  Tensor t = full({16}, 3.0, DType::Float32);
  CHECK_FALSE(t.is_pinned());
  CHECK_THROWS_WITH(t.to(Device::cuda(0), /*non_blocking=*/true), doctest::Contains("cuda:0"));
  // Non-blocking to the same device is the tensor itself.
  CHECK(t.to(Device::cpu(), /*non_blocking=*/true).shares_storage(t));
}

}  // TEST_SUITE
