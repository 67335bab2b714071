// core/strided_loop.h — the one n-d iteration engine behind every CPU elementwise kernel and copy.
// Operands are (pointer, strides in elements) over one common shape; stride 0 broadcasts.
// Adjacent dims that are contiguous for every operand are merged first, so most calls become one
// long inner loop; the outer rows are split across OpenMP threads. Results never depend on the
// thread count because every element is written by exactly one iteration.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace dfx::detail {

template <size_t K>
struct LoopPlan {
  std::vector<int64_t> shape;                   // merged shape, innermost last
  std::array<std::vector<int64_t>, K> strides;  // per operand, same length as shape
};

template <size_t K>
LoopPlan<K> make_loop_plan(const std::vector<int64_t>& shape,
                           const std::array<const std::vector<int64_t>*, K>& strides) {
  LoopPlan<K> p;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;  // size-1 dims never move the pointer
    bool merge = !p.shape.empty();
    if (merge) {
      for (size_t k = 0; k < K; ++k) {
        if (p.strides[k].back() != (*strides[k])[d] * shape[d]) merge = false;
      }
    }
    if (merge) {
      p.shape.back() *= shape[d];
      for (size_t k = 0; k < K; ++k) p.strides[k].back() = (*strides[k])[d];
    } else {
      p.shape.push_back(shape[d]);
      for (size_t k = 0; k < K; ++k) p.strides[k].push_back((*strides[k])[d]);
    }
  }
  if (p.shape.empty()) {
    p.shape.push_back(1);
    for (size_t k = 0; k < K; ++k) p.strides[k].push_back(0);
  }
  return p;
}

// Calls row(base_offsets, inner_strides, length) for every innermost row, rows spread over threads.
// Offsets and strides are in elements of each operand.
template <size_t K, class Row>
void for_each_row(const std::vector<int64_t>& shape,
                  const std::array<const std::vector<int64_t>*, K>& strides, Row&& row) {
  for (int64_t s : shape)
    if (s == 0) return;
  LoopPlan<K> p = make_loop_plan<K>(shape, strides);
  const int nd = static_cast<int>(p.shape.size());
  const int64_t len = p.shape[nd - 1];
  std::array<int64_t, K> inner;
  for (size_t k = 0; k < K; ++k) inner[k] = p.strides[k][nd - 1];
  int64_t rows = 1;
  for (int d = 0; d < nd - 1; ++d) rows *= p.shape[d];
  const bool parallel = rows > 1 && rows * len >= 32768;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t r = 0; r < rows; ++r) {
    std::array<int64_t, K> off{};
    int64_t rem = r;
    for (int d = nd - 2; d >= 0; --d) {
      int64_t i = rem % p.shape[d];
      rem /= p.shape[d];
      for (size_t k = 0; k < K; ++k) off[k] += i * p.strides[k][d];
    }
    row(off, inner, len);
  }
}

// Splits a single long row across threads too (rows == 1 is the common contiguous case).
template <size_t K, class Row>
void for_each_chunk(const std::vector<int64_t>& shape,
                    const std::array<const std::vector<int64_t>*, K>& strides, Row&& row) {
  for (int64_t s : shape)
    if (s == 0) return;
  LoopPlan<K> p = make_loop_plan<K>(shape, strides);
  if (p.shape.size() == 1) {
    const int64_t n = p.shape[0];
    constexpr int64_t kChunk = 16384;
    const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t c = 0; c < chunks; ++c) {
      std::array<int64_t, K> off, inner;
      for (size_t k = 0; k < K; ++k) {
        off[k] = c * kChunk * p.strides[k][0];
        inner[k] = p.strides[k][0];
      }
      row(off, inner, std::min(kChunk, n - c * kChunk));
    }
    return;
  }
  for_each_row<K>(shape, strides, row);
}

}  // namespace dfx::detail
