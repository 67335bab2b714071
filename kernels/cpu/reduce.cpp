// kernels/cpu/reduce.cpp — reductions on the CPU. The reduced dims are moved innermost (one
// contiguous row per output element), except when they are the leading dims of a contiguous
// tensor, where whole rows are accumulated column-wise (the bias/BN-style sum over the batch).
// Each output element is summed in one fixed order, so results do not depend on thread count.
#include "kernels/reduce_rows.h"
#include "kernels/cpu/reduce.h"

#include <cmath>
#include <limits>

#include "kernels/cpu/dispatch.h"

namespace dfx::kernels::cpu {
namespace {

}  // namespace

void reduce(ReduceOp op, const Tensor& x, const std::vector<int>& dims, const Tensor& out) {
  dispatch_numeric(x.dtype(), "reduce", [&](auto z) {
    using T = decltype(z);
    using A = typename acc<T>::type;
    T* po = out.data<T>();
    int64_t M, R;
    if ((op == ReduceOp::Sum || op == ReduceOp::Mean) && leading_dims(x, dims)) {
      R = 1;
      for (int d : dims) R *= x.shape()[d];
      M = R ? x.numel() / R : 0;
      const T* px = static_cast<const T*>(x.raw_data());
      constexpr int64_t kBlock = 256;
#pragma omp parallel for schedule(static) if (M * R >= 32768 && M > kBlock)
      for (int64_t m0 = 0; m0 < M; m0 += kBlock) {
        const int64_t mb = std::min(kBlock, M - m0);
        A buf[kBlock] = {};
        for (int64_t r = 0; r < R; ++r) {
          const T* row = px + r * M + m0;
#pragma omp simd
          for (int64_t i = 0; i < mb; ++i) buf[i] += static_cast<A>(row[i]);
        }
        // Divide (as the row path does) rather than multiply by 1/R, and keep int64 sums out of
        // double: n * (1.0 / n) can round below 1, which truncated an int64 mean to 0.
        for (int64_t i = 0; i < mb; ++i) {
          if (op == ReduceOp::Mean)
            po[m0 + i] = static_cast<T>(static_cast<double>(buf[i]) / static_cast<double>(R));
          else
            po[m0 + i] = static_cast<T>(buf[i]);
        }
      }
      if (R == 0)
        for (int64_t i = 0; i < out.numel(); ++i)
          po[i] = op == ReduceOp::Mean ? std::numeric_limits<T>::quiet_NaN() : T(0);
      return;
    }
    Tensor rows = rows_view(x, dims, M, R);
    DFX_CHECK(R > 0 || op == ReduceOp::Sum || op == ReduceOp::Mean,
              "reduce: max/min over an empty dimension of ", x.describe());
    const T* px = rows.data<T>();
#pragma omp parallel for schedule(static) if (M * R >= 32768 && M > 1)
    for (int64_t m = 0; m < M; ++m) {
      const T* row = px + m * R;
      switch (op) {
        case ReduceOp::Sum:
        case ReduceOp::Mean: {
          A s = 0;
#pragma omp simd reduction(+ : s)
          for (int64_t r = 0; r < R; ++r) s += static_cast<A>(row[r]);
          if (op == ReduceOp::Mean) {
            po[m] = R ? static_cast<T>(static_cast<double>(s) / static_cast<double>(R))
                      : std::numeric_limits<T>::quiet_NaN();
          } else {
            po[m] = static_cast<T>(s);
          }
          break;
        }
        case ReduceOp::Max: {
          T v = row[0];
          for (int64_t r = 1; r < R; ++r) v = (row[r] > v || row[r] != row[r]) ? row[r] : v;
          po[m] = v;
          break;
        }
        case ReduceOp::Min: {
          T v = row[0];
          for (int64_t r = 1; r < R; ++r) v = (row[r] < v || row[r] != row[r]) ? row[r] : v;
          po[m] = v;
          break;
        }
      }
    }
  });
}

void var(const Tensor& x, const std::vector<int>& dims, int64_t correction, const Tensor& out) {
  dispatch_float(x.dtype(), "var", [&](auto z) {
    using T = decltype(z);
    int64_t M, R;
    Tensor rows = rows_view(x, dims, M, R);
    const T* px = rows.data<T>();
    T* po = out.data<T>();
    const double denom = static_cast<double>(R - correction);
#pragma omp parallel for schedule(static) if (M * R >= 32768 && M > 1)
    for (int64_t m = 0; m < M; ++m) {
      const T* row = px + m * R;
      double mean = 0;
      for (int64_t r = 0; r < R; ++r) mean += row[r];
      mean /= static_cast<double>(R);
      double ss = 0;
      for (int64_t r = 0; r < R; ++r) ss += (row[r] - mean) * (row[r] - mean);
      po[m] = static_cast<T>(denom > 0 ? ss / denom : std::numeric_limits<double>::quiet_NaN());
    }
  });
}

void argmax(const Tensor& x, int dim, const Tensor& out) {
  dispatch_numeric(x.dtype(), "argmax", [&](auto z) {
    using T = decltype(z);
    int64_t M, R;
    Tensor rows = rows_view(x, {dim}, M, R);
    DFX_CHECK(R > 0, "argmax: empty dim ", dim, " of ", x.describe());
    const T* px = rows.data<T>();
    int64_t* po = out.data<int64_t>();
#pragma omp parallel for schedule(static) if (M * R >= 32768 && M > 1)
    for (int64_t m = 0; m < M; ++m) {
      const T* row = px + m * R;
      int64_t best = 0;
      for (int64_t r = 1; r < R; ++r)
        if (row[r] > row[best]) best = r;
      po[m] = best;
    }
  });
}

}  // namespace dfx::kernels::cpu
