// kernels/cpu/elementwise.cpp — elementwise kernels on the CPU over core's strided loop: the
// contiguous inner rows vectorise, outer rows split across OpenMP threads.
#include "kernels/cpu/elementwise.h"

#include <atomic>
#include <algorithm>
#include <cmath>

#include "core/strided_loop.h"
#include "kernels/cpu/dispatch.h"

namespace dfx::kernels::cpu {
namespace {

template <class T, class F>
Tensor map1(const Tensor& x, DType out_dtype, F f) {
  Tensor out = Tensor::empty(x.shape(), out_dtype, x.device());
  const T* px = static_cast<const T*>(x.raw_data());
  auto run = [&](auto* po) {
    detail::for_each_chunk<2>(x.shape(), {&out.strides(), &x.strides()},
                              [&](auto off, auto in, int64_t n) {
                                auto* o = po + off[0];
                                const T* p = px + off[1];
                                if (in[0] == 1 && in[1] == 1) {
#pragma omp simd
                                  for (int64_t i = 0; i < n; ++i) o[i] = f(p[i]);
                                } else {
                                  for (int64_t i = 0; i < n; ++i) o[i * in[0]] = f(p[i * in[1]]);
                                }
                              });
  };
  switch (out_dtype) {
    case DType::Float32: run(out.data<float>()); break;
    case DType::Float64: run(out.data<double>()); break;
    case DType::Int64: run(out.data<int64_t>()); break;
    case DType::Bool: run(out.data<bool>()); break;
    default: DFX_FAIL("unary: unsupported output dtype ", dtype_name(out_dtype));
  }
  return out;
}

template <class T, class O, class F>
Tensor map2(const Tensor& a, const Tensor& b, DType out_dtype, const char* op, F f) {
  Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor ea = a.expand(shape), eb = b.expand(shape);
  Tensor out = Tensor::empty(shape, out_dtype, a.device());
  O* po = static_cast<O*>(out.raw_data());
  const T* pa = static_cast<const T*>(ea.raw_data());
  const T* pb = static_cast<const T*>(eb.raw_data());
  detail::for_each_chunk<3>(shape, {&out.strides(), &ea.strides(), &eb.strides()},
                            [&](auto off, auto in, int64_t n) {
                              O* o = po + off[0];
                              const T* x = pa + off[1];
                              const T* y = pb + off[2];
                              if (in[0] == 1 && in[1] == 1 && in[2] == 1) {
#pragma omp simd
                                for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
                              } else if (in[0] == 1 && in[1] == 1 && in[2] == 0) {
                                const T yv = y[0];
#pragma omp simd
                                for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
                              } else {
                                for (int64_t i = 0; i < n; ++i)
                                  o[i * in[0]] = f(x[i * in[1]], y[i * in[2]]);
                              }
                            });
  return out;
}

// Integer division by zero traps (SIGFPE) and would kill the embedding program: refuse it.
template <class T>
void check_no_zero_divisor(const Tensor& b, const char* op) {
  const T* pb = static_cast<const T*>(b.raw_data());
  std::atomic<bool> zero{false};
  detail::for_each_row<1>(b.shape(), {&b.strides()}, [&](auto off, auto in, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      if (pb[off[0] + i * in[0]] == T(0)) zero.store(true, std::memory_order_relaxed);
  });
  DFX_CHECK(!zero.load(), op, ": integer division by zero (divisor ", b.describe(), ")");
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  DFX_CHECK(a.dtype() == b.dtype(), op, ": operands differ in dtype: ", a.describe(), " and ",
            b.describe(), "; expected the same dtype");
}

}  // namespace

Tensor unary(UnaryOp op, const Tensor& x, double alpha) {
  const char* name = unary_name(op);
  Tensor out;
  if (x.dtype() == DType::Int64) {
    DFX_CHECK(op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Sign ||
                  op == UnaryOp::Square || op == UnaryOp::Relu,
              name, ": not defined for int64 (", x.describe(), "); expected a float tensor");
  }
  dispatch_numeric(x.dtype(), name, [&](auto z) {
    using T = decltype(z);
    const T a = static_cast<T>(alpha);
    switch (op) {
      case UnaryOp::Neg: out = map1<T>(x, x.dtype(), [](T v) { return T(-v); }); break;
      case UnaryOp::Abs: out = map1<T>(x, x.dtype(), [](T v) { return v < T(0) ? T(-v) : v; }); break;
      case UnaryOp::Sign:
        out = map1<T>(x, x.dtype(), [](T v) { return T((v > T(0)) - (v < T(0))); });
        break;
      case UnaryOp::Square: out = map1<T>(x, x.dtype(), [](T v) { return T(v * v); }); break;
      case UnaryOp::Relu: out = map1<T>(x, x.dtype(), [](T v) { return v > T(0) ? v : T(0); }); break;
      default:
        if constexpr (std::is_floating_point_v<T>) {
          switch (op) {
            case UnaryOp::Exp: out = map1<T>(x, x.dtype(), [](T v) { return std::exp(v); }); break;
            case UnaryOp::Log: out = map1<T>(x, x.dtype(), [](T v) { return std::log(v); }); break;
            case UnaryOp::Sqrt: out = map1<T>(x, x.dtype(), [](T v) { return std::sqrt(v); }); break;
            case UnaryOp::Rsqrt:
              out = map1<T>(x, x.dtype(), [](T v) { return T(1) / std::sqrt(v); });
              break;
            case UnaryOp::Tanh: out = map1<T>(x, x.dtype(), [](T v) { return std::tanh(v); }); break;
            case UnaryOp::Sigmoid:
              out = map1<T>(x, x.dtype(), [](T v) { return T(1) / (T(1) + std::exp(-v)); });
              break;
            case UnaryOp::Reciprocal: out = map1<T>(x, x.dtype(), [](T v) { return T(1) / v; }); break;
            case UnaryOp::LeakyRelu:
              // Branch-free so the loop vectorises (a branch mispredicts on mixed-sign data).
              out = map1<T>(x, x.dtype(), [a](T v) { return std::max(v, T(0)) + a * std::min(v, T(0)); });
              break;
            case UnaryOp::PowScalar:
              if (alpha == 2.0) out = map1<T>(x, x.dtype(), [](T v) { return v * v; });
              else out = map1<T>(x, x.dtype(), [a](T v) { return std::pow(v, a); });
              break;
            case UnaryOp::ReluMask:
              out = map1<T>(x, x.dtype(), [](T v) { return T(v > T(0)); });
              break;
            case UnaryOp::LeakyReluSlope:
              out = map1<T>(x, x.dtype(), [a](T v) { return a + (T(1) - a) * T(v > T(0)); });
              break;
            default: DFX_FAIL(name, ": unhandled op");
          }
        }
    }
  });
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_same_dtype(a, b, name);
  Tensor out;
  dispatch_numeric(a.dtype(), name, [&](auto z) {
    using T = decltype(z);
    const DType dt = a.dtype();
    switch (op) {
      case BinaryOp::Add: out = map2<T, T>(a, b, dt, name, [](T x, T y) { return T(x + y); }); break;
      case BinaryOp::Sub: out = map2<T, T>(a, b, dt, name, [](T x, T y) { return T(x - y); }); break;
      case BinaryOp::Mul: out = map2<T, T>(a, b, dt, name, [](T x, T y) { return T(x * y); }); break;
      case BinaryOp::Div:
        if constexpr (std::is_integral_v<T>) {
          check_no_zero_divisor<T>(b, name);
          // x / -1 as an unsigned negation: INT64_MIN / -1 traps like a division by zero.
          out = map2<T, T>(a, b, dt, name, [](T x, T y) {
            return y == T(-1) ? static_cast<T>(0 - static_cast<uint64_t>(x)) : T(x / y);
          });
        } else {
          out = map2<T, T>(a, b, dt, name, [](T x, T y) { return T(x / y); });
        }
        break;
      case BinaryOp::Maximum:
        out = map2<T, T>(a, b, dt, name, [](T x, T y) { return x > y ? x : y; });
        break;
      case BinaryOp::Minimum:
        out = map2<T, T>(a, b, dt, name, [](T x, T y) { return x < y ? x : y; });
        break;
      case BinaryOp::Pow:
        out = map2<T, T>(a, b, dt, name, [](T x, T y) {
          return static_cast<T>(std::pow(static_cast<double>(x), static_cast<double>(y)));
        });
        break;
    }
  });
  return out;
}

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  check_same_dtype(a, b, "compare");
  Tensor out;
  dispatch_all(a.dtype(), "compare", [&](auto z) {
    using T = decltype(z);
    const DType bo = DType::Bool;
    switch (op) {
      case CompareOp::Eq: out = map2<T, bool>(a, b, bo, "eq", [](T x, T y) { return x == y; }); break;
      case CompareOp::Ne: out = map2<T, bool>(a, b, bo, "ne", [](T x, T y) { return x != y; }); break;
      case CompareOp::Lt: out = map2<T, bool>(a, b, bo, "lt", [](T x, T y) { return x < y; }); break;
      case CompareOp::Le: out = map2<T, bool>(a, b, bo, "le", [](T x, T y) { return x <= y; }); break;
      case CompareOp::Gt: out = map2<T, bool>(a, b, bo, "gt", [](T x, T y) { return x > y; }); break;
      case CompareOp::Ge: out = map2<T, bool>(a, b, bo, "ge", [](T x, T y) { return x >= y; }); break;
    }
  });
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  DFX_CHECK(cond.dtype() == DType::Bool, "where: condition must be bool, got ", cond.describe());
  check_same_dtype(a, b, "where");
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(),
                                 "where");
  Tensor ec = cond.expand(shape), ea = a.expand(shape), eb = b.expand(shape);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  dispatch_all(a.dtype(), "where", [&](auto z) {
    using T = decltype(z);
    T* po = out.data<T>();
    const bool* pc = ec.data<bool>();
    const T* pa = static_cast<const T*>(ea.raw_data());
    const T* pb = static_cast<const T*>(eb.raw_data());
    detail::for_each_chunk<4>(shape, {&out.strides(), &ec.strides(), &ea.strides(), &eb.strides()},
                              [&](auto off, auto in, int64_t n) {
                                for (int64_t i = 0; i < n; ++i)
                                  po[off[0] + i * in[0]] = pc[off[1] + i * in[1]]
                                                               ? pa[off[2] + i * in[2]]
                                                               : pb[off[3] + i * in[3]];
                              });
  });
  return out;
}

Tensor clamp(const Tensor& x, double lo, double hi, bool mask) {
  Tensor out;
  dispatch_numeric(x.dtype(), "clamp", [&](auto z) {
    using T = decltype(z);
    const T l = static_cast<T>(lo), h = static_cast<T>(hi);
    if (mask) out = map1<T>(x, x.dtype(), [l, h](T v) { return (v >= l && v <= h) ? T(1) : T(0); });
    else out = map1<T>(x, x.dtype(), [l, h](T v) { return v < l ? l : (v > h ? h : v); });
  });
  return out;
}

void axpy_(const Tensor& a, double alpha, const Tensor& b) {
  check_same_dtype(a, b, "axpy_");
  Tensor eb = b.expand(a.shape());
  dispatch_numeric(a.dtype(), "axpy_", [&](auto z) {
    using T = decltype(z);
    T* pa = a.data<T>();
    const T* pb = static_cast<const T*>(eb.raw_data());
    const T al = static_cast<T>(alpha);
    detail::for_each_chunk<2>(a.shape(), {&a.strides(), &eb.strides()},
                              [&](auto off, auto in, int64_t n) {
                                T* o = pa + off[0];
                                const T* p = pb + off[1];
                                if (in[0] == 1 && in[1] == 1) {
#pragma omp simd
                                  for (int64_t i = 0; i < n; ++i) o[i] += al * p[i];
                                } else {
                                  for (int64_t i = 0; i < n; ++i) o[i * in[0]] += al * p[i * in[1]];
                                }
                              });
  });
}

void leaky_relu_backward(const Tensor& g, const Tensor& y, double slope, const Tensor& out) {
  const int64_t n = y.numel();
  dispatch_float(y.dtype(), "leaky_relu_backward", [&](auto z) {
    using T = decltype(z);
    const T* pg = g.data<T>();
    const T* py = y.data<T>();
    T* po = out.data<T>();
    const T a = static_cast<T>(slope);
#pragma omp parallel for simd schedule(static) if (n >= 32768)
    for (int64_t i = 0; i < n; ++i) po[i] = py[i] > T(0) ? pg[i] : pg[i] * a;
  });
}

void adam_update_(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                  const AdamUpdate& u) {
  const int64_t n = p.numel();
  dispatch_float(p.dtype(), "adam_update_", [&](auto z) {
    using T = decltype(z);
    T *pp = p.data<T>(), *pm = m.data<T>(), *pv = v.data<T>();
    const T* pg = g.data<T>();
    const T b1 = static_cast<T>(u.beta1), ob1 = static_cast<T>(1.0 - u.beta1);
    const T b2 = static_cast<T>(u.beta2), ob2 = static_cast<T>(1.0 - u.beta2);
    const T isb = static_cast<T>(u.inv_sqrt_bc2), eps = static_cast<T>(u.eps);
    const T neg_step = static_cast<T>(-u.step), wd = static_cast<T>(u.weight_decay);
    const bool decay = u.weight_decay != 0.0;
#pragma omp parallel for simd schedule(static) if (n >= 32768)
    for (int64_t i = 0; i < n; ++i) {
      const T gv = decay ? pg[i] + pp[i] * wd : pg[i];
      const T mi = pm[i] * b1 + gv * ob1;
      const T vi = pv[i] * b2 + (gv * gv) * ob2;
      pm[i] = mi;
      pv[i] = vi;
      pp[i] = pp[i] + neg_step * (mi / (std::sqrt(vi) * isb + eps));
    }
  });
}

}  // namespace dfx::kernels::cpu
