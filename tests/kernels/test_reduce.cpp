// tests/kernels/test_reduce.cpp — sum/mean/max/min/var/argmax over every subset of dims against
// naive loops, the leading-dims fast path, float32 accumulation, sum_to and thread independence.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "tests/kernels/kernel_test_util.h"

using namespace dfx;
using namespace dfx::kernels;
using namespace dfx::ktest;

namespace {

enum class Ref { Sum, Mean, Max, Min, Var0, Var1, Argmax };

const char* ref_name(Ref r) {
  static const char* names[] = {"sum", "mean", "max", "min", "var(c=0)", "var(c=1)", "argmax"};
  return names[static_cast<int>(r)];
}

// The values of x grouped by output element: group g (row-major over the kept dims) holds the
// elements that reduce into it, in row-major order of x.
struct Groups {
  std::vector<bool> reduced;
  Shape kept;
  std::vector<std::vector<double>> vals;
};

Groups group_by(const Tensor& x, std::vector<int64_t> dims) {
  Groups g;
  const int n = x.dim();
  g.reduced.assign(n, dims.empty());
  for (int64_t d : dims) g.reduced[d < 0 ? d + n : d] = true;
  for (int d = 0; d < n; ++d)
    if (!g.reduced[d]) g.kept.push_back(x.shape()[d]);
  g.vals.resize(shape_numel(g.kept));
  for_each_index(x.shape(), [&](const Index& i) {
    int64_t flat = 0;
    for (int d = 0; d < n; ++d)
      if (!g.reduced[d]) flat = flat * x.shape()[d] + i[d];
    g.vals[flat].push_back(x.get(i));
  });
  return g;
}

// Index of output element `out_idx` (of a keepdim or squeezed result) among the groups.
int64_t group_of(const Groups& g, const Index& out_idx, bool keepdim) {
  // Row-major over the kept dims, reading them from out_idx.
  int64_t flat = 0;
  size_t k = 0, kd = 0;
  for (size_t d = 0; d < g.reduced.size(); ++d) {
    if (g.reduced[d]) {
      if (keepdim) ++k;
      continue;
    }
    flat = flat * g.kept[kd++] + out_idx[k++];
  }
  return flat;
}

double apply_ref(Ref r, const std::vector<double>& v, bool int_mean) {
  const double n = static_cast<double>(v.size());
  double s = 0;
  for (double e : v) s += e;
  switch (r) {
    case Ref::Sum: return s;
    case Ref::Mean: return int_mean ? std::trunc(s / n) : s / n;
    case Ref::Max: return *std::max_element(v.begin(), v.end());
    case Ref::Min: return *std::min_element(v.begin(), v.end());
    case Ref::Var0:
    case Ref::Var1: {
      const double m = s / n, c = r == Ref::Var0 ? 0 : 1;
      double ss = 0;
      for (double e : v) ss += (e - m) * (e - m);
      return n - c > 0 ? ss / (n - c) : std::numeric_limits<double>::quiet_NaN();
    }
    case Ref::Argmax:
      return static_cast<double>(std::max_element(v.begin(), v.end()) - v.begin());
  }
  return 0;
}

Tensor run(Ref r, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  switch (r) {
    case Ref::Sum: return sum(x, dims, keepdim);
    case Ref::Mean: return mean(x, dims, keepdim);
    case Ref::Max: return amax(x, dims, keepdim);
    case Ref::Min: return amin(x, dims, keepdim);
    case Ref::Var0: return var(x, dims, 0, keepdim);
    case Ref::Var1: return var(x, dims, 1, keepdim);
    case Ref::Argmax: return argmax(x, dims.at(0), keepdim);
  }
  return {};
}

// The reduction r of x over dims against the grouped reference: shape, dtype and every value.
std::string reduce_diff(Ref r, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor out = run(r, x, dims, keepdim);
  const DType want_dtype = r == Ref::Argmax ? DType::Int64 : x.dtype();
  if (out.dtype() != want_dtype) return std::string("dtype ") + dtype_name(out.dtype());
  Groups g = group_by(x, dims);
  std::vector<int> nd = normalize_dims(dims, x.dim(), "test");
  Shape shape = reduced_shape(x.shape(), nd, keepdim);
  const bool is_int = x.dtype() == DType::Int64;
  const bool exact = is_int || r == Ref::Max || r == Ref::Min || r == Ref::Argmax;
  const double rtol = exact ? 0 : (x.dtype() == DType::Float32 ? 2e-6 : 1e-12);
  const double atol = exact ? 0 : (x.dtype() == DType::Float32 ? 1e-6 : 1e-12);
  return ref_diff(
      out, shape,
      [&](const Index& i) { return apply_ref(r, g.vals[group_of(g, i, keepdim)], is_int); }, rtol,
      atol);
}

// Every subset of {0, 1, 2}, spelled in several ways ({} means all dims).
const std::vector<std::vector<int64_t>> kSubsets = {
    {}, {0}, {1}, {2}, {0, 1}, {0, 2}, {1, 2}, {0, 1, 2}, {-1}, {2, 0}, {-3, -2}, {-1, 1, 0}};

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE("reduce: sum/mean/max/min/var over every subset of dims, every layout, keepdim on/off") {
  uint64_t seed = 10;
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const Layout& l : layouts({3, 4, 5}, -3, 3, seed++, dt)) {
      for (const auto& dims : kSubsets) {
        for (bool keepdim : {false, true}) {
          for (Ref r : {Ref::Sum, Ref::Mean, Ref::Max, Ref::Min, Ref::Var0, Ref::Var1}) {
            CAPTURE(dtype_name(dt));
            CAPTURE(l.name);
            CAPTURE(index_str(dims));
            CAPTURE(keepdim);
            CAPTURE(ref_name(r));
            CHECK(reduce_diff(r, l.t, dims, keepdim) == "");
          }
        }
      }
    }
  }
}

TEST_CASE("reduce: int64 sum/mean/max/min are exact; var refuses int64") {
  uint64_t seed = 50;
  for (const Layout& l : layouts({3, 4, 5}, -1000, 1000, seed, DType::Int64)) {
    for (const auto& dims : kSubsets) {
      for (bool keepdim : {false, true}) {
        for (Ref r : {Ref::Sum, Ref::Mean, Ref::Max, Ref::Min}) {
          CAPTURE(l.name);
          CAPTURE(index_str(dims));
          CAPTURE(keepdim);
          CAPTURE(ref_name(r));
          CHECK(reduce_diff(r, l.t, dims, keepdim) == "");
        }
      }
    }
  }
  Tensor xi = rand_tensor({3, 4}, -5, 5, 1, DType::Int64);
  CHECK(contains(error_of([&] { var(xi); }), "int64"));
  CHECK(contains(error_of([&] { sum(ones({3}, DType::Bool)); }), "bool"));
}

TEST_CASE("argmax: every dim, keepdim, every layout, first index among ties") {
  uint64_t seed = 70;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    // Random values (no ties) and small integers (many ties: the first maximum must win).
    std::vector<Layout> ls = layouts({3, 4, 5}, -3, 3, seed, dt);
    for (Layout& l : layouts({3, 4, 5}, 0, 3, seed + 10, dt, /*ints=*/true))
      ls.push_back({l.name + " with ties", l.t});
    seed += 30;
    for (const Layout& l : ls) {
      for (int64_t dim : {0, 1, 2, -1, -3}) {
        for (bool keepdim : {false, true}) {
          CAPTURE(dtype_name(dt));
          CAPTURE(l.name);
          CAPTURE(dim);
          CAPTURE(keepdim);
          CHECK(reduce_diff(Ref::Argmax, l.t, {dim}, keepdim) == "");
        }
      }
    }
  }
  Tensor x = from_vector<double>({1, 7, 7, 2, 7, 0}, {2, 3});
  CHECK(argmax(x, 1).to_vector() == std::vector<double>{1, 1});
  CHECK(argmax(x, 0).to_vector() == std::vector<double>{1, 0, 0});
  CHECK(argmax(x, 1, true).shape() == Shape{2, 1});
  CHECK(contains(error_of([&] { argmax(x, 2); }), "argmax"));
}

TEST_CASE("reduce: leading-dims fast path on a contiguous [64, 33, 5] tensor and a narrowed view") {
  uint64_t seed = 200;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    Tensor x = rand_tensor({64, 33, 5}, -100, 100, seed++, dt);
    Tensor x_narrow = x.narrow(0, 7, 40);  // contiguous, with a storage offset
    REQUIRE(x_narrow.is_contiguous());
    for (const Tensor& t : {x, x_narrow}) {
      for (const std::vector<int64_t>& dims : {std::vector<int64_t>{0}, {0, 1}, {-3, -2}}) {
        for (bool keepdim : {false, true}) {
          for (Ref r : {Ref::Sum, Ref::Mean}) {
            CAPTURE(dtype_name(dt));
            CAPTURE(index_str(t.shape()));
            CAPTURE(index_str(dims));
            CAPTURE(keepdim);
            CAPTURE(ref_name(r));
            CHECK(reduce_diff(r, t, dims, keepdim) == "");
          }
        }
      }
    }
  }
  // Wide enough (more than one 256-column block, above the threading threshold).
  Tensor w = rand_tensor({300, 700}, -1, 1, 300, DType::Float32);
  CHECK(reduce_diff(Ref::Sum, w, {0}, false) == "");
  CHECK(reduce_diff(Ref::Mean, w, {0}, true) == "");
  CHECK(reduce_diff(Ref::Sum, w.view({300, 7, 100}), {0, 1}, false) == "");
}

TEST_CASE("reduce: int64 mean truncates the exact quotient on every path") {
  // 49 * (1.0 / 49) rounds below 1: a mean computed by multiplying by 1/R truncates to 0.
  for (int64_t n : {3, 49, 98, 2112}) {
    CAPTURE(n);
    Tensor x = full({n, 3}, 1.0, DType::Int64);
    Tensor y = full({n, 3}, 5.0, DType::Int64);
    CHECK(mean(x, {0}).to_vector() == std::vector<double>{1, 1, 1});      // leading dims
    CHECK(mean(x.t(), {1}).to_vector() == std::vector<double>{1, 1, 1});  // rows
    CHECK(mean(y, {0}).to_vector() == std::vector<double>{5, 5, 5});
    CHECK(mean(full({n}, -7.0, DType::Int64)).item() == -7);
  }
}

TEST_CASE("reduce: int64 sums beyond 2^53 stay exact on the leading-dims and row paths") {
  const int64_t big = (int64_t(1) << 53) + 1;
  Tensor x = from_vector<int64_t>({big, big + 2, -3, big, 5, 7, big, 1, 1, big, 0, 2}, {4, 3});
  const int64_t want[3] = {4 * big, big + 8, 7};
  Tensor lead = sum(x, {0}), rows = sum(x.t(), {1});
  for (int64_t j = 0; j < 3; ++j) {
    CAPTURE(j);
    CHECK(lead.data<int64_t>()[j] == want[j]);
    CHECK(rows.data<int64_t>()[j] == want[j]);
  }
}

TEST_CASE("reduce: 0-d inputs, empty dims and bad dims") {
  Tensor s = scalar_tensor(2.5, DType::Float64);
  CHECK(sum(s).dim() == 0);
  CHECK(sum(s).item() == 2.5);
  CHECK(mean(s).item() == 2.5);
  CHECK(amax(s).item() == 2.5);
  CHECK(var(s, {}, 0).item() == 0);
  CHECK(std::isnan(var(s, {}, 1).item()));
  CHECK(var(s, {}, 0, true).dim() == 0);
  CHECK(sum(s, {}, true).dim() == 0);
  CHECK(sum(s, {0}).item() == 2.5);
  CHECK(argmax(s, 0).dim() == 0);
  CHECK(argmax(s, -1, true).item() == 0);
  CHECK(argmax(s, 0).dtype() == DType::Int64);

  Tensor e = zeros({0, 3});
  CHECK(sum(e, {0}).to_vector() == std::vector<double>{0, 0, 0});
  CHECK(std::isnan(mean(e, {0}).get({1})));
  CHECK(sum(e.t(), {1}).to_vector() == std::vector<double>{0, 0, 0});
  CHECK(contains(error_of([&] { amax(e, {0}); }), "empty"));
  CHECK(sum(e, {1}).shape() == Shape{0});

  Tensor x = rand_tensor({2, 3}, -1, 1, 5);
  CHECK(contains(error_of([&] { sum(x, {2}); }), "out of range"));
  CHECK(contains(error_of([&] { sum(x, {0, -2}); }), "repeated"));
}

TEST_CASE("reduce: float32 sums of 10^6 values agree with the float64 sum") {
  Tensor x = uniform({1000000}, 0, 1, 42, 0, 0, DType::Float32);
  const float* p = x.data<float>();
  double ref = 0;
  float naive = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    ref += p[i];
    naive += p[i];
  }
  INFO("float32 running sum is off by ", std::fabs(naive - ref));
  const double tol = 2e-7 * ref;  // one float32 rounding of the result, with margin
  CHECK(std::fabs(sum(x).item() - ref) <= tol);
  CHECK(std::fabs(sum(x.view({1000000, 1}), {0}).item() - ref) <= tol);     // leading dims
  CHECK(std::fabs(sum(x.view({1000, 1000})).item() - ref) <= tol);         // all dims
  CHECK(std::fabs(sum(x.view({1, 1000000}), {1}).item() - ref) <= tol);     // one row
  CHECK(std::fabs(mean(x).item() - ref / 1e6) <= 2e-7 * ref / 1e6);
  double ss = 0;
  for (int64_t i = 0; i < x.numel(); ++i) ss += (p[i] - ref / 1e6) * (p[i] - ref / 1e6);
  CHECK(std::fabs(var(x).item() - ss / (1e6 - 1)) <= 2e-7 * ss / 1e6);
  CHECK(std::fabs(var(x, {}, 0).item() - ss / 1e6) <= 2e-7 * ss / 1e6);

  // Sums of large offsets with small parts: float32 accumulation would lose the small parts.
  Tensor y = add(full({1 << 20}, 4096.0), uniform({1 << 20}, 0, 1, 43, 0, 0, DType::Float32));
  const float* q = y.data<float>();
  double ry = 0;
  for (int64_t i = 0; i < y.numel(); ++i) ry += q[i];
  CHECK(std::fabs(sum(y).item() - ry) <= 2e-7 * ry);
  double col5 = 0;
  for (int64_t i = 0; i < (1 << 10); ++i) col5 += q[i * (1 << 10) + 5];
  CHECK(std::fabs(sum(y.view({1 << 10, 1 << 10}), {0}).get({5}) - col5) <= 2e-7 * col5);
}

TEST_CASE("sum_to: reverses broadcasting for every target shape, on strided inputs") {
  uint64_t seed = 400;
  const std::vector<Shape> targets = {{3, 4}, {1, 4}, {3, 1}, {4},       {1},       {},
                                      {2, 1, 4}, {1, 1, 1}, {2, 3, 1}, {1, 3, 4}, {2, 3, 4}};
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    for (const Layout& l : layouts({2, 3, 4}, -5, 5, seed++, dt)) {
      for (const Shape& target : targets) {
        CAPTURE(dtype_name(dt));
        CAPTURE(l.name);
        CAPTURE(index_str(target));
        Tensor out = sum_to(l.t, target);
        std::vector<double> ref(shape_numel(target), 0.0);
        const Shape ts = contiguous_strides(target);
        for_each_index(l.t.shape(), [&](const Index& i) {
          Index o = broadcast_index(i, target);
          int64_t flat = 0;
          for (size_t d = 0; d < o.size(); ++d) flat += o[d] * ts[d];
          ref[flat] += l.t.get(i);
        });
        CHECK(ref_diff(out, target,
                       [&](const Index& o) {
                         int64_t flat = 0;
                         for (size_t d = 0; d < o.size(); ++d) flat += o[d] * ts[d];
                         return ref[flat];
                       },
                       dt == DType::Float32 ? 2e-6 : 1e-12, dt == DType::Float32 ? 1e-5 : 0) ==
              "");
      }
    }
  }
  Tensor x = rand_tensor({2, 3, 4}, -1, 1, 9);
  CHECK(sum_to(x, {2, 3, 4}).shares_storage(x));
  std::string msg = error_of([&] { sum_to(x, {5}); });
  CHECK(contains(msg, "[2, 3, 4]"));
  CHECK(contains(msg, "[5]"));
  CHECK(contains(error_of([&] { sum_to(x, {1, 2, 3, 4}); }), "more dims"));
  CHECK(contains(error_of([&] { sum_to(x, {3, 2}); }), "sum_to"));
}

TEST_CASE("reduce: results are bitwise independent of the OpenMP thread count") {
  Tensor a = rand_tensor({300, 400}, -1, 1, 500, DType::Float32);
  Tensor b = rand_tensor({400, 300}, -1, 1, 501, DType::Float64).t();
  auto all = [&] {
    std::vector<std::vector<double>> r;
    for (const Tensor& x : {a, b}) {
      r.push_back(sum(x, {0}).to_vector());  // leading dims, threaded over column blocks
      r.push_back(sum(x, {1}).to_vector());  // rows
      r.push_back(mean(x, {0}, true).to_vector());
      r.push_back(sum(x).to_vector());
      r.push_back(amax(x, {1}).to_vector());
      r.push_back(amin(x, {0}).to_vector());
      r.push_back(var(x, {0}, 1).to_vector());
      r.push_back(var(x, {1}, 0).to_vector());
      r.push_back(argmax(x, 1).to_vector());
      r.push_back(sum_to(x, {300, 1}).to_vector());
    }
    return r;
  };
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  auto one = all();
  omp_set_num_threads(2);
  auto two = all();
  omp_set_num_threads(4);
  auto four = all();
  omp_set_num_threads(saved);
  REQUIRE(one.size() == two.size());
  for (size_t i = 0; i < one.size(); ++i) {
    CAPTURE(i);
    CHECK(one[i] == two[i]);
    CHECK(one[i] == four[i]);
  }
}

}  // TEST_SUITE
