// tests/kernels/test_elementwise.cpp — every unary, binary and comparison op, where, clamp, axpy_
// and scale_ against naive double-precision loops, on strided/expanded inputs and broadcasts.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/elementwise.h"
#include "tests/kernels/kernel_test_util.h"

using namespace dfx;
using namespace dfx::kernels;
using namespace dfx::ktest;

namespace {

const DType kFloats[] = {DType::Float32, DType::Float64};

struct UnaryCase {
  UnaryOp op;
  double alpha;
  double lo, hi;  // input range
  std::function<double(double)> ref;
};

std::vector<UnaryCase> unary_cases() {
  auto sgn = [](double v) { return static_cast<double>((v > 0) - (v < 0)); };
  return {
      {UnaryOp::Neg, 0, -3, 3, [](double v) { return -v; }},
      {UnaryOp::Exp, 0, -3, 3, [](double v) { return std::exp(v); }},
      {UnaryOp::Log, 0, 0.05, 4, [](double v) { return std::log(v); }},
      {UnaryOp::Sqrt, 0, 0.05, 4, [](double v) { return std::sqrt(v); }},
      {UnaryOp::Rsqrt, 0, 0.05, 4, [](double v) { return 1 / std::sqrt(v); }},
      {UnaryOp::Abs, 0, -3, 3, [](double v) { return std::fabs(v); }},
      {UnaryOp::Tanh, 0, -3, 3, [](double v) { return std::tanh(v); }},
      {UnaryOp::Sigmoid, 0, -6, 6, [](double v) { return 1 / (1 + std::exp(-v)); }},
      {UnaryOp::Relu, 0, -3, 3, [](double v) { return v > 0 ? v : 0; }},
      {UnaryOp::Sign, 0, -3, 3, sgn},
      {UnaryOp::Square, 0, -3, 3, [](double v) { return v * v; }},
      {UnaryOp::Reciprocal, 0, -3, 3, [](double v) { return 1 / v; }},
      {UnaryOp::LeakyRelu, 0.125, -3, 3, [](double v) { return v > 0 ? v : 0.125 * v; }},
      {UnaryOp::LeakyRelu, 0.3, -3, 3, [](double v) { return v > 0 ? v : 0.3 * v; }},
      {UnaryOp::PowScalar, 2.0, -3, 3, [](double v) { return v * v; }},
      {UnaryOp::PowScalar, 3.0, -3, 3, [](double v) { return v * v * v; }},
      {UnaryOp::PowScalar, 0.5, 0.05, 4, [](double v) { return std::sqrt(v); }},
      {UnaryOp::PowScalar, -1.5, 0.05, 4, [](double v) { return std::pow(v, -1.5); }},
      {UnaryOp::ReluMask, 0, -3, 3, [](double v) { return v > 0 ? 1.0 : 0.0; }},
      {UnaryOp::LeakyReluSlope, 0.3, -3, 3, [](double v) { return v > 0 ? 1.0 : 0.3; }},
  };
}

double binary_ref(BinaryOp op, double x, double y, DType dt) {
  switch (op) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div:
      if (dt == DType::Int64) return static_cast<double>(int64_t(x) / int64_t(y));
      return x / y;
    case BinaryOp::Pow: return std::pow(x, y);
    case BinaryOp::Maximum: return x > y ? x : y;
    case BinaryOp::Minimum: return x < y ? x : y;
  }
  return 0;
}

// Input ranges that keep each op finite (and, for int64, exact).
void binary_ranges(BinaryOp op, DType dt, double& alo, double& ahi, double& blo, double& bhi) {
  alo = -3, ahi = 3, blo = -3, bhi = 3;
  if (dt == DType::Int64) alo = -50, ahi = 50, blo = -50, bhi = 50;
  if (op == BinaryOp::Div) blo = dt == DType::Int64 ? 1 : 0.5, bhi = dt == DType::Int64 ? 9 : 2;
  if (op == BinaryOp::Pow) {
    if (dt == DType::Int64) alo = -5, ahi = 6, blo = 0, bhi = 5;
    else alo = 0.1, ahi = 3, blo = -2, bhi = 2;
  }
}

const BinaryOp kBinaryOps[] = {BinaryOp::Add, BinaryOp::Sub,     BinaryOp::Mul,    BinaryOp::Div,
                               BinaryOp::Pow, BinaryOp::Maximum, BinaryOp::Minimum};

// binary(op, a, b) against the broadcasting reference loop.
std::string binary_diff(BinaryOp op, const Tensor& a, const Tensor& b) {
  Tensor out = binary(op, a, b);
  Shape shape = broadcast_shapes(a.shape(), b.shape());
  if (out.dtype() != a.dtype()) return "result dtype differs from the operands'";
  // Dense results: channels-last when an operand of the full shape is (core/tensor.h).
  const bool cl = (a.shape() == shape && a.suggest_memory_format() == MemoryFormat::ChannelsLast) ||
                  (b.shape() == shape && b.suggest_memory_format() == MemoryFormat::ChannelsLast);
  if (!out.is_contiguous(cl ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous))
    return cl ? "result is not channels-last like its operand" : "result is not contiguous";
  const DType dt = a.dtype();
  return ref_diff(
      out, shape,
      [&](const Index& i) {
        return binary_ref(op, a.get(broadcast_index(i, a.shape())),
                          b.get(broadcast_index(i, b.shape())), dt);
      },
      dt == DType::Int64 ? 0 : rtol_for(dt), dt == DType::Float32 ? 1e-6 : 0);
}

double compare_ref(CompareOp op, double x, double y) {
  switch (op) {
    case CompareOp::Eq: return x == y;
    case CompareOp::Ne: return x != y;
    case CompareOp::Lt: return x < y;
    case CompareOp::Le: return x <= y;
    case CompareOp::Gt: return x > y;
    case CompareOp::Ge: return x >= y;
  }
  return -1;
}

const CompareOp kCompareOps[] = {CompareOp::Eq, CompareOp::Ne, CompareOp::Lt,
                                 CompareOp::Le, CompareOp::Gt, CompareOp::Ge};

// Broadcast pairs of shapes every binary-like op is checked on.
const std::vector<std::pair<Shape, Shape>> kBroadcastPairs = {
    {{3, 1}, {1, 4}}, {{2, 1, 3}, {4, 1}}, {{3, 4}, {}},     {{}, {3, 4}}, {{}, {}},
    {{3, 4}, {3, 1}}, {{3, 1}, {3, 4}},    {{5}, {2, 3, 5}}, {{2, 3, 5}, {1, 5}}};

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE("unary: every op in float32 and float64 on every layout matches the reference") {
  uint64_t seed = 100;
  for (DType dt : kFloats) {
    for (const UnaryCase& c : unary_cases()) {
      for (const Layout& l : layouts({3, 4, 5}, c.lo, c.hi, seed++, dt)) {
        CAPTURE(unary_name(c.op));
        CAPTURE(c.alpha);
        CAPTURE(dtype_name(dt));
        CAPTURE(l.name);
        Tensor out = unary(c.op, l.t, c.alpha);
        CHECK(out.dtype() == dt);
        // A 3-d "transposed" view has NWC strides: channels-last, which the result keeps.
        CHECK(out.is_contiguous(l.t.suggest_memory_format()));
        CHECK(ref_diff(out, l.t.shape(), [&](const Index& i) { return c.ref(l.t.get(i)); },
                       rtol_for(dt) * 2, 0) == "");
      }
      // 0-d input stays 0-d.
      Tensor s = scalar_tensor(0.75, dt);
      Tensor out = unary(c.op, s, c.alpha);
      CHECK(out.dim() == 0);
      CHECK(is_close(out.item(), c.ref(0.75), rtol_for(dt) * 2, 0));
    }
  }
}

TEST_CASE("unary: sign, relu and the masks at zero; a long input goes through the chunked path") {
  for (DType dt : kFloats) {
    Tensor x = from_vector<double>({-2.5, 0.0, 3.0, -0.0}, {4}).to(dt);
    CHECK(unary(UnaryOp::Sign, x).to_vector() == std::vector<double>{-1, 0, 1, 0});
    CHECK(unary(UnaryOp::Relu, x).to_vector() == std::vector<double>{0, 0, 3, 0});
    CHECK(unary(UnaryOp::ReluMask, x).to_vector() == std::vector<double>{0, 0, 1, 0});
    CHECK(unary(UnaryOp::LeakyReluSlope, x, 0.5).to_vector() ==
          std::vector<double>{0.5, 0.5, 1, 0.5});
    Tensor big = rand_tensor({70001}, -4, 4, 7, dt);
    Tensor e = unary(UnaryOp::Tanh, big.slice(0, 1, 70001, 2));
    CHECK(ref_diff(e, {35000}, [&](const Index& i) { return std::tanh(big.get({2 * i[0] + 1})); },
                   rtol_for(dt) * 2, 0) == "");
    Tensor f = unary(UnaryOp::Exp, big);
    CHECK(ref_diff(f, {70001}, [&](const Index& i) { return std::exp(big.get(i)); },
                   rtol_for(dt) * 2, 0) == "");
  }
}

TEST_CASE("unary: int64 supports neg/abs/sign/square/relu exactly and refuses the rest") {
  uint64_t seed = 300;
  const std::vector<std::pair<UnaryOp, std::function<double(double)>>> ok = {
      {UnaryOp::Neg, [](double v) { return -v; }},
      {UnaryOp::Abs, [](double v) { return std::fabs(v); }},
      {UnaryOp::Sign, [](double v) { return static_cast<double>((v > 0) - (v < 0)); }},
      {UnaryOp::Square, [](double v) { return v * v; }},
      {UnaryOp::Relu, [](double v) { return v > 0 ? v : 0; }},
  };
  for (const auto& [op, ref] : ok) {
    for (const Layout& l : layouts({3, 4, 5}, -20, 20, seed++, DType::Int64)) {
      CAPTURE(unary_name(op));
      CAPTURE(l.name);
      Tensor out = unary(op, l.t);
      CHECK(out.dtype() == DType::Int64);
      CHECK(ref_diff(out, l.t.shape(), [&](const Index& i) { return ref(l.t.get(i)); }, 0, 0) ==
            "");
    }
  }
  Tensor xi = rand_tensor({2, 3}, -5, 5, 9, DType::Int64);
  for (UnaryOp op : {UnaryOp::Exp, UnaryOp::Log, UnaryOp::Sqrt, UnaryOp::Rsqrt, UnaryOp::Tanh,
                     UnaryOp::Sigmoid, UnaryOp::Reciprocal, UnaryOp::LeakyRelu,
                     UnaryOp::PowScalar, UnaryOp::ReluMask, UnaryOp::LeakyReluSlope}) {
    CAPTURE(unary_name(op));
    std::string msg = error_of([&] { unary(op, xi, 2.0); });
    CHECK(contains(msg, unary_name(op)));
    CHECK(contains(msg, "int64"));
  }
  std::string msg = error_of([&] { unary(UnaryOp::Exp, xi); });
  CHECK(contains(msg, "exp"));
  CHECK(contains(msg, "int64[2, 3]"));
  CHECK(contains(error_of([&] { unary(UnaryOp::Neg, ones({2}, DType::Bool)); }), "bool"));
}

TEST_CASE("binary: every op, every dtype, every layout pairing") {
  uint64_t seed = 1000;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    for (BinaryOp op : kBinaryOps) {
      double alo, ahi, blo, bhi;
      binary_ranges(op, dt, alo, ahi, blo, bhi);
      std::vector<Layout> as = layouts({3, 4, 5}, alo, ahi, seed, dt);
      std::vector<Layout> bs = layouts({3, 4, 5}, blo, bhi, seed + 50, dt);
      seed += 100;
      for (size_t i = 0; i < as.size(); ++i) {
        const Layout& la = as[i];
        const Layout& lb = bs[(i + 1) % bs.size()];
        CAPTURE(binary_name(op));
        CAPTURE(dtype_name(dt));
        CAPTURE(la.name);
        CAPTURE(lb.name);
        CHECK(binary_diff(op, la.t, lb.t) == "");
        CHECK(binary_diff(op, la.t, bs[i].t) == "");
      }
    }
  }
}

TEST_CASE("binary: NumPy broadcasting, scalars as 0-d tensors, strided operands") {
  uint64_t seed = 2000;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    for (BinaryOp op : kBinaryOps) {
      double alo, ahi, blo, bhi;
      binary_ranges(op, dt, alo, ahi, blo, bhi);
      for (const auto& [sa, sb] : kBroadcastPairs) {
        CAPTURE(binary_name(op));
        CAPTURE(dtype_name(dt));
        CAPTURE(index_str(sa));
        CAPTURE(index_str(sb));
        Tensor a = rand_tensor(sa, alo, ahi, seed++, dt);
        Tensor b = rand_tensor(sb, blo, bhi, seed++, dt);
        CHECK(binary_diff(op, a, b) == "");
      }
      // A transposed [3, 4] against an expanded-then-sliced [3, 4] broadcast from [1, 4].
      Tensor a = rand_tensor({4, 3}, alo, ahi, seed++, dt).t();
      Tensor b = rand_tensor({1, 9}, blo, bhi, seed++, dt).slice(1, 0, 8, 2).expand({3, 4});
      CHECK(binary_diff(op, a, b) == "");
      CHECK(binary_diff(op, a.slice(0, 0, 3, 2), rand_tensor({4}, blo, bhi, seed++, dt)) == "");
    }
  }
  // Large enough for the threaded row split, with a broadcast column.
  Tensor a = rand_tensor({300, 200}, -1, 1, 77, DType::Float32);
  Tensor b = rand_tensor({300, 1}, -1, 1, 78, DType::Float32);
  CHECK(binary_diff(BinaryOp::Mul, a, b) == "");
  CHECK(binary_diff(BinaryOp::Sub, b, a.t().t()) == "");
  CHECK(binary_diff(BinaryOp::Add, a.t(), rand_tensor({300}, -1, 1, 79)) == "");
}

TEST_CASE("binary: the add/sub/mul/div shorthands are the same ops") {
  Tensor a = rand_tensor({3, 4}, 0.5, 2, 11, DType::Float64);
  Tensor b = rand_tensor({4}, 0.5, 2, 12, DType::Float64);
  CHECK(add(a, b).to_vector() == binary(BinaryOp::Add, a, b).to_vector());
  CHECK(sub(a, b).to_vector() == binary(BinaryOp::Sub, a, b).to_vector());
  CHECK(mul(a, b).to_vector() == binary(BinaryOp::Mul, a, b).to_vector());
  CHECK(div(a, b).to_vector() == binary(BinaryOp::Div, a, b).to_vector());
  CHECK(add(a, b).get({2, 3}) == a.get({2, 3}) + b.get({3}));
}

TEST_CASE("binary: int64 division by zero is an error, not a trap; INT64_MIN / -1 wraps") {
  Tensor a = rand_tensor({3, 4}, -50, 50, 31, DType::Int64);
  Tensor b = rand_tensor({3, 4}, 1, 9, 32, DType::Int64);
  b.set({2, 1}, 0);
  std::string msg = error_of([&] { div(a, b); });
  CHECK(contains(msg, "div"));
  CHECK(contains(msg, "zero"));
  CHECK(contains(error_of([&] { div(a, zeros({}, DType::Int64)); }), "zero"));
  CHECK(contains(error_of([&] { div(a, b.t().t().slice(0, 2, 3)); }), "zero"));
  CHECK(error_of([&] { div(a, b.slice(0, 0, 2)); }).find("[3, 4]") != std::string::npos);
  // A zero outside the strided view does not count.
  CHECK(binary_diff(BinaryOp::Div, a.slice(1, 0, 4, 2), b.slice(1, 0, 4, 2)) == "");
  const int64_t lo = std::numeric_limits<int64_t>::min();
  Tensor q = div(from_vector<int64_t>({lo, 7, -9, lo}, {4}),
                 from_vector<int64_t>({-1, -1, -1, 2}, {4}));
  CHECK(q.data<int64_t>()[0] == lo);
  CHECK(q.data<int64_t>()[1] == -7);
  CHECK(q.data<int64_t>()[2] == 9);
  CHECK(q.data<int64_t>()[3] == lo / 2);
  // Floats divide by zero as IEEE says.
  Tensor f = div(from_vector<double>({1, -1, 0}, {3}), zeros({3}, DType::Float64));
  CHECK(std::isinf(f.get({0})));
  CHECK(f.get({1}) < 0);
  CHECK(std::isnan(f.get({2})));
}

TEST_CASE("binary: errors name the op, both shapes or both dtypes") {
  Tensor a = rand_tensor({3, 2}, -1, 1, 1);
  Tensor b = rand_tensor({4}, -1, 1, 2);
  std::string msg = error_of([&] { binary(BinaryOp::Add, a, b); });
  CHECK(contains(msg, "add"));
  CHECK(contains(msg, "[3, 2]"));
  CHECK(contains(msg, "[4]"));
  msg = error_of([&] { binary(BinaryOp::Mul, rand_tensor({2, 3, 4}, -1, 1, 3), a); });
  CHECK(contains(msg, "mul"));
  CHECK(contains(msg, "[2, 3, 4]"));
  CHECK(contains(msg, "[3, 2]"));
  msg = error_of([&] { binary(BinaryOp::Sub, a, a.to(DType::Float64)); });
  CHECK(contains(msg, "sub"));
  CHECK(contains(msg, "float32"));
  CHECK(contains(msg, "float64"));
  msg = error_of([&] { binary(BinaryOp::Add, a.to(DType::Int64), a); });
  CHECK(contains(msg, "int64"));
  CHECK(contains(msg, "float32"));
  CHECK(contains(error_of([&] { binary(BinaryOp::Add, Tensor(), a); }), "undefined"));
  CHECK(contains(error_of([&] { binary(BinaryOp::Add, ones({2}, DType::Bool),
                                       ones({2}, DType::Bool)); }),
                 "bool"));
}

TEST_CASE("compare: every op, every dtype, with ties, broadcasts and strided operands") {
  uint64_t seed = 3000;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    for (CompareOp op : kCompareOps) {
      CAPTURE(dtype_name(dt));
      CAPTURE(static_cast<int>(op));
      auto check = [&](const Tensor& a, const Tensor& b) {
        Tensor out = compare(op, a, b);
        CHECK(out.dtype() == DType::Bool);
        Shape shape = broadcast_shapes(a.shape(), b.shape());
        CHECK(ref_diff(out, shape,
                       [&](const Index& i) {
                         return compare_ref(op, a.get(broadcast_index(i, a.shape())),
                                            b.get(broadcast_index(i, b.shape())));
                       },
                       0, 0) == "");
      };
      // Values in {-2..1} so that equalities happen often.
      std::vector<Layout> as = layouts({3, 4, 5}, -2, 2, seed, dt);
      for (size_t i = 0; i < as.size(); ++i) {
        Tensor b = random_ints(as[i].t.shape(), -2, 2, seed + 10 + i, dt);
        CAPTURE(as[i].name);
        check(as[i].t, b);
        check(b.t(), as[i].t.transpose(0, 1));
      }
      for (const auto& [sa, sb] : kBroadcastPairs)
        check(random_ints(sa, -2, 2, seed + 20, dt), random_ints(sb, -2, 2, seed + 21, dt));
      seed += 100;
    }
  }
  Tensor t = compare(CompareOp::Gt, rand_tensor({6}, -1, 1, 5), scalar_tensor(0.0));
  Tensor u = compare(CompareOp::Lt, rand_tensor({6}, -1, 1, 6), scalar_tensor(0.0));
  Tensor eq = compare(CompareOp::Eq, t, u);
  for (int64_t i = 0; i < 6; ++i) CHECK(eq.get({i}) == double(t.get({i}) == u.get({i})));
  std::string msg = error_of([&] { compare(CompareOp::Lt, t, rand_tensor({6}, -1, 1, 5)); });
  CHECK(contains(msg, "bool"));
  CHECK(contains(msg, "float32"));
  msg = error_of([&] { compare(CompareOp::Eq, rand_tensor({2, 3}, 0, 1, 1),
                               rand_tensor({3, 2}, 0, 1, 2)); });
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "[3, 2]"));
}

TEST_CASE("where: broadcast condition and branches, every dtype, strided inputs") {
  uint64_t seed = 4000;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    CAPTURE(dtype_name(dt));
    auto check = [&](const Tensor& c, const Tensor& a, const Tensor& b) {
      Tensor out = where(c, a, b);
      CHECK(out.dtype() == dt);
      Shape shape = broadcast_shapes(broadcast_shapes(c.shape(), a.shape()), b.shape());
      CHECK(ref_diff(out, shape,
                     [&](const Index& i) {
                       return c.get(broadcast_index(i, c.shape())) != 0
                                  ? a.get(broadcast_index(i, a.shape()))
                                  : b.get(broadcast_index(i, b.shape()));
                     },
                     0, 0) == "");
    };
    auto cond = [&](const Shape& s) {
      return compare(CompareOp::Gt, rand_tensor(s, -1, 1, seed++), scalar_tensor(0.0));
    };
    auto r = [&](const Shape& s, uint64_t k) { return rand_tensor(s, -9, 9, seed + k, dt); };
    check(cond({3, 1}), r({1, 4}, 100), r({}, 101));
    check(cond({4, 1}), r({2, 1, 3}, 102), r({3}, 103));
    check(cond({}), r({2, 3}, 104), r({2, 3}, 105));
    std::vector<Layout> as = layouts({3, 4, 5}, -9, 9, seed, dt);
    std::vector<Layout> bs = layouts({3, 4, 5}, -9, 9, seed + 10, dt);
    seed += 20;
    for (size_t i = 0; i < as.size(); ++i) {
      CAPTURE(as[i].name);
      Tensor c = cond({5, 4, 3}).permute({2, 1, 0});
      check(c, as[i].t, bs[(i + 2) % bs.size()].t);
      check(cond({3, 4, 5}).slice(2, 0, 4, 2), as[i].t.slice(2, 1, 5, 2),
            bs[i].t.select(2, 0).unsqueeze(2));
    }
  }
  Tensor c = compare(CompareOp::Gt, rand_tensor({2, 3}, -1, 1, 1), scalar_tensor(0.0));
  Tensor a = rand_tensor({2, 3}, -1, 1, 2);
  CHECK(contains(error_of([&] { where(a, a, a); }), "bool"));
  std::string msg = error_of([&] { where(c, a, a.to(DType::Float64)); });
  CHECK(contains(msg, "float32"));
  CHECK(contains(msg, "float64"));
  msg = error_of([&] { where(c, a, rand_tensor({4}, -1, 1, 3)); });
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "[4]"));
}

TEST_CASE("clamp and clamp_mask: float32/float64/int64 on every layout; bounds are inclusive") {
  uint64_t seed = 5000;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    const double lo = dt == DType::Int64 ? -3 : -0.5, hi = dt == DType::Int64 ? 4 : 0.75;
    for (const Layout& l : layouts({3, 4, 5}, -8, 8, seed++, dt)) {
      CAPTURE(dtype_name(dt));
      CAPTURE(l.name);
      Tensor c = clamp(l.t, lo, hi);
      Tensor m = clamp_mask(l.t, lo, hi);
      CHECK(c.dtype() == dt);
      CHECK(m.dtype() == dt);
      CHECK(ref_diff(c, l.t.shape(),
                     [&](const Index& i) { return std::min(std::max(l.t.get(i), lo), hi); }, 0,
                     0) == "");
      CHECK(ref_diff(m, l.t.shape(),
                     [&](const Index& i) {
                       const double v = l.t.get(i);
                       return (v >= lo && v <= hi) ? 1.0 : 0.0;
                     },
                     0, 0) == "");
    }
    Tensor edge = from_vector<double>({lo, hi, lo - 1, hi + 1, (lo + hi) / 2}, {5}).to(dt);
    CHECK(clamp_mask(edge, lo, hi).to_vector() == std::vector<double>{1, 1, 0, 0, 1});
    CHECK(clamp(edge, lo, hi).to_vector() ==
          std::vector<double>{lo, hi, lo, hi, edge.get({4})});
  }
  std::string msg = error_of([] { clamp(ones({2}), 1.0, -1.0); });
  CHECK(contains(msg, "clamp"));
  CHECK(contains(error_of([] { clamp(ones({2}, DType::Bool), 0, 1); }), "bool"));
}

TEST_CASE("axpy_: a += alpha * b with strided and broadcast b, in every dtype") {
  uint64_t seed = 6000;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    const double alpha = dt == DType::Int64 ? 3 : -0.75;
    std::vector<Layout> bs = layouts({3, 4, 5}, -4, 4, seed, dt);
    bs.push_back({"[4, 1]", rand_tensor({4, 1}, -4, 4, seed + 10, dt)});
    bs.push_back({"[5]", rand_tensor({5}, -4, 4, seed + 11, dt)});
    bs.push_back({"0-d", rand_tensor({}, -4, 4, seed + 12, dt)});
    seed += 20;
    for (const Layout& lb : bs) {
      CAPTURE(dtype_name(dt));
      CAPTURE(lb.name);
      Tensor a0 = rand_tensor({3, 4, 5}, -4, 4, seed++, dt);
      Tensor a = a0.clone();
      axpy_(a, alpha, lb.t);
      CHECK(ref_diff(a, a0.shape(),
                     [&](const Index& i) {
                       return a0.get(i) + alpha * lb.t.get(broadcast_index(i, lb.t.shape()));
                     },
                     dt == DType::Int64 ? 0 : rtol_for(dt), dt == DType::Float32 ? 2e-6 : 1e-14) ==
            "");
    }
  }
  // A large contiguous a uses the chunked threaded path.
  Tensor big0 = rand_tensor({50000}, -1, 1, 21, DType::Float64);
  Tensor big = big0.clone(), bb = rand_tensor({100000}, -1, 1, 22, DType::Float64);
  axpy_(big, 0.5, bb.slice(0, 0, 100000, 2));
  CHECK(ref_diff(big, {50000},
                 [&](const Index& i) { return big0.get(i) + 0.5 * bb.get({2 * i[0]}); }, 1e-15,
                 1e-15) == "");

  Tensor a = rand_tensor({4, 3}, -1, 1, 1);
  std::string msg = error_of([&] { axpy_(a.t(), 1.0, rand_tensor({3, 4}, -1, 1, 2)); });
  CHECK(contains(msg, "contiguous"));
  msg = error_of([&] { axpy_(a, 1.0, a.to(DType::Float64)); });
  CHECK(contains(msg, "float32"));
  CHECK(contains(msg, "float64"));
  msg = error_of([&] { axpy_(a, 1.0, rand_tensor({4}, -1, 1, 2)); });
  CHECK(contains(msg, "[4, 3]"));
  CHECK(contains(msg, "[4]"));
}

TEST_CASE("scale_: scales a contiguous tensor, or only the elements of a strided view") {
  uint64_t seed = 7000;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    CAPTURE(dtype_name(dt));
    const double alpha = dt == DType::Int64 ? -2 : 1.5;
    Tensor x0 = rand_tensor({3, 4, 5}, -4, 4, seed++, dt);
    Tensor x = x0.clone();
    scale_(x, alpha);
    const double rtol = dt == DType::Int64 ? 0 : rtol_for(dt);
    CHECK(ref_diff(x, x0.shape(), [&](const Index& i) { return alpha * x0.get(i); }, rtol, 0) ==
          "");
    // Strided view: elements outside the view are untouched.
    Tensor base0 = rand_tensor({6, 7}, -4, 4, seed++, dt);
    Tensor base = base0.clone();
    Tensor v = base.slice(0, 1, 6, 2).slice(1, 0, 7, 3).t();
    scale_(v, alpha);
    CHECK(ref_diff(base, base0.shape(),
                   [&](const Index& i) {
                     const bool in = i[0] % 2 == 1 && i[1] % 3 == 0;
                     return in ? alpha * base0.get(i) : base0.get(i);
                   },
                   rtol, 0) == "");
    // 0-d.
    Tensor s = scalar_tensor(3, dt);
    scale_(s, alpha);
    CHECK(s.item() == 3 * alpha);
  }
}

}  // TEST_SUITE
