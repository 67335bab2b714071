// tests/gpu/test_cuda_streams.cpp — streams, events, the per-stream caching allocator, pinned
// memory and asynchronous copies, and the per-kernel profile on the GPU. Values are checked
// against the CPU on random inputs; allocator behaviour through its statistics.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/copy.h"
#include "core/cuda_runtime.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/conv.h"
#include "kernels/elementwise.h"
#include "tests/tensor_diff.h"
#include "kernels/profile.h"

using namespace dfx;
using dfx::testing::max_abs_diff;
namespace k = dfx::kernels;

namespace {

const Device kGpu = Device::cuda(0);

// A chain of elementwise ops long enough that a stream is still busy when the host moves on.
Tensor busy_chain(const Tensor& x, int rounds) {
  Tensor y = x;
  for (int r = 0; r < rounds; ++r) y = k::unary(k::UnaryOp::Tanh, k::binary(k::BinaryOp::Add, y, x), 0.0);
  return y;
}

}  // namespace

TEST_CASE("cuda streams: work on a side stream, ordered back through an event, matches the CPU") {
  const Tensor x_cpu = randn({1 << 20}, 21, 0, 0, DType::Float32);
  const Tensor want = busy_chain(x_cpu, 8);
  Tensor x = x_cpu.to(kGpu);
  cuda::Stream side = cuda::Stream::create(0);
  CHECK_FALSE(side.is_default());
  Tensor y;
  cuda::Event done;
  {
    cuda::StreamGuard guard(side);
    CHECK(cuda::current_stream(0) == side);
    // x was made on the default stream: the side stream must wait for it first.
    cuda::Event ready;
    ready.record(cuda::Stream::default_stream(0));
    ready.wait(side);
    y = busy_chain(x, 8);
    cuda::record_stream(x, side);
    done.record(side);
  }
  CHECK(cuda::current_stream(0).is_default());
  done.wait(cuda::current_stream(0));
  Tensor z = k::binary(k::BinaryOp::Mul, y, y);  // on the default stream, after the event
  CHECK(max_abs_diff(y.cpu(), want) <= 1e-5);
  CHECK(max_abs_diff(z.cpu(), k::binary(k::BinaryOp::Mul, want, want)) <= 1e-5);
  side.synchronize();
  CHECK(side.query());
  CHECK(done.query());
}

TEST_CASE("cuda streams: timing events measure a positive interval") {
  Tensor x = randn({1 << 22}, 22, 0, 0, DType::Float32, kGpu);
  cuda::Event a(true), b(true);
  a.record();
  Tensor y = busy_chain(x, 4);
  b.record();
  b.synchronize();
  const float ms = a.elapsed_ms(b);
  CHECK(ms > 0.0f);
  CHECK(ms < 10000.0f);
  cuda::Event untimed;
  untimed.record();
  CHECK_THROWS_WITH(a.elapsed_ms(untimed), doctest::Contains("timing events"));
}

TEST_CASE("cuda allocator: blocks are cached per stream; record_stream delays reuse") {
  cuda::synchronize(0);
  cuda::empty_cache(0);
  const MemoryStats base = memory_stats(kGpu);
  const size_t bytes = size_t(8) << 20;  // a large size class, alone in the cache
  cuda::Stream s1 = cuda::Stream::create(0);
  cuda::Stream s2 = cuda::Stream::create(0);
  {
    cuda::StreamGuard g(s1);
    Tensor a = Tensor::empty({int64_t(bytes / 4)}, DType::Float32, kGpu);
  }  // freed on s1: cached for s1 only
  const MemoryStats after_s1 = memory_stats(kGpu);
  CHECK(after_s1.current_bytes == base.current_bytes);
  CHECK(after_s1.reserved_bytes >= base.reserved_bytes + bytes);
  {
    cuda::StreamGuard g(s1);  // the same class on the same stream reuses the block
    Tensor a = Tensor::empty({int64_t(bytes / 4)}, DType::Float32, kGpu);
    CHECK(memory_stats(kGpu).reserved_bytes == after_s1.reserved_bytes);
  }
  {
    cuda::StreamGuard g(s2);  // another stream does not get s1's block
    Tensor b = Tensor::empty({int64_t(bytes / 4)}, DType::Float32, kGpu);
    CHECK(memory_stats(kGpu).reserved_bytes == after_s1.reserved_bytes + bytes);
  }
  // A block used on s2 too is reusable on s1 only after s2 has passed its free.
  {
    cuda::StreamGuard g(s1);
    Tensor c = randn({int64_t(bytes / 4)}, 23, 0, 0, DType::Float32, kGpu);
    cuda::record_stream(c, s2);
  }
  s2.synchronize();
  {
    cuda::StreamGuard g(s1);
    const size_t before = memory_stats(kGpu).reserved_bytes;
    Tensor d = Tensor::empty({int64_t(bytes / 4)}, DType::Float32, kGpu);
    CHECK(memory_stats(kGpu).reserved_bytes == before);  // the pending block came back
  }
  cuda::synchronize(0);
  cuda::empty_cache(0);
  CHECK(memory_stats(kGpu).current_bytes == base.current_bytes);
  CHECK(memory_stats(kGpu).reserved_bytes == base.current_bytes);
}

TEST_CASE("cuda copies: pinned and pageable, blocking and not, round-trip every byte") {
  // Odd sizes cross the 4 MiB staging chunks and the small-copy cutoff.
  for (int64_t n : {int64_t(1000), int64_t(300000), int64_t(2500001)}) {
    INFO("elements: " << n);
    const Tensor host = randn({n}, 24, 0, 0, DType::Float64);  // pageable
    // Blocking copies of a pageable tensor (staged through pinned chunks above 256 KiB).
    Tensor dev = host.to(kGpu);
    CHECK(max_abs_diff(dev.cpu(), host) == 0.0);
    // Pinned source, non-blocking there and back.
    Tensor pinned = host.pin_memory();
    CHECK(pinned.is_pinned());
    CHECK_FALSE(host.is_pinned());
    CHECK(cuda::is_pinned(pinned.raw_data()));
    Tensor dev2 = pinned.to(kGpu, /*non_blocking=*/true);
    Tensor back = dev2.to(Device::cpu(), /*non_blocking=*/true);
    CHECK(back.is_pinned());
    cuda::current_stream(0).synchronize();
    CHECK(max_abs_diff(back, host) == 0.0);
    // A pageable source, non-blocking: staged into pinned memory so the caller may overwrite it.
    Tensor scratch = host.clone();
    Tensor dev3 = scratch.to(kGpu, /*non_blocking=*/true);
    std::memset(scratch.raw_data(), 0, scratch.nbytes());
    CHECK(max_abs_diff(dev3.cpu(), host) == 0.0);
    // Into a strided destination on the device (a staging copy and a strided kernel).
    Tensor wide = Tensor::empty({n, 2}, DType::Float64, kGpu);
    copy_(wide.select(1, 1), pinned, /*non_blocking=*/true);
    CHECK(max_abs_diff(wide.select(1, 1).cpu(), host) == 0.0);
  }
  CHECK_THROWS_WITH(cuda::copy_bytes_async(nullptr, std::vector<char>(16).data(), 16,
                                           cuda::CopyKind::HostToDevice, 0),
                    doctest::Contains("pinned"));
}

TEST_CASE("cuda pinned memory: statistics return to their baseline, blocks are reused") {
  const MemoryStats base = cuda::pinned_memory_stats();
  {
    Tensor p = Tensor::empty_pinned({1 << 20}, DType::Float32);
    CHECK(cuda::pinned_memory_stats().current_bytes >= base.current_bytes + (4u << 20));
  }
  const MemoryStats after = cuda::pinned_memory_stats();
  CHECK(after.current_bytes == base.current_bytes);
  {
    Tensor p = Tensor::empty_pinned({1 << 20}, DType::Float32);
    CHECK(cuda::pinned_memory_stats().reserved_bytes == after.reserved_bytes);
  }
  CHECK_THROWS_WITH(Tensor::empty({4}, DType::Float32, kGpu).pin_memory(),
                    doctest::Contains("not a CPU tensor"));
}

TEST_CASE("cuda profile: per-kernel timings come from events on the GPU") {
  const bool was_on = k::kernel_profiling();
  k::reset_kernel_profile();
  k::set_kernel_profiling(true);
  Tensor x = randn({2, 8, 64, 64}, 25, 0, 0, DType::Float32, kGpu);
  Tensor w = randn({8, 8, 3, 3}, 26, 0, 0, DType::Float32, kGpu);
  const auto g = k::ConvGeometry::make(2, {1}, {1}, {1});
  for (int i = 0; i < 3; ++i) (void)k::conv(x, w, Tensor(), g);
  const auto rows = k::kernel_profile();
  k::set_kernel_profiling(was_on);
  bool found = false;
  for (const auto& r : rows) {
    if (r.name != "conv") continue;
    found = true;
    CHECK(r.device == "cuda:0");
    CHECK(r.calls == 3);
    CHECK(r.total_ms > 0.0);
  }
  CHECK(found);
  k::reset_kernel_profile();
}
