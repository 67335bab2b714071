// tests/kernels/test_gemm_shape.cpp — matmul (2-d, strided views, batched broadcasts, 1-d
// promotions, the folded path) and gemm against naive loops; concat/stack/split/unnarrow.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/shape_ops.h"
#include "tests/kernels/kernel_test_util.h"

using namespace dfx;
using namespace dfx::kernels;
using namespace dfx::ktest;

namespace {

const DType kDTypes[] = {DType::Float32, DType::Float64, DType::Int64};

double rtol_mm(DType dt) { return dt == DType::Int64 ? 0 : (dt == DType::Float32 ? 1e-5 : 1e-12); }
double atol_mm(DType dt) { return dt == DType::Int64 ? 0 : (dt == DType::Float32 ? 1e-5 : 1e-12); }

// matmul(a, b) against NumPy's rules written out: 1-d promotion, broadcast batch dims, a dot
// product per output element.
std::string matmul_diff(const Tensor& a, const Tensor& b) {
  Tensor out = matmul(a, b);
  if (out.dtype() != a.dtype()) return "result dtype differs";
  const bool va = a.dim() == 1, vb = b.dim() == 1;
  Shape sa = a.shape(), sb = b.shape();
  if (va) sa.insert(sa.begin(), 1);
  if (vb) sb.push_back(1);
  const int64_t M = sa[sa.size() - 2], K = sa.back(), N = sb.back();
  Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  Shape batch = broadcast_shapes(ba, bb);
  Shape want = batch;
  if (!va) want.push_back(M);
  if (!vb) want.push_back(N);
  return ref_diff(
      out, want,
      [&](const Index& i) {
        Index bi(i.begin(), i.begin() + batch.size());
        const int64_t m = va ? 0 : i[batch.size()], n = vb ? 0 : i.back();
        const Index ai = broadcast_index(bi, ba), bj = broadcast_index(bi, bb);
        double s = 0;
        for (int64_t k = 0; k < K; ++k) {
          Index ia = ai, ib = bj;
          if (!va) ia.push_back(m);
          ia.push_back(k);
          ib.push_back(k);
          if (!vb) ib.push_back(n);
          s += a.get(ia) * b.get(ib);
        }
        return s;
      },
      rtol_mm(a.dtype()), atol_mm(a.dtype()));
}

Tensor r(const Shape& s, uint64_t seed, DType dt) { return rand_tensor(s, -4, 4, seed, dt); }

// Element `i` of concat(xs, d): the piece whose range along d holds i[d].
double concat_ref(const std::vector<Tensor>& xs, int d, Index i) {
  for (const Tensor& x : xs) {
    if (i[d] < x.shape()[d]) return x.get(i);
    i[d] -= x.shape()[d];
  }
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE("matmul: 2-d products on contiguous, transposed, row-strided and copied layouts") {
  uint64_t seed = 10;
  for (DType dt : kDTypes) {
    CAPTURE(dtype_name(dt));
    const std::vector<std::pair<std::string, Tensor>> as = {
        {"contiguous", r({5, 7}, seed, dt)},
        {"transposed", r({7, 5}, seed + 1, dt).t()},
        {"row-strided", r({5, 10}, seed + 2, dt).narrow(1, 2, 7)},
        {"col-strided transposed", r({9, 5}, seed + 3, dt).narrow(0, 1, 7).t()},
        {"step-sliced", r({5, 14}, seed + 4, dt).slice(1, 1, 14, 2)},
        {"expanded", r({1, 7}, seed + 5, dt).expand({5, 7})}};
    const std::vector<std::pair<std::string, Tensor>> bs = {
        {"contiguous", r({7, 3}, seed + 6, dt)},
        {"transposed", r({3, 7}, seed + 7, dt).t()},
        {"row-strided", r({7, 8}, seed + 8, dt).narrow(1, 4, 3)},
        {"step-sliced", r({14, 3}, seed + 9, dt).slice(0, 0, 14, 2)},
        {"expanded", r({7, 1}, seed + 10, dt).expand({7, 3})}};
    seed += 20;
    for (const auto& [na, a] : as) {
      for (const auto& [nb, b] : bs) {
        CAPTURE(na);
        CAPTURE(nb);
        CHECK(matmul_diff(a, b) == "");
      }
    }
    // Single rows and columns (BLAS leading dimensions at their edge cases).
    CHECK(matmul_diff(r({1, 7}, seed, dt), r({7, 1}, seed + 1, dt)) == "");
    CHECK(matmul_diff(r({7, 1}, seed + 2, dt), r({1, 6}, seed + 3, dt)) == "");
    CHECK(matmul_diff(r({6, 9}, seed + 4, dt).narrow(1, 3, 1),
                      r({3, 6}, seed + 5, dt).narrow(0, 1, 1)) == "");
    CHECK(matmul_diff(r({40, 33}, seed + 6, dt), r({33, 29}, seed + 7, dt).t().t()) == "");
  }
}

TEST_CASE("gram: a^T a by SYRK equals the dot products, exactly symmetric, on every layout") {
  uint64_t seed = 400;
  for (DType dt : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dt));
    const std::vector<std::pair<std::string, Tensor>> as = {
        {"contiguous", r({37, 11}, seed, dt)},
        {"transposed", r({11, 37}, seed + 1, dt).t()},
        {"row-strided", r({37, 15}, seed + 2, dt).narrow(1, 3, 11)},
        {"step-sliced", r({37, 22}, seed + 3, dt).slice(1, 0, 22, 2)},
        {"one row", r({1, 6}, seed + 4, dt)},
        {"one column", r({9, 1}, seed + 5, dt)}};
    seed += 10;
    for (const auto& [name, a] : as) {
      CAPTURE(name);
      const Tensor g = gram(a);
      REQUIRE(g.dtype() == dt);
      CHECK(ref_diff(
                g, {a.size(1), a.size(1)},
                [&](const Index& i) {
                  double s = 0;
                  for (int64_t k = 0; k < a.size(0); ++k) s += a.get({k, i[0]}) * a.get({k, i[1]});
                  return s;
                },
                rtol_mm(dt), atol_mm(dt)) == "");
      for (int64_t i = 0; i < g.size(0); ++i)
        for (int64_t j = 0; j < i; ++j) CHECK(g.get({i, j}) == g.get({j, i}));
    }
  }
  CHECK(gram(zeros({0, 4}, DType::Float64)).shape() == Shape{4, 4});
  CHECK_THROWS_WITH_AS(gram(zeros({3, 4}, DType::Int64)), doctest::Contains("float32 or float64"),
                       std::exception);
}

TEST_CASE("matmul: transposed views go to BLAS without touching the inputs") {
  Tensor base_a = r({7, 5}, 1, DType::Float64), base_b = r({3, 7}, 2, DType::Float64);
  const std::vector<double> va = base_a.to_vector(), vb = base_b.to_vector();
  Tensor a = base_a.t(), b = base_b.t();
  CHECK(matmul_diff(a, b) == "");
  CHECK(base_a.to_vector() == va);
  CHECK(base_b.to_vector() == vb);
  CHECK(!a.is_contiguous());
  CHECK(matmul(a, b).is_contiguous());
}

TEST_CASE("matmul: batched with broadcast batch dims, and the folded 3-d @ 2-d path") {
  uint64_t seed = 100;
  for (DType dt : kDTypes) {
    CAPTURE(dtype_name(dt));
    const std::vector<std::pair<Tensor, Tensor>> cases = {
        {r({2, 1, 5, 7}, seed, dt), r({3, 7, 4}, seed + 1, dt)},
        {r({4, 5, 7}, seed + 2, dt), r({4, 7, 3}, seed + 3, dt)},
        {r({5, 7}, seed + 4, dt), r({4, 7, 3}, seed + 5, dt)},
        {r({1, 5, 7}, seed + 6, dt), r({2, 3, 7, 4}, seed + 7, dt)},
        {r({4, 7, 5}, seed + 8, dt).transpose(1, 2), r({4, 3, 7}, seed + 9, dt).transpose(1, 2)},
        {r({5, 4, 7}, seed + 10, dt).permute({1, 0, 2}), r({7, 3}, seed + 11, dt)},
        {r({1, 5, 7}, seed + 12, dt).expand({3, 5, 7}), r({7, 2}, seed + 13, dt)},
        // Folded: a contiguous 3-d or 4-d a times a shared 2-d b (plain, transposed, strided).
        {r({4, 5, 7}, seed + 14, dt), r({7, 3}, seed + 15, dt)},
        {r({2, 3, 5, 7}, seed + 16, dt), r({7, 3}, seed + 17, dt)},
        {r({4, 5, 7}, seed + 18, dt), r({3, 7}, seed + 19, dt).t()},
        {r({4, 5, 7}, seed + 20, dt), r({7, 6}, seed + 21, dt).narrow(1, 1, 3)},
        {r({6, 5, 7}, seed + 22, dt).narrow(0, 1, 4), r({7, 3}, seed + 23, dt)},
        {r({4, 1, 7}, seed + 24, dt), r({7, 3}, seed + 25, dt)},
    };
    seed += 30;
    for (size_t i = 0; i < cases.size(); ++i) {
      CAPTURE(i);
      CAPTURE(index_str(cases[i].first.shape()));
      CAPTURE(index_str(cases[i].second.shape()));
      CHECK(matmul_diff(cases[i].first, cases[i].second) == "");
    }
  }
  Tensor a = r({4, 5, 7}, 1, DType::Float32), b = r({7, 3}, 2, DType::Float32);
  CHECK(matmul(a, b).shape() == Shape{4, 5, 3});
  CHECK(matmul(r({2, 1, 5, 7}, 3, DType::Float32), r({3, 7, 4}, 4, DType::Float32)).shape() ==
        Shape{2, 3, 5, 4});
}

TEST_CASE("matmul: 1-d promotions (vec@mat, mat@vec, vec@vec -> 0-d, batched)") {
  uint64_t seed = 200;
  for (DType dt : kDTypes) {
    CAPTURE(dtype_name(dt));
    Tensor v7 = r({7}, seed++, dt), w7 = r({14}, seed++, dt).slice(0, 1, 14, 2);
    CHECK(matmul(v7, r({7, 3}, seed, dt)).shape() == Shape{3});
    CHECK(matmul(r({5, 7}, seed, dt), v7).shape() == Shape{5});
    CHECK(matmul(v7, w7).shape() == Shape{});
    CHECK(matmul_diff(v7, r({7, 3}, seed++, dt)) == "");
    CHECK(matmul_diff(w7, r({3, 7}, seed++, dt).t()) == "");
    CHECK(matmul_diff(r({5, 7}, seed++, dt), v7) == "");
    CHECK(matmul_diff(r({7, 5}, seed++, dt).t(), w7) == "");
    CHECK(matmul_diff(v7, w7) == "");
    CHECK(matmul_diff(w7, v7) == "");
    CHECK(matmul_diff(r({2, 5, 7}, seed++, dt), v7) == "");  // folded, column on the right
    CHECK(matmul_diff(r({2, 7, 5}, seed++, dt).transpose(1, 2), w7) == "");
    CHECK(matmul_diff(v7, r({2, 7, 3}, seed++, dt)) == "");
    CHECK(matmul_diff(w7, r({2, 3, 3, 7}, seed++, dt).transpose(-1, -2)) == "");
    double dot = 0;
    for (int64_t k = 0; k < 7; ++k) dot += v7.get({k}) * w7.get({k});
    CHECK(is_close(matmul(v7, w7).item(), dot, rtol_mm(dt), atol_mm(dt)));
  }
}

TEST_CASE("matmul: empty dims give zeros or empty results") {
  for (DType dt : kDTypes) {
    CAPTURE(dtype_name(dt));
    Tensor z = matmul(zeros({3, 0}, dt), zeros({0, 4}, dt));
    CHECK(z.shape() == Shape{3, 4});
    CHECK(z.to_vector() == std::vector<double>(12, 0.0));
    CHECK(matmul(zeros({0, 5}, dt), r({5, 4}, 1, dt)).shape() == Shape{0, 4});
    CHECK(matmul(r({3, 5}, 2, dt), zeros({5, 0}, dt)).shape() == Shape{3, 0});
  }
}

TEST_CASE("matmul: errors name both operands") {
  Tensor a = r({5, 7}, 1, DType::Float32);
  std::string msg = error_of([&] { matmul(a, r({6, 3}, 2, DType::Float32)); });
  CHECK(contains(msg, "matmul"));
  CHECK(contains(msg, "[5, 7]"));
  CHECK(contains(msg, "[6, 3]"));
  CHECK(contains(msg, "7 vs 6"));
  msg = error_of([&] { matmul(r({7}, 1, DType::Float32), r({6}, 2, DType::Float32)); });
  CHECK(contains(msg, "[7]"));
  CHECK(contains(msg, "[6]"));
  msg = error_of([&] { matmul(r({2, 5, 7}, 1, DType::Float32), r({3, 7, 4}, 2, DType::Float32)); });
  CHECK(contains(msg, "[2]"));
  CHECK(contains(msg, "[3]"));
  CHECK(contains(error_of([&] { matmul(scalar_tensor(1.0), a); }), "matmul"));
  msg = error_of([&] { matmul(a, r({7, 3}, 2, DType::Float64)); });
  CHECK(contains(msg, "float32"));
  CHECK(contains(msg, "float64"));
}

TEST_CASE("gemm: alpha, beta and both transpose flags in every dtype; row-strided c") {
  uint64_t seed = 300;
  const int64_t M = 5, K = 7, N = 4;
  for (DType dt : kDTypes) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        // Integer alpha and beta for int64, whose results are exact.
        const double f = dt == DType::Int64 ? 2 : 1;
        for (auto [alpha, beta] :
             {std::pair{1.5 * f, -0.5 * f}, {1.0, 0.0}, {-2.0, 1.0}, {0.0, 3.0}}) {
          CAPTURE(dtype_name(dt));
          CAPTURE(ta);
          CAPTURE(tb);
          CAPTURE(alpha);
          CAPTURE(beta);
          Tensor a = ta ? r({K, M}, seed++, dt) : r({M, K}, seed++, dt);
          Tensor b = tb ? r({N, K}, seed++, dt) : r({K, N}, seed++, dt);
          // c is a row-strided window into a wider buffer whose other columns must not change.
          Tensor buf0 = r({M, N + 3}, seed++, dt);
          Tensor buf = buf0.clone();
          Tensor c = buf.narrow(1, 2, N);
          gemm(ta, tb, alpha, a, b, beta, c);
          CHECK(ref_diff(buf, buf0.shape(),
                         [&](const Index& i) {
                           if (i[1] < 2 || i[1] >= 2 + N) return buf0.get(i);
                           const int64_t m = i[0], n = i[1] - 2;
                           double s = 0;
                           for (int64_t k = 0; k < K; ++k)
                             s += (ta ? a.get({k, m}) : a.get({m, k})) *
                                  (tb ? b.get({n, k}) : b.get({k, n}));
                           return alpha * s + beta * buf0.get(i);
                         },
                         rtol_mm(dt), atol_mm(dt)) == "");
          // The transpose flags on transposed views of the same storage.
          Tensor c2 = buf0.narrow(1, 2, N).clone();
          gemm(!ta, !tb, alpha, a.t(), b.t(), beta, c2);
          CHECK(ref_diff(c2, c, rtol_mm(dt), atol_mm(dt)) == "");
        }
      }
    }
  }
}

TEST_CASE("gemm: beta = 0 ignores NaN in c; errors for bad shapes, dtypes and a column-major c") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor a = r({3, 4}, 1, dt), b = r({4, 2}, 2, dt);
    Tensor c = full({3, 2}, std::numeric_limits<double>::quiet_NaN(), dt);
    gemm(false, false, 1.0, a, b, 0.0, c);
    CHECK(matmul_diff(a, b) == "");
    CHECK(ref_diff(c, matmul(a, b), rtol_mm(dt), atol_mm(dt)) == "");
  }
  Tensor a = r({3, 4}, 1, DType::Float32), b = r({4, 2}, 2, DType::Float32);
  std::string msg = error_of([&] { gemm(false, false, 1, a, b, 0, zeros({3, 3})); });
  CHECK(contains(msg, "gemm"));
  CHECK(contains(msg, "[3, 3]"));
  msg = error_of([&] { gemm(true, false, 1, a, b, 0, zeros({3, 2})); });
  CHECK(contains(msg, "[4, 3]"));
  msg = error_of([&] { gemm(false, false, 1, a, b.to(DType::Float64), 0, zeros({3, 2})); });
  CHECK(contains(msg, "float64"));
  CHECK(contains(error_of([&] { gemm(false, false, 1, a, b, 0, zeros({2, 3}).t()); }),
                 "row-major"));
  CHECK(contains(error_of([&] { gemm(false, false, 1, a.unsqueeze(0), b, 0, zeros({3, 2})); }),
                 "2-d"));
}

TEST_CASE("concat: every dim, every dtype, strided inputs of different sizes") {
  uint64_t seed = 400;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64, DType::Bool}) {
    for (int64_t dim : {0, 1, 2, -1, -2}) {
      CAPTURE(dtype_name(dt));
      CAPTURE(dim);
      const int d = static_cast<int>(dim < 0 ? dim + 3 : dim);
      auto piece = [&](int64_t size, int layout) {
        Shape s = {2, 3, 4};
        s[d] = size;
        Tensor t;
        if (layout == 0) t = r(s, seed++, DType::Float64);
        if (layout == 1) t = r({s[2], s[1], s[0]}, seed++, DType::Float64).permute({2, 1, 0});
        if (layout == 2)
          t = r({s[0], s[1], 2 * s[2]}, seed++, DType::Float64).slice(2, 0, 2 * s[2], 2);
        if (dt == DType::Bool) return compare(CompareOp::Gt, t, scalar_tensor(0.0, DType::Float64));
        return t.to(dt);
      };
      std::vector<Tensor> xs = {piece(1, 0), piece(2, 1), piece(0, 0), piece(3, 2)};
      Tensor out = concat(xs, dim);
      Shape want = {2, 3, 4};
      want[d] = 6;
      CHECK(out.dtype() == dt);
      CHECK(out.is_contiguous());
      CHECK(ref_diff(out, want, [&](const Index& i) { return concat_ref(xs, d, i); }, 0, 0) == "");
      CHECK(concat({xs[3]}, dim).to_vector() == xs[3].to_vector());
    }
  }
}

TEST_CASE("stack: every position of the new dim, strided inputs") {
  uint64_t seed = 500;
  for (DType dt : kDTypes) {
    std::vector<Tensor> xs = {r({2, 3}, seed, dt), r({3, 2}, seed + 1, dt).t(),
                              r({2, 6}, seed + 2, dt).slice(1, 1, 6, 2),
                              r({1, 3}, seed + 3, dt).expand({2, 3})};
    seed += 10;
    for (int64_t dim : {0, 1, 2, -1, -3}) {
      CAPTURE(dtype_name(dt));
      CAPTURE(dim);
      const int d = static_cast<int>(dim < 0 ? dim + 3 : dim);
      Tensor out = stack(xs, dim);
      Shape want = {2, 3};
      want.insert(want.begin() + d, 4);
      CHECK(ref_diff(out, want,
                     [&](const Index& i) {
                       Index j = i;
                       j.erase(j.begin() + d);
                       return xs[i[d]].get(j);
                     },
                     0, 0) == "");
    }
  }
  std::string msg = error_of([] { stack({zeros({2, 3}), zeros({3, 2})}, 0); });
  CHECK(contains(msg, "stack"));
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "[3, 2]"));
  msg = error_of([] { stack({zeros({2, 3}), zeros({2, 3}, DType::Float64)}, 1); });
  CHECK(contains(msg, "float32"));
  CHECK(contains(msg, "float64"));
  CHECK(contains(error_of([] { stack({zeros({2, 3})}, 3); }), "out of range"));
  CHECK(contains(error_of([] { stack({}, 0); }), "no tensors"));
}

TEST_CASE("concat: errors for mismatched shapes, ranks and dtypes") {
  Tensor a = r({2, 3}, 1, DType::Float32);
  std::string msg = error_of([&] { concat({a, r({2, 4}, 2, DType::Float32)}, 0); });
  CHECK(contains(msg, "concat"));
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "[2, 4]"));
  CHECK(concat({a, r({2, 4}, 2, DType::Float32)}, 1).shape() == Shape{2, 7});
  msg = error_of([&] { concat({a, a.to(DType::Float64)}, 0); });
  CHECK(contains(msg, "float32"));
  CHECK(contains(msg, "float64"));
  msg = error_of([&] { concat({a, a.to(DType::Int64)}, 1); });
  CHECK(contains(msg, "int64"));
  msg = error_of([&] { concat({a, r({2, 3, 1}, 3, DType::Float32)}, 0); });
  CHECK(contains(msg, "[2, 3, 1]"));
  CHECK(contains(error_of([] { concat({}, 0); }), "no tensors"));
  CHECK(contains(error_of([] { concat({scalar_tensor(1), scalar_tensor(2)}, 0); }), "0-d"));
  Tensor st = stack({scalar_tensor(1), scalar_tensor(2)}, 0);
  CHECK(st.to_vector() == std::vector<double>{1, 2});
  CHECK(contains(error_of([&] { concat({a, a}, 2); }), "out of range"));
}

TEST_CASE("split: views of consecutive pieces that share storage with the input") {
  for (DType dt : kDTypes) {
    CAPTURE(dtype_name(dt));
    Tensor x = r({4, 6, 5}, 600, dt);
    const std::vector<double> before = x.to_vector();
    for (int64_t dim : {1, -2}) {
      std::vector<Tensor> ps = split(x, {1, 3, 0, 2}, dim);
      REQUIRE(ps.size() == 4);
      int64_t off = 0;
      for (const Tensor& p : ps) {
        CHECK(p.shares_storage(x));
        CHECK(p.shape() == Shape{4, p.shape()[1], 5});
        CHECK(ref_diff(
                  p, p.shape(), [&](const Index& i) { return x.get({i[0], i[1] + off, i[2]}); },
                  0, 0) == "");
        off += p.shape()[1];
      }
      CHECK(off == 6);
      CHECK(concat(ps, 1).to_vector() == before);
    }
    // Writing through a piece writes into x.
    std::vector<Tensor> ps = split(x, {2, 2}, 0);
    fill_(ps[1], 9);
    CHECK(x.get({3, 5, 4}) == 9);
    CHECK(x.get({2, 0, 0}) == 9);
    CHECK(x.get({1, 5, 4}) == before[1 * 30 + 5 * 5 + 4]);
    // A strided input: pieces keep its strides.
    Tensor xt = r({5, 6}, 601, dt).t();
    std::vector<Tensor> qs = split(xt, {4, 1}, 1);
    CHECK(qs[0].strides() == xt.strides());
    CHECK(qs[1].get({2, 0}) == xt.get({2, 4}));
  }
  Tensor x = zeros({4, 6});
  std::string msg = error_of([&] { split(x, {2, 3}, 1); });
  CHECK(contains(msg, "split"));
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "6"));
  CHECK(contains(error_of([&] { split(x, {7, -1}, 1); }), "negative"));
  CHECK(contains(error_of([&] { split(x, {4}, 2); }), "out of range"));
  CHECK(contains(error_of([&] { split(scalar_tensor(1), {1}, 0); }), "0-d"));
}

TEST_CASE("unnarrow: zeros with x placed along dim, the adjoint of narrow") {
  uint64_t seed = 700;
  for (DType dt : kDTypes) {
    CAPTURE(dtype_name(dt));
    Tensor x = r({2, 3}, seed++, dt);
    Tensor out = unnarrow(x, {5, 3}, 0, 2);
    CHECK(ref_diff(out, {5, 3},
                   [&](const Index& i) {
                     return i[0] >= 2 && i[0] < 4 ? x.get({i[0] - 2, i[1]}) : 0;
                   },
                   0, 0) == "");
    Tensor xt = r({4, 2}, seed++, dt).t();  // [2, 4], strided
    Tensor out2 = unnarrow(xt, {2, 7}, -1, 3);
    CHECK(ref_diff(out2, {2, 7},
                   [&](const Index& i) { return i[1] >= 3 ? xt.get({i[0], i[1] - 3}) : 0; }, 0,
                   0) == "");
    // narrow(unnarrow(x)) == x, and <unnarrow(x), y> == <x, narrow(y)>.
    Tensor y = r({5, 3}, seed++, dt);
    CHECK(unnarrow(x, {5, 3}, 0, 1).narrow(0, 1, 2).to_vector() == x.to_vector());
    double lhs = 0, rhs = 0;
    Tensor u = unnarrow(x, {5, 3}, 0, 3), yn = y.narrow(0, 3, 2);
    for_each_index({5, 3}, [&](const Index& i) { lhs += u.get(i) * y.get(i); });
    for_each_index({2, 3}, [&](const Index& i) { rhs += x.get(i) * yn.get(i); });
    CHECK(is_close(lhs, rhs, 1e-6, 1e-6));
  }
  Tensor x = r({2, 3}, 1, DType::Float32);
  CHECK(contains(error_of([&] { unnarrow(x, {5, 3}, 0, 4); }), "out of range"));
  std::string msg = error_of([&] { unnarrow(x, {5, 4}, 0, 1); });
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "[5, 4]"));
  // Broadcastable is not enough: x must match `shape` off `dim`, and have its rank.
  msg = error_of([&] { unnarrow(r({2, 1}, 2, DType::Float32), {5, 3}, 0, 1); });
  CHECK(contains(msg, "unnarrow"));
  CHECK(contains(msg, "[2, 1]"));
  CHECK(contains(msg, "[5, 3]"));
  CHECK(contains(error_of([&] { unnarrow(r({3}, 2, DType::Float32), {5, 3}, 0, 1); }),
                 "unnarrow"));
  CHECK(contains(error_of([&] { unnarrow(x, {2, 3, 5}, 2, 1); }), "unnarrow"));
  CHECK(contains(error_of([&] { unnarrow(scalar_tensor(1), {}, 0, 0); }), "unnarrow"));
}

}  // TEST_SUITE
