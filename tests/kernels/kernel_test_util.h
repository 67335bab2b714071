// tests/kernels/kernel_test_util.h — helpers shared by the kernel suites: row-major index walks,
// random inputs in several layouts, and element-by-element comparison against reference values.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "core/copy.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace dfx::ktest {

using Index = std::vector<int64_t>;

// Calls f(index) for every index of `shape` in row-major order (once, with {}, for a 0-d shape).
inline void for_each_index(const Shape& shape, const std::function<void(const Index&)>& f) {
  if (shape_numel(shape) == 0) return;
  Index idx(shape.size(), 0);
  while (true) {
    f(idx);
    int d = static_cast<int>(shape.size()) - 1;
    for (; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

// The index of `out` that broadcast element `idx` (of a result of rank idx.size()) reads.
inline Index broadcast_index(const Index& idx, const Shape& shape) {
  Index r(shape.size());
  const size_t lead = idx.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i) r[i] = shape[i] == 1 ? 0 : idx[lead + i];
  return r;
}

inline bool is_close(double got, double want, double rtol, double atol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

inline std::string index_str(const Index& idx) {
  std::ostringstream os;
  os << idx;
  return os.str();
}

// "" when got has `shape` and every element is close to ref(index); else what differs first and
// how many elements differ.
inline std::string ref_diff(const Tensor& got, const Shape& shape,
                            const std::function<double(const Index&)>& ref, double rtol,
                            double atol) {
  if (got.shape() != shape) {
    std::ostringstream os;
    os << "shape " << got.shape() << " != expected " << shape;
    return os.str();
  }
  int64_t bad = 0;
  std::string first;
  for_each_index(shape, [&](const Index& i) {
    const double g = got.get(i), w = ref(i);
    if (is_close(g, w, rtol, atol)) return;
    if (bad++ == 0) {
      std::ostringstream os;
      os.precision(17);
      os << "at " << i << ": got " << g << ", expected " << w;
      first = os.str();
    }
  });
  if (bad == 0) return "";
  return first + " (" + std::to_string(bad) + " of " + std::to_string(shape_numel(shape)) +
         " elements differ)";
}

// Same, against another tensor of the same shape.
inline std::string ref_diff(const Tensor& got, const Tensor& want, double rtol, double atol) {
  return ref_diff(
      got, want.shape(), [&](const Index& i) { return want.get(i); }, rtol, atol);
}

inline double rtol_for(DType t) { return t == DType::Float32 ? 2e-6 : 1e-13; }

// Random values uniform in [lo, hi) in `dtype`; for int64, integers in [lo, hi).
inline Tensor rand_tensor(const Shape& shape, double lo, double hi, uint64_t seed,
                          DType dtype = DType::Float32) {
  if (dtype == DType::Float32 || dtype == DType::Float64)
    return uniform(shape, lo, hi, seed, 0, 0, dtype);
  Tensor u = uniform(shape, lo, hi, seed, 0, 0, DType::Float64);
  Tensor out = Tensor::empty(shape, dtype);
  for_each_index(shape, [&](const Index& i) { out.set(i, std::floor(u.get(i))); });
  return out;
}

// Integer values in [lo, hi) stored in `dtype` (float or int64): inputs with ties and equalities.
inline Tensor random_ints(const Shape& shape, int64_t lo, int64_t hi, uint64_t seed,
                          DType dtype = DType::Float32) {
  Tensor u =
      uniform(shape, static_cast<double>(lo), static_cast<double>(hi), seed, 1, 0, DType::Float64);
  Tensor out = Tensor::empty(shape, dtype);
  for_each_index(shape, [&](const Index& i) { out.set(i, std::floor(u.get(i))); });
  return out;
}

struct Layout {
  std::string name;
  Tensor t;
};

// The same kind of random tensor of logical `shape` (rank >= 2) in several layouts: contiguous,
// transposed (last two dims swapped in storage), sliced with step 2 on the last dim, a permuted
// 3-d-or-more view, and expanded (stride 0) along dim 0. With `ints`, integer values (ties).
inline std::vector<Layout> layouts(const Shape& shape, double lo, double hi, uint64_t seed,
                                   DType dtype = DType::Float32, bool ints = false) {
  auto rand_tensor = [&](const Shape& s, double l, double h, uint64_t sd, DType dt) {
    if (ints) return random_ints(s, static_cast<int64_t>(l), static_cast<int64_t>(h), sd, dt);
    return ktest::rand_tensor(s, l, h, sd, dt);
  };
  std::vector<Layout> out;
  const int n = static_cast<int>(shape.size());
  out.push_back({"contiguous", rand_tensor(shape, lo, hi, seed, dtype)});
  Shape ts = shape;
  std::swap(ts[n - 1], ts[n - 2]);
  out.push_back({"transposed", rand_tensor(ts, lo, hi, seed + 1, dtype).transpose(n - 1, n - 2)});
  Shape ws = shape;
  ws[n - 1] = 2 * shape[n - 1] + 1;
  out.push_back(
      {"step-sliced", rand_tensor(ws, lo, hi, seed + 2, dtype).slice(n - 1, 1, ws[n - 1], 2)});
  Shape rs(shape.rbegin(), shape.rend());
  std::vector<int> perm;
  for (int d = n - 1; d >= 0; --d) perm.push_back(d);
  out.push_back({"reversed-dims", rand_tensor(rs, lo, hi, seed + 3, dtype).permute(perm)});
  Shape es = shape;
  es[0] = 1;
  out.push_back({"expanded", rand_tensor(es, lo, hi, seed + 4, dtype).expand(shape)});
  return out;
}

// The message of the dfx::Error that f throws, or "<no error>".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace dfx::ktest
