// tests/gpu/test_cuda.cpp — the CUDA runtime and elementwise kernels against the CPU reference:
// transfers, strided copies with broadcasting and dtype conversion, fill, every unary and binary
// op on random (never all-zero) inputs in several layouts, and the caching allocator's statistics.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "core/copy.h"
#include "core/cuda_runtime.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/elementwise.h"

// Compiled in every build (it uses only public API), so a build without CUDA reports the same
// number of skipped cases as a CUDA build on a machine without a GPU.
using namespace dfx;
using kernels::BinaryOp;
using kernels::UnaryOp;

namespace {

const Device kGpu = Device::cuda(0);

// Compares element by element in float64; NaNs match NaNs and infinities match by sign.
// One CHECK per tensor, naming the first mismatch, so a wrong kernel does not flood the log.
void check_close(const Tensor& got, const Tensor& want, double rtol, double atol,
                 const std::string& what) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  CHECK(got.dtype() == want.dtype());
  const std::vector<double> g = got.to_vector(), w = want.to_vector();
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < g.size(); ++i) {
    const bool ok = (std::isnan(g[i]) && std::isnan(w[i])) || g[i] == w[i] ||
                    std::fabs(g[i] - w[i]) <= atol + rtol * std::fabs(w[i]);
    if (!ok && bad++ == 0) first = static_cast<int64_t>(i);
  }
  std::string detail = "mismatches: " + std::to_string(bad) + " of " + std::to_string(g.size());
  if (first >= 0) {
    detail += "; first at flat index " + std::to_string(first) + ": got " +
              std::to_string(g[first]) + ", want " + std::to_string(w[first]);
  }
  INFO(detail);
  CHECK(bad == 0);
}

void check_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  check_close(got, want, 0.0, 0.0, what);
}

double rtol_for(DType t) { return t == DType::Float32 ? 2e-6 : 1e-13; }
double atol_for(DType t) { return t == DType::Float32 ? 1e-6 : 1e-14; }

// Standard normal values with every 7th one exactly 0 (to reach the x == 0 branches of sign,
// relu and the masks), as dtype `dt` on the CPU.
Tensor normal_with_zeros(const Shape& shape, uint64_t seed, DType dt) {
  std::vector<double> v = randn(shape, seed, 0, 0, DType::Float64).to_vector();
  for (size_t i = 0; i < v.size(); i += 7) v[i] = 0.0;
  return from_vector<double>(v, shape).to(dt);
}

Tensor positive(const Shape& shape, uint64_t seed, DType dt) {
  return uniform(shape, 0.25, 2.5, seed, 0, 0, dt);
}

// A tensor as int64 (values -50..50) or bool (about half true) from random numbers.
Tensor random_as(DType dt, const Shape& shape, uint64_t seed) {
  std::vector<double> v = randn(shape, seed, 0, 0, DType::Float64).to_vector();
  if (dt == DType::Int64) {
    std::vector<int64_t> iv(v.size());
    for (size_t i = 0; i < v.size(); ++i) iv[i] = static_cast<int64_t>(std::lround(v[i] * 20));
    iv[0] = 17;  // never all zero
    return from_vector<int64_t>(iv, shape);
  }
  if (dt == DType::Bool) {
    std::vector<bool> bv(v.size());
    for (size_t i = 0; i < v.size(); ++i) bv[i] = v[i] > 0;
    bv[0] = true;
    return from_vector<bool>(bv, shape);
  }
  return from_vector<double>(v, shape).to(dt);
}

const DType kAllDtypes[] = {DType::Float32, DType::Float64, DType::Int64, DType::Bool};
const DType kFloatDtypes[] = {DType::Float32, DType::Float64};

// The same view on a CPU tensor and on its device copy.
struct Pair {
  Tensor cpu, gpu;
};

// Layouts every op is run on: the contiguous tensor, a transposed (non-contiguous) view, and a
// narrowed view whose first element sits one element past the allocation (16-byte unaligned).
std::vector<std::pair<std::string, Pair>> layouts(const Tensor& base2d) {
  Tensor g = base2d.to(kGpu);
  std::vector<std::pair<std::string, Pair>> out;
  out.push_back({"contiguous", {base2d, g}});
  out.push_back({"transposed", {base2d.t(), g.t()}});
  Tensor flat_c = base2d.flatten(), flat_g = g.flatten();
  const int64_t n = flat_c.numel() - 1;
  out.push_back({"unaligned", {flat_c.narrow(0, 1, n), flat_g.narrow(0, 1, n)}});
  return out;
}

bool needs_positive(UnaryOp op) {
  return op == UnaryOp::Log || op == UnaryOp::Sqrt || op == UnaryOp::Rsqrt ||
         op == UnaryOp::PowScalar || op == UnaryOp::Reciprocal;
}

const UnaryOp kUnaryOps[] = {
    UnaryOp::Neg,  UnaryOp::Exp,    UnaryOp::Log,        UnaryOp::Sqrt,      UnaryOp::Rsqrt,
    UnaryOp::Abs,  UnaryOp::Tanh,   UnaryOp::Sigmoid,    UnaryOp::Relu,      UnaryOp::Sign,
    UnaryOp::Square, UnaryOp::Reciprocal, UnaryOp::LeakyRelu, UnaryOp::PowScalar,
    UnaryOp::ReluMask, UnaryOp::LeakyReluSlope};

const BinaryOp kBinaryOps[] = {BinaryOp::Add, BinaryOp::Sub,     BinaryOp::Mul,    BinaryOp::Div,
                               BinaryOp::Pow, BinaryOp::Maximum, BinaryOp::Minimum};

}  // namespace

TEST_SUITE("gpu") {

TEST_CASE("cuda: device query") {
  CHECK(cuda::is_built());
  const int n = cuda::device_count();
  std::cout << "dfx_gpu: " << n << " CUDA device" << (n == 1 ? "" : "s") << "\n";
  for (int i = 0; i < n; ++i) std::cout << "  cuda:" << i << " " << cuda::device_name(i) << "\n";
  REQUIRE(n > 0);
  CHECK(!cuda::device_name(0).empty());
  CHECK_THROWS_AS(cuda::device_name(n), Error);
  CHECK_THROWS_AS(Tensor::empty({4}, DType::Float32, Device::cuda(n)), Error);
}

TEST_CASE("cuda: copies to and from the device are exact for every dtype") {
  uint64_t seed = 100;
  for (DType dt : kAllDtypes) {
    for (const Shape& shape : {Shape{}, Shape{1}, Shape{5}, Shape{3, 7, 11}, Shape{1025, 3}}) {
      Tensor h = random_as(dt, shape, seed++);
      Tensor d = h.to(kGpu);
      CHECK(d.device() == kGpu);
      CHECK(d.dtype() == dt);
      check_equal(d.cpu(), h, "round trip " + d.describe());
      // A non-contiguous host source and a non-contiguous host destination.
      if (h.dim() == 3) {
        Tensor hp = h.permute({2, 0, 1});
        check_equal(hp.to(kGpu).cpu(), hp, "permuted upload");
        Tensor back = Tensor::empty({11, 3, 7}, dt).permute({1, 2, 0});
        copy_(back, d);
        check_equal(back, h, "download into a permuted host view");
      }
    }
  }
  // Empty tensors move too.
  Tensor e = Tensor::empty({0, 3}, DType::Float32, kGpu);
  CHECK(e.cpu().numel() == 0);
}

TEST_CASE("cuda: strided copy on the device converts dtypes and broadcasts like the CPU") {
  uint64_t seed = 200;
  for (DType sd : kAllDtypes) {
    for (DType dd : kAllDtypes) {
      INFO("src " << dtype_name(sd) << " -> dst " << dtype_name(dd));
      Tensor src = random_as(sd, {4, 6, 5}, seed++);
      Tensor src_g = src.to(kGpu);
      // Non-contiguous source (permuted, stepped slice) into a non-contiguous destination.
      Tensor sv = src.permute({2, 0, 1}).slice(2, 0, 6, 2);     // [5, 4, 3]
      Tensor sv_g = src_g.permute({2, 0, 1}).slice(2, 0, 6, 2);
      Tensor dst = random_as(dd, {3, 4, 5}, seed++);
      Tensor dst_g = dst.to(kGpu);
      copy_(dst.permute({2, 1, 0}), sv);
      copy_(dst_g.permute({2, 1, 0}), sv_g);
      check_equal(dst_g.cpu(), dst, "permuted/sliced copy");
      // Broadcast [6, 1] into [2, 6, 5].
      Tensor col = src.select(2, 0).select(0, 1).unsqueeze(1);  // [6, 1]
      Tensor col_g = src_g.select(2, 0).select(0, 1).unsqueeze(1);
      Tensor b = Tensor::empty({2, 6, 5}, dd);
      Tensor b_g = Tensor::empty({2, 6, 5}, dd, kGpu);
      copy_(b, col);
      copy_(b_g, col_g);
      check_equal(b_g.cpu(), b, "broadcast copy");
      // Contiguous same-dtype copy (the cudaMemcpy path) through to(dtype) and clone().
      check_equal(src_g.to(dd).cpu(), src.to(dd), "to(dtype)");
      check_equal(src_g.clone().cpu(), src, "clone");
    }
  }
}

TEST_CASE("cuda: fill writes every element of any view and nothing else") {
  uint64_t seed = 300;
  for (DType dt : kAllDtypes) {
    Tensor base = random_as(dt, {6, 10}, seed++);
    Tensor g = base.to(kGpu);
    fill_(base.slice(1, 1, 10, 3), -2.5);
    fill_(g.slice(1, 1, 10, 3), -2.5);
    check_equal(g.cpu(), base, std::string("fill of a stepped view, ") + dtype_name(dt));
    fill_(base.t(), 3.0);
    fill_(g.t(), 3.0);
    check_equal(g.cpu(), base, std::string("fill of a transposed view, ") + dtype_name(dt));
    check_equal(full({129}, 0.75, dt, kGpu).cpu(), full({129}, 0.75, dt), "full()");
  }
}

TEST_CASE("cuda: every unary op matches the CPU in every layout") {
  uint64_t seed = 400;
  for (DType dt : kFloatDtypes) {
    for (UnaryOp op : kUnaryOps) {
      const double alpha = op == UnaryOp::PowScalar ? 1.7 : 0.15;
      Tensor base = needs_positive(op) ? positive({37, 53}, seed++, dt)
                                       : normal_with_zeros({37, 53}, seed++, dt);
      for (auto& [name, p] : layouts(base)) {
        Tensor want = kernels::unary(op, p.cpu, alpha);
        Tensor got = kernels::unary(op, p.gpu, alpha);
        CHECK(got.device() == kGpu);
        CHECK(got.is_contiguous());
        check_close(got, want, rtol_for(dt), atol_for(dt),
                    std::string(kernels::unary_name(op)) + " " + dtype_name(dt) + " " + name);
      }
    }
    // pow with exponent 2 takes the x * x shortcut on both devices.
    Tensor x = normal_with_zeros({1000}, seed++, dt);
    check_close(kernels::unary(UnaryOp::PowScalar, x.to(kGpu), 2.0),
                kernels::unary(UnaryOp::PowScalar, x, 2.0), rtol_for(dt), atol_for(dt), "pow 2");
  }
  // Large enough for many blocks and the grid-stride loop, with an odd tail.
  Tensor big = normal_with_zeros({(1 << 20) + 3}, 7, DType::Float32);
  check_close(kernels::unary(UnaryOp::Tanh, big.to(kGpu)), kernels::unary(UnaryOp::Tanh, big),
              rtol_for(DType::Float32), atol_for(DType::Float32), "tanh, 2^20 + 3 elements");
}

TEST_CASE("cuda: every binary op matches the CPU, with broadcasting and any strides") {
  uint64_t seed = 500;
  for (DType dt : kFloatDtypes) {
    for (BinaryOp op : kBinaryOps) {
      const std::string name = std::string(kernels::binary_name(op)) + " " + dtype_name(dt);
      // Pow needs a positive base; Div a divisor away from zero.
      auto lhs = [&](const Shape& s) {
        return op == BinaryOp::Pow ? positive(s, seed++, dt) : normal_with_zeros(s, seed++, dt);
      };
      auto rhs = [&](const Shape& s) {
        return op == BinaryOp::Div ? positive(s, seed++, dt) : normal_with_zeros(s, seed++, dt);
      };
      auto run = [&](const Tensor& a, const Tensor& b, const Tensor& ag, const Tensor& bg,
                     const std::string& what) {
        Tensor want = kernels::binary(op, a, b);
        Tensor got = kernels::binary(op, ag, bg);
        CHECK(got.device() == kGpu);
        CHECK(got.is_contiguous());
        check_close(got, want, rtol_for(dt), atol_for(dt), name + " " + what);
      };
      // Same shape in three layouts (vectorised path, strided, unaligned).
      Tensor a = lhs({29, 41}), b = rhs({29, 41});
      auto la = layouts(a), lb = layouts(b);
      for (size_t i = 0; i < la.size(); ++i)
        run(la[i].second.cpu, lb[i].second.cpu, la[i].second.gpu, lb[i].second.gpu, la[i].first);
      // Mixed layouts: contiguous a with a column-major copy of b (same shape, other strides).
      Tensor bt = b.t().contiguous().t(), bt_g = b.to(kGpu).t().contiguous().t();
      run(a, bt, a.to(kGpu), bt_g, "contiguous with column-major");
      // A 0-d scalar on either side (the scalar fast path).
      Tensor s = op == BinaryOp::Div ? full({}, 1.75, dt) : full({}, -0.625, dt);
      if (op == BinaryOp::Pow) s = full({}, 1.5, dt);
      Tensor sg = s.to(kGpu);
      run(a, s, a.to(kGpu), sg, "tensor with scalar");
      run(s, b, sg, b.to(kGpu), "scalar with tensor");
      // NumPy broadcasting: [4, 1, 5] with [3, 1] -> [4, 3, 5]; and [7] with [2, 1, 7].
      Tensor x = lhs({4, 1, 5}), y = rhs({3, 1});
      run(x, y, x.to(kGpu), y.to(kGpu), "[4,1,5] with [3,1]");
      Tensor z = rhs({4, 3, 1});
      run(y.expand({4, 3, 1}), z, y.to(kGpu).expand({4, 3, 1}), z.to(kGpu),
          "a stride-0 expanded view with [4,3,1]");
      Tensor u = lhs({7}), v = rhs({2, 1, 7});
      run(u, v, u.to(kGpu), v.to(kGpu), "[7] with [2,1,7]");
    }
  }
}

TEST_CASE("cuda: elementwise errors name the op and the operands") {
  Tensor i = Tensor::empty({3}, DType::Int64, kGpu);
  CHECK_THROWS_AS(kernels::unary(UnaryOp::Exp, i), Error);
  Tensor f = zeros({3}, DType::Float32, kGpu), d = zeros({3}, DType::Float64, kGpu);
  CHECK_THROWS_AS(kernels::binary(BinaryOp::Add, f, d), Error);
  CHECK_THROWS_AS(kernels::binary(BinaryOp::Add, f, zeros({4}, DType::Float32, kGpu)), Error);
  CHECK_THROWS_AS(kernels::binary(BinaryOp::Add, f, zeros({3})), Error);
}

TEST_CASE("cuda: allocator statistics return to baseline and blocks are reused") {
  cuda::synchronize(0);
  const MemoryStats base = memory_stats(kGpu);
  CHECK(base.reserved_bytes >= base.current_bytes);
  size_t requested = 0;
  {
    std::vector<Tensor> live;
    for (int64_t n : {1, 100, 1000, 300000, 600000}) {
      live.push_back(Tensor::empty({n}, DType::Float32, kGpu));
      requested += static_cast<size_t>(n) * 4;
    }
    const MemoryStats during = memory_stats(kGpu);
    CHECK(during.current_bytes >= base.current_bytes + requested);
    CHECK(during.peak_bytes >= during.current_bytes);
    CHECK(during.reserved_bytes >= during.current_bytes);
  }
  const MemoryStats after = memory_stats(kGpu);
  CHECK(after.current_bytes == base.current_bytes);
  CHECK(after.peak_bytes >= base.current_bytes + requested);
  // The same sizes again come from the cache: nothing new is reserved.
  {
    Tensor again = Tensor::empty({300000}, DType::Float32, kGpu);
    CHECK(memory_stats(kGpu).reserved_bytes == after.reserved_bytes);
  }
  reset_peak_memory(kGpu);
  CHECK(memory_stats(kGpu).peak_bytes == memory_stats(kGpu).current_bytes);
  cuda::empty_cache(0);
  const MemoryStats emptied = memory_stats(kGpu);
  CHECK(emptied.reserved_bytes == emptied.current_bytes);
  CHECK(emptied.current_bytes == base.current_bytes);
}

TEST_CASE("cuda: out-of-memory is a dfx::Error naming the request") {
  // Far more than any GPU has; the allocator must release its cache, retry, then throw.
  const int64_t huge = int64_t(1) << 46;  // 256 TiB of float32
  std::string msg;
  try {
    Tensor t = Tensor::empty({huge}, DType::Float32, kGpu);
  } catch (const Error& e) {
    msg = e.what();
  }
  INFO(msg);
  CHECK(msg.find("out of memory") != std::string::npos);
  CHECK(msg.find(std::to_string(huge * 4)) != std::string::npos);
  // The device is still usable afterwards.
  check_equal(full({3}, 2.0, DType::Float32, kGpu).cpu(), full({3}, 2.0), "after OOM");
}

}  // TEST_SUITE("gpu")
