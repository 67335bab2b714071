// tests/core/test_tensor.cpp — Tensor views, copies, factories, printing and copy_ between
// layouts. Inputs are ranges (never all zeros) so a wrong stride or offset changes a checked value.
#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "core/copy.h"
#include "core/tensor.h"

using namespace dfx;

namespace {

// 0, 1, ..., n-1 as float32 in `shape` (contiguous).
Tensor iota(const Shape& shape, DType dtype = DType::Float32) {
  return arange(0, static_cast<double>(shape_numel(shape)), 1, dtype).view(shape);
}

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_SUITE("core") {

TEST_CASE("core tensor: view and reshape share storage and index row-major") {
  Tensor a = iota({2, 3, 4});
  CHECK(a.strides() == Shape{12, 4, 1});
  CHECK(a.get({1, 2, 3}) == 23);
  Tensor v = a.view({4, 6});
  CHECK(v.shares_storage(a));
  CHECK(v.get({2, 5}) == 17);
  Tensor w = a.view({-1, 8});
  CHECK(w.shape() == Shape{3, 8});
  CHECK(w.get({2, 1}) == 17);
  Tensor r = a.reshape({6, 4});
  CHECK(r.shares_storage(a));
  CHECK(r.get({5, 0}) == 20);
  CHECK_THROWS_AS(a.view({5, 5}), Error);
  CHECK_THROWS_AS(a.view({-1, -1}), Error);
}

TEST_CASE("core tensor: permute and transpose swap strides, not data") {
  Tensor a = iota({2, 3, 4});
  Tensor p = a.permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.strides() == Shape{1, 12, 4});
  CHECK(p.shares_storage(a));
  CHECK(p.get({3, 1, 2}) == 23);
  CHECK(p.get({1, 0, 2}) == 9);
  CHECK_FALSE(p.is_contiguous());
  Tensor t = a.transpose(0, 2);
  CHECK(t.shape() == Shape{4, 3, 2});
  CHECK(t.get({1, 2, 0}) == 9);
  CHECK(iota({2, 3}).t().get({2, 1}) == 5);
  CHECK_THROWS_AS(a.permute({0, 0, 1}), Error);
  CHECK_THROWS_AS(a.permute({0, 1}), Error);
}

TEST_CASE("core tensor: narrow, slice with step and select move the offset") {
  Tensor a = iota({2, 3, 4});
  Tensor n = a.narrow(2, 1, 2);
  CHECK(n.shape() == Shape{2, 3, 2});
  CHECK(n.offset() == 1);
  CHECK(n.get({1, 0, 1}) == 14);
  CHECK_THROWS_AS(a.narrow(2, 3, 2), Error);

  Tensor x = arange(0, 10);
  CHECK(x.slice(0, 1, 9, 3).to_vector() == std::vector<double>{1, 4, 7});
  CHECK(x.slice(0, -3, 10).to_vector() == std::vector<double>{7, 8, 9});
  CHECK(x.slice(0, 2, 100, 4).to_vector() == std::vector<double>{2, 6});
  Tensor s = a.slice(1, 0, 3, 2);
  CHECK(s.shape() == Shape{2, 2, 4});
  CHECK(s.strides() == Shape{12, 8, 1});
  CHECK(s.get({1, 1, 2}) == 22);
  CHECK_THROWS_AS(x.slice(0, 0, 5, 0), Error);

  Tensor sel = a.select(1, 2);
  CHECK(sel.shape() == Shape{2, 4});
  CHECK(sel.get({1, 3}) == 23);
  CHECK(a.select(0, -1).get({0, 0}) == 12);
  CHECK_THROWS_AS(a.select(1, 3), Error);
}

TEST_CASE("core tensor: expand broadcasts with stride 0") {
  Tensor c = from_vector<float>({1, 2, 3}, {3, 1});
  Tensor e = c.expand({3, 4});
  CHECK(e.strides() == Shape{1, 0});
  CHECK(e.shares_storage(c));
  CHECK(e.get({2, 3}) == 3);
  CHECK(e.get({1, 0}) == 2);
  Tensor e3 = c.expand({2, 3, 4});
  CHECK(e3.strides() == Shape{0, 1, 0});
  CHECK(e3.get({1, 2, 1}) == 3);
  CHECK(c.expand({-1, 5}).shape() == Shape{3, 5});
  CHECK_THROWS_AS(c.expand({4, 4}), Error);
  CHECK_THROWS_AS(c.expand({4}), Error);
}

TEST_CASE("core tensor: squeeze and unsqueeze") {
  Tensor a = iota({1, 2, 1, 3});
  CHECK(a.squeeze().shape() == Shape{2, 3});
  CHECK(a.squeeze().get({1, 2}) == 5);
  CHECK(a.squeeze(0).shape() == Shape{2, 1, 3});
  CHECK(a.squeeze(1).shape() == Shape{1, 2, 1, 3});
  Tensor u = a.squeeze().unsqueeze(-1);
  CHECK(u.shape() == Shape{2, 3, 1});
  CHECK(u.get({1, 1, 0}) == 4);
  Tensor u0 = a.squeeze().unsqueeze(0);
  CHECK(u0.shape() == Shape{1, 2, 3});
  CHECK(u0.is_contiguous());
  CHECK(u0.get({0, 1, 0}) == 3);
  CHECK_THROWS_AS(a.squeeze(4), Error);
}

TEST_CASE("core tensor: contiguous copies only when needed; clone always copies") {
  Tensor a = iota({3, 4});
  CHECK(a.contiguous().shares_storage(a));
  Tensor t = a.t();
  Tensor tc = t.contiguous();
  CHECK_FALSE(tc.shares_storage(a));
  CHECK(tc.is_contiguous());
  CHECK(tc.strides() == Shape{3, 1});
  CHECK(tc.get({3, 2}) == 11);
  CHECK(tc.to_vector() == t.to_vector());
  Tensor c = a.clone();
  CHECK_FALSE(c.shares_storage(a));
  c.set({0, 1}, 42);
  CHECK(a.get({0, 1}) == 1);
  CHECK(c.get({0, 1}) == 42);
}

TEST_CASE("core tensor: view needs compatible strides; reshape copies instead") {
  Tensor a = iota({3, 4});
  Tensor t = a.t();
  std::string msg = error_of([&] { t.view({12}); });
  CHECK(contains(msg, "view"));
  CHECK(contains(msg, "[4, 3]"));
  Tensor r = t.reshape({12});
  CHECK_FALSE(r.shares_storage(a));
  CHECK(r.get({1}) == 4);
  CHECK(r.get({4}) == 5);
  // A narrowed view can still merge the dims that stayed contiguous.
  Tensor n = iota({2, 3, 4}).narrow(0, 1, 1);
  CHECK(n.view({3, 4}).get({2, 3}) == 23);
}

TEST_CASE("core tensor: a value set through a view is read through the base") {
  Tensor a = iota({2, 3, 4});
  Tensor p = a.permute({2, 0, 1});
  p.set({3, 1, 2}, -7);
  CHECK(a.get({1, 2, 3}) == -7);
  Tensor s = a.select(1, 1).slice(1, 1, 4, 2);  // a[:, 1, 1::2]
  s.set({0, 1}, 99);
  CHECK(a.get({0, 1, 3}) == 99);
  Tensor e = a.view({6, 4}).narrow(0, 2, 2);
  e.set({1, 0}, 55);
  CHECK(a.get({1, 0, 0}) == 55);
  CHECK(a.get({0, 2, 0}) == 8);
  CHECK(a.view({-1}).get({11}) == 11);
}

TEST_CASE("core tensor: to(DType) converts values") {
  Tensor d = from_vector<double>({1.7, -2.5, 0.0, 3.0}, {4});
  CHECK(d.to(DType::Int64).dtype() == DType::Int64);
  CHECK(d.to(DType::Int64).to_vector() == std::vector<double>{1, -2, 0, 3});
  CHECK(d.to(DType::Bool).to_vector() == std::vector<double>{1, 1, 0, 1});
  Tensor f = d.to(DType::Float32);
  CHECK(f.get({0}) == doctest::Approx(1.7).epsilon(1e-6));
  CHECK(f.get({0}) != 1.7);  // rounded to float
  CHECK(d.to(DType::Float64).shares_storage(d));
  Tensor i = from_vector<int64_t>({int64_t{1} << 40, -3}, {2});
  CHECK(i.to(DType::Float64).get({0}) == 1099511627776.0);
  CHECK(from_vector<bool>({true, false}, {2}, Device::cpu()).to(DType::Float32).to_vector() ==
        std::vector<double>{1, 0});
}

TEST_CASE("core tensor: arange, linspace, full and from_vector values") {
  CHECK(arange(0, 1, 0.25).to_vector() == std::vector<double>{0, 0.25, 0.5, 0.75});
  CHECK(arange(5, 0, -2).to_vector() == std::vector<double>{5, 3, 1});
  CHECK(arange(3, 3).numel() == 0);
  Tensor ai = arange(2, 5, 1, DType::Int64);
  CHECK(ai.dtype() == DType::Int64);
  CHECK(ai.to_vector() == std::vector<double>{2, 3, 4});
  CHECK(linspace(0, 1, 5).to_vector() == std::vector<double>{0, 0.25, 0.5, 0.75, 1});
  CHECK(linspace(-1, 2, 4, DType::Float64).to_vector() == std::vector<double>{-1, 0, 1, 2});
  CHECK(linspace(2, 3, 1).to_vector() == std::vector<double>{2});
  Tensor f = full({2, 2}, 3.5, DType::Float64);
  CHECK(f.to_vector() == std::vector<double>{3.5, 3.5, 3.5, 3.5});
  CHECK(full({3}, 2.9, DType::Int64).to_vector() == std::vector<double>{2, 2, 2});
  CHECK(ones({2}).to_vector() == std::vector<double>{1, 1});
  Tensor v = from_vector<int64_t>({4, -5, 6, 7, 8, 9}, {2, 3});
  CHECK(v.get({1, 0}) == 7);
  CHECK(v.at<int64_t>({0, 1}) == -5);
  CHECK(scalar_tensor(2.5).item() == 2.5);
  CHECK_THROWS_AS(from_vector<float>({1, 2, 3}, {2, 2}), Error);
  CHECK_THROWS_AS(arange(0, 1, 0), Error);
}

TEST_CASE("core tensor: printing shows values and dtype") {
  std::string s = from_vector<float>({1.5f, -2, 3}, {3}).str();
  CHECK(contains(s, "1.5"));
  CHECK(contains(s, "-2"));
  CHECK(contains(s, "float32[3]"));
  std::string b = from_vector<bool>({true, false}, {2}, Device::cpu()).str();
  CHECK(contains(b, "true, false"));
  CHECK(contains(b, "bool[2]"));
  std::string m = iota({2, 2}, DType::Int64).t().str();
  CHECK(contains(m, "[[0, 2]"));
  CHECK(contains(m, "[1, 3]]"));
  CHECK(contains(m, "int64[2, 2] on cpu"));
  std::string big = arange(0, 100, 1, DType::Int64).str();
  CHECK(contains(big, "..."));
  CHECK(contains(big, "99"));
  std::ostringstream os;
  os << scalar_tensor(4.25, DType::Float64);
  CHECK(contains(os.str(), "4.25"));
  CHECK(contains(os.str(), "float64[]"));
}

TEST_CASE("core tensor: up to 8 dims; 9 is an error") {
  Shape s8(8, 2);
  Tensor a = Tensor::empty(s8, DType::Float64);
  fill_(a, 1.5);
  std::vector<int64_t> last(8, 1);
  a.set(last, 7);
  CHECK(a.get(last) == 7);
  CHECK(a.view({-1}).get({255}) == 7);
  CHECK(a.permute({7, 6, 5, 4, 3, 2, 1, 0}).get(last) == 7);
  std::string msg = error_of([] { Tensor::empty(Shape(9, 1)); });
  CHECK(contains(msg, "at most 8"));
  CHECK_THROWS_AS(a.unsqueeze(0), Error);
  CHECK_THROWS_AS(zeros(Shape(9, 1)), Error);
}

TEST_CASE("core tensor: broadcast_shapes follows NumPy") {
  CHECK(broadcast_shapes({3, 1, 5}, {4, 5}) == Shape{3, 4, 5});
  CHECK(broadcast_shapes({}, {2, 3}) == Shape{2, 3});
  CHECK(broadcast_shapes({2, 1}, {1, 7}) == Shape{2, 7});
  CHECK(broadcast_shapes({0}, {1}) == Shape{0});
  CHECK(broadcast_shapes({1}, {0}) == Shape{0});
  std::string msg = error_of([] { broadcast_shapes({2, 3}, {3, 2}, "add"); });
  CHECK(contains(msg, "add"));
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "[3, 2]"));
  CHECK_THROWS_AS(broadcast_shapes({0}, {2}), Error);
  CHECK_THROWS_AS(broadcast_shapes({4, 3}, {4}), Error);
}

TEST_CASE("core copy_: transposed source into a contiguous destination") {
  Tensor src = iota({3, 4}).t();
  Tensor dst = Tensor::empty({4, 3});
  copy_(dst, src);
  CHECK(dst.to_vector() == std::vector<double>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  // Into a strided destination: every other column of a [4, 6].
  Tensor big = full({4, 6}, -1);
  copy_(big.slice(1, 0, 6, 2), src);
  CHECK(big.get({1, 2}) == 5);
  CHECK(big.get({3, 4}) == 11);
  CHECK(big.get({3, 5}) == -1);
}

TEST_CASE("core copy_: broadcasting [3, 1] into [3, 4]") {
  Tensor col = from_vector<double>({1, 2, 3}, {3, 1});
  Tensor dst = Tensor::empty({3, 4}, DType::Float64);
  copy_(dst, col);
  CHECK(dst.to_vector() == std::vector<double>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});
  Tensor row = from_vector<float>({5, 6, 7, 8}, {4});
  copy_(dst, row);
  CHECK(dst.get({2, 3}) == 8);
  CHECK(dst.get({1, 0}) == 5);
  CHECK_THROWS_AS(copy_(dst, from_vector<float>({1, 2}, {2})), Error);
  // A large broadcast exercises the threaded path.
  Tensor big = Tensor::empty({300, 400}, DType::Float64);
  copy_(big, arange(0, 300, 1, DType::Float64).view({300, 1}));
  CHECK(big.get({299, 399}) == 299);
  CHECK(big.get({123, 7}) == 123);
}

TEST_CASE("core copy_: dtype conversion float64 -> int64 and bool") {
  Tensor d = from_vector<double>({-1.9, 2.7, 1e10, 0.0}, {4});
  Tensor i = Tensor::empty({4}, DType::Int64);
  copy_(i, d);
  CHECK(i.data<int64_t>()[0] == -1);
  CHECK(i.data<int64_t>()[1] == 2);
  CHECK(i.data<int64_t>()[2] == 10000000000);
  Tensor b = Tensor::empty({4}, DType::Bool);
  copy_(b, from_vector<double>({0, -0.5, 2, 0}, {4}));
  CHECK(b.to_vector() == std::vector<double>{0, 1, 1, 0});
  Tensor back = Tensor::empty({2, 4}, DType::Float64);
  copy_(back, b);
  CHECK(back.to_vector() == std::vector<double>{0, 1, 1, 0, 0, 1, 1, 0});
  Tensor f = Tensor::empty({4}, DType::Float32);
  copy_(f, from_vector<int64_t>({-3, 0, 7, 16777217}, {4}));
  CHECK(f.to_vector() == std::vector<double>{-3, 0, 7, 16777216});
}

}  // TEST_SUITE
