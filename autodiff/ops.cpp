// autodiff/ops.cpp — forward and backward of every differentiable op, side by side. Backward
// rules use only Var ops, so they are themselves recorded when create_graph is on. Rules skip
// inputs that need no gradient, and capture only what they use.
#include "autodiff/ops.h"

#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/reduce.h"
#include "kernels/shape_ops.h"

namespace dfx::ad {
namespace k = dfx::kernels;
using VarList = std::vector<Var>;

namespace {
Var cst(double v, const Var& like) { return Var(full({}, v, like.dtype(), like.device())); }
Var keep(const Var& v, bool needed) { return needed ? v : Var(); }
}  // namespace

// ---------------------------------------------------------------- elementwise, binary

Var add(const Var& a, const Var& b) {
  Shape as = a.shape(), bs = b.shape();
  bool na = a.requires_grad(), nb = b.requires_grad();
  return record("add", k::add(a.data(), b.data()), {a, b}, [=](const Var&, const Var& g) {
    return VarList{na ? sum_to(g, as) : Var(), nb ? sum_to(g, bs) : Var()};
  });
}

Var sub(const Var& a, const Var& b) {
  Shape as = a.shape(), bs = b.shape();
  bool na = a.requires_grad(), nb = b.requires_grad();
  return record("sub", k::sub(a.data(), b.data()), {a, b}, [=](const Var&, const Var& g) {
    return VarList{na ? sum_to(g, as) : Var(), nb ? sum_to(neg(g), bs) : Var()};
  });
}

Var mul(const Var& a, const Var& b) {
  Shape as = a.shape(), bs = b.shape();
  bool na = a.requires_grad(), nb = b.requires_grad();
  Var ca = keep(a, nb), cb = keep(b, na);
  return record("mul", k::mul(a.data(), b.data()), {a, b}, [=](const Var&, const Var& g) {
    return VarList{na ? sum_to(mul(g, cb), as) : Var(), nb ? sum_to(mul(g, ca), bs) : Var()};
  });
}

Var div(const Var& a, const Var& b) {
  Shape as = a.shape(), bs = b.shape();
  bool na = a.requires_grad(), nb = b.requires_grad();
  Var ca = keep(a, nb);
  return record("div", k::div(a.data(), b.data()), {a, b}, [=](const Var&, const Var& g) {
    Var ga = na ? sum_to(div(g, b), as) : Var();
    Var gb = nb ? sum_to(neg(div(mul(g, ca), mul(b, b))), bs) : Var();
    return VarList{ga, gb};
  });
}

Var pow(const Var& a, const Var& b) {
  Shape as = a.shape(), bs = b.shape();
  bool na = a.requires_grad(), nb = b.requires_grad();
  return record("pow_tensor", k::binary(k::BinaryOp::Pow, a.data(), b.data()), {a, b},
                [=](const Var& out, const Var& g) {
                  Var ga = na ? sum_to(mul(g, mul(b, pow(a, sub(b, cst(1, b))))), as) : Var();
                  Var gb = nb ? sum_to(mul(g, mul(out, log(a))), bs) : Var();
                  return VarList{ga, gb};
                }, nb);
}

Var maximum(const Var& a, const Var& b) {
  Shape as = a.shape(), bs = b.shape();
  Tensor mask = k::compare(k::CompareOp::Ge, a.data(), b.data());  // ties go to a
  bool na = a.requires_grad(), nb = b.requires_grad();
  return record("maximum", k::binary(k::BinaryOp::Maximum, a.data(), b.data()), {a, b},
                [=](const Var&, const Var& g) {
                  Var z = cst(0, g);
                  return VarList{na ? sum_to(where(mask, g, z), as) : Var(),
                                 nb ? sum_to(where(mask, z, g), bs) : Var()};
                });
}

Var minimum(const Var& a, const Var& b) {
  Shape as = a.shape(), bs = b.shape();
  Tensor mask = k::compare(k::CompareOp::Le, a.data(), b.data());  // ties go to a
  bool na = a.requires_grad(), nb = b.requires_grad();
  return record("minimum", k::binary(k::BinaryOp::Minimum, a.data(), b.data()), {a, b},
                [=](const Var&, const Var& g) {
                  Var z = cst(0, g);
                  return VarList{na ? sum_to(where(mask, g, z), as) : Var(),
                                 nb ? sum_to(where(mask, z, g), bs) : Var()};
                });
}

Var where(const Tensor& cond, const Var& a, const Var& b) {
  Shape as = a.shape(), bs = b.shape();
  bool na = a.requires_grad(), nb = b.requires_grad();
  return record("where", k::where(cond, a.data(), b.data()), {a, b},
                [=](const Var&, const Var& g) {
                  Var z = cst(0, g);
                  return VarList{na ? sum_to(where(cond, g, z), as) : Var(),
                                 nb ? sum_to(where(cond, z, g), bs) : Var()};
                });
}

// ---------------------------------------------------------------- elementwise, unary

Var neg(const Var& x) {
  return record("neg", k::unary(k::UnaryOp::Neg, x.data()), {x},
                [](const Var&, const Var& g) { return VarList{neg(g)}; });
}

Var exp(const Var& x) {
  return record("exp", k::unary(k::UnaryOp::Exp, x.data()), {x},
                [](const Var& out, const Var& g) { return VarList{mul(g, out)}; }, true);
}

Var log(const Var& x) {
  return record("log", k::unary(k::UnaryOp::Log, x.data()), {x},
                [x](const Var&, const Var& g) { return VarList{div(g, x)}; });
}

Var sqrt(const Var& x) {
  return record("sqrt", k::unary(k::UnaryOp::Sqrt, x.data()), {x},
                [](const Var& out, const Var& g) { return VarList{div(mul(g, 0.5), out)}; },
                true);
}

Var rsqrt(const Var& x) {
  return record("rsqrt", k::unary(k::UnaryOp::Rsqrt, x.data()), {x},
                [](const Var& out, const Var& g) {
                  return VarList{mul(g, mul(mul(out, mul(out, out)), -0.5))};
                }, true);
}

Var pow(const Var& x, double p) {
  return record("pow", k::unary(k::UnaryOp::PowScalar, x.data(), p), {x},
                [x, p](const Var&, const Var& g) {
                  if (p == 0.0) return VarList{mul(g, 0.0)};
                  if (p == 1.0) return VarList{g};
                  if (p == 2.0) return VarList{mul(g, mul(x, 2.0))};
                  return VarList{mul(g, mul(pow(x, p - 1.0), p))};
                });
}

Var abs(const Var& x) {
  Tensor sign = k::unary(k::UnaryOp::Sign, x.data());
  return record("abs", k::unary(k::UnaryOp::Abs, x.data()), {x},
                [sign](const Var&, const Var& g) { return VarList{mul(g, Var(sign))}; });
}

Var tanh(const Var& x) {
  return record("tanh", k::unary(k::UnaryOp::Tanh, x.data()), {x},
                [](const Var& out, const Var& g) {
                  return VarList{mul(g, sub(1.0, mul(out, out)))};
                }, true);
}

Var sigmoid(const Var& x) {
  return record("sigmoid", k::unary(k::UnaryOp::Sigmoid, x.data()), {x},
                [](const Var& out, const Var& g) {
                  return VarList{mul(g, mul(out, sub(1.0, out)))};
                }, true);
}

// relu and leaky_relu (slope >= 0) keep no mask: out > 0 exactly where x > 0, so the backward
// reads the derivative off the saved output, which the next layer (a convolution) saves anyway.
// That is one activation-sized tensor less per use, and one pass less in the forward.
Var relu(const Var& x) {
  return record("relu", k::unary(k::UnaryOp::Relu, x.data()), {x},
                [](const Var& y, const Var& g) {
                  return VarList{leaky_relu_backward(g, y.data(), 0.0)};
                }, true);
}

Var leaky_relu(const Var& x, double slope) {
  Tensor out = k::unary(k::UnaryOp::LeakyRelu, x.data(), slope);
  if (slope >= 0.0)
    return record("leaky_relu", std::move(out), {x}, [slope](const Var& y, const Var& g) {
      return VarList{leaky_relu_backward(g, y.data(), slope)};
    }, true);
  Tensor d = k::unary(k::UnaryOp::LeakyReluSlope, x.data(), slope);
  return record("leaky_relu", std::move(out), {x},
                [d](const Var&, const Var& g) { return VarList{mul(g, Var(d))}; });
}

Var leaky_relu_backward(const Var& g, const Tensor& y, double slope) {
  // Linear in g with a constant factor: its own derivative is itself (double backward / HVP).
  return record("leaky_relu_backward", k::leaky_relu_backward(g.data(), y, slope), {g},
                [y, slope](const Var&, const Var& gg) {
                  return VarList{leaky_relu_backward(gg, y, slope)};
                });
}

Var clamp(const Var& x, double lo, double hi) {
  Tensor mask = k::clamp_mask(x.data(), lo, hi);
  return record("clamp", k::clamp(x.data(), lo, hi), {x},
                [mask](const Var&, const Var& g) { return VarList{mul(g, Var(mask))}; });
}

Var square(const Var& x) { return pow(x, 2.0); }

// ---------------------------------------------------------------- scalars and operators

Var add(const Var& a, double b) { return add(a, cst(b, a)); }
Var sub(const Var& a, double b) { return sub(a, cst(b, a)); }
Var sub(double a, const Var& b) { return sub(cst(a, b), b); }
Var mul(const Var& a, double b) { return mul(a, cst(b, a)); }
Var div(const Var& a, double b) { return mul(a, cst(1.0 / b, a)); }
Var div(double a, const Var& b) { return div(cst(a, b), b); }

Var operator+(const Var& a, const Var& b) { return add(a, b); }
Var operator-(const Var& a, const Var& b) { return sub(a, b); }
Var operator*(const Var& a, const Var& b) { return mul(a, b); }
Var operator/(const Var& a, const Var& b) { return div(a, b); }
Var operator-(const Var& a) { return neg(a); }
Var operator+(const Var& a, double b) { return add(a, b); }
Var operator+(double a, const Var& b) { return add(b, a); }
Var operator-(const Var& a, double b) { return sub(a, b); }
Var operator-(double a, const Var& b) { return sub(a, b); }
Var operator*(const Var& a, double b) { return mul(a, b); }
Var operator*(double a, const Var& b) { return mul(b, a); }
Var operator/(const Var& a, double b) { return div(a, b); }
Var operator/(double a, const Var& b) { return div(a, b); }

// ---------------------------------------------------------------- reductions

Var sum(const Var& x, const std::vector<int64_t>& dims, bool keepdim) {
  Shape xs = x.shape();
  Shape ks = k::reduced_shape(xs, k::normalize_dims(dims, x.dim(), "sum"), true);
  return record("sum", k::sum(x.data(), dims, keepdim), {x}, [=](const Var&, const Var& g) {
    return VarList{expand(reshape(g, ks), xs)};
  });
}

Var mean(const Var& x, const std::vector<int64_t>& dims, bool keepdim) {
  int64_t n = 1;
  for (int d : k::normalize_dims(dims, x.dim(), "mean")) n *= x.shape()[d];
  return mul(sum(x, dims, keepdim), 1.0 / static_cast<double>(n));
}

static Var extremum(const char* name, k::ReduceOp op, const Var& x,
                    const std::vector<int64_t>& dims, bool keepdim) {
  Shape xs = x.shape();
  std::vector<int> nd = k::normalize_dims(dims, x.dim(), name);
  Shape ks = k::reduced_shape(xs, nd, true);
  Tensor out = k::reduce(op, x.data(), dims, true);
  // Ties share the gradient equally (as PyTorch's amax/amin do).
  Tensor mask = k::compare(k::CompareOp::Eq, x.data(), out).to(x.dtype());
  Tensor share = k::div(mask, k::sum(mask, dims, true));
  return record(name, keepdim ? out : out.reshape(k::reduced_shape(xs, nd, false)), {x},
                [=](const Var&, const Var& g) {
                  return VarList{mul(expand(reshape(g, ks), xs), Var(share))};
                });
}

Var amax(const Var& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extremum("amax", k::ReduceOp::Max, x, dims, keepdim);
}
Var amin(const Var& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extremum("amin", k::ReduceOp::Min, x, dims, keepdim);
}

Var var(const Var& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  int64_t n = 1;
  for (int d : k::normalize_dims(dims, x.dim(), "var")) n *= x.shape()[d];
  DFX_CHECK(n - correction > 0, "var: ", n, " elements with correction ", correction,
            " leave no degrees of freedom (", x.data().describe(), ")");
  Var d = sub(x, mean(x, dims, true));
  return mul(sum(mul(d, d), dims, keepdim), 1.0 / static_cast<double>(n - correction));
}

Var sum_to(const Var& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  Shape xs = x.shape();
  return record("sum_to", k::sum_to(x.data(), shape), {x},
                [xs](const Var&, const Var& g) { return VarList{expand(g, xs)}; });
}

Var dot(const Var& a, const Var& b) {
  DFX_CHECK(a.shape() == b.shape(), "dot: shapes differ: ", a.shape(), " and ", b.shape());
  return sum(mul(a, b));
}

// ---------------------------------------------------------------- linear algebra

Var matmul(const Var& a, const Var& b) {
  DFX_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: expected operands with >= 1 dim, got ",
            a.data().describe(), " and ", b.data().describe());
  if (a.dim() == 1 || b.dim() == 1) {
    // Promote vectors to matrices so the rule below only sees >= 2-d operands.
    Var a2 = a.dim() == 1 ? unsqueeze(a, 0) : a;
    Var b2 = b.dim() == 1 ? unsqueeze(b, 1) : b;
    Var out = matmul(a2, b2);
    if (b.dim() == 1) out = squeeze(out, -1);
    if (a.dim() == 1) out = squeeze(out, out.dim() == 1 ? 0 : -2);
    return out;
  }
  Shape as = a.shape(), bs = b.shape();
  bool na = a.requires_grad(), nb = b.requires_grad();
  Var ca = keep(a, nb), cb = keep(b, na);
  return record("matmul", k::matmul(a.data(), b.data()), {a, b}, [=](const Var&, const Var& g) {
    Var ga = na ? sum_to(matmul(g, transpose(cb, -1, -2)), as) : Var();
    Var gb = nb ? sum_to(matmul(transpose(ca, -1, -2), g), bs) : Var();
    return VarList{ga, gb};
  });
}

// ---------------------------------------------------------------- shape

Var reshape(const Var& x, const Shape& shape) {
  Shape xs = x.shape();
  return record("reshape", x.data().reshape(shape), {x},
                [xs](const Var&, const Var& g) { return VarList{reshape(g, xs)}; });
}

Var flatten(const Var& x) { return reshape(x, {x.numel()}); }
Var squeeze(const Var& x, int64_t dim) { return reshape(x, x.data().squeeze(dim).shape()); }
Var unsqueeze(const Var& x, int64_t dim) { return reshape(x, x.data().unsqueeze(dim).shape()); }

Var permute(const Var& x, const std::vector<int>& dims) {
  Tensor out = x.data().permute(dims);
  std::vector<int> inv(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inv[wrap_dim(dims[i], x.dim(), "permute")] = static_cast<int>(i);
  return record("permute", out, {x},
                [inv](const Var&, const Var& g) { return VarList{permute(g, inv)}; });
}

Var transpose(const Var& x, int64_t d0, int64_t d1) {
  std::vector<int> p(x.dim());
  for (int i = 0; i < x.dim(); ++i) p[i] = i;
  std::swap(p[wrap_dim(d0, x.dim(), "transpose")], p[wrap_dim(d1, x.dim(), "transpose")]);
  return permute(x, p);
}

Var narrow(const Var& x, int64_t dim, int64_t start, int64_t length) {
  Shape xs = x.shape();
  int d = wrap_dim(dim, x.dim(), "narrow");
  if (start < 0) start += xs[d];
  return record("narrow", x.data().narrow(d, start, length), {x},
                [=](const Var&, const Var& g) { return VarList{unnarrow(g, xs, d, start)}; });
}

Var unnarrow(const Var& x, const Shape& shape, int64_t dim, int64_t start) {
  int d = wrap_dim(dim, static_cast<int>(shape.size()), "unnarrow");
  int64_t len = x.shape()[d];
  return record("unnarrow", k::unnarrow(x.data(), shape, d, start), {x},
                [=](const Var&, const Var& g) { return VarList{narrow(g, d, start, len)}; });
}

Var expand(const Var& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  Shape xs = x.shape();
  return record("expand", x.data().expand(shape), {x},
                [xs](const Var&, const Var& g) { return VarList{sum_to(g, xs)}; });
}

Var contiguous(const Var& x) {
  if (x.data().is_contiguous()) return x;
  return record("contiguous", x.data().contiguous(), {x},
                [](const Var&, const Var& g) { return VarList{g}; });
}

Var concat(const std::vector<Var>& xs, int64_t dim) {
  DFX_CHECK(!xs.empty(), "concat: no tensors given");
  std::vector<Tensor> ts;
  std::vector<int64_t> sizes;
  for (const Var& x : xs) {
    ts.push_back(x.data());
    sizes.push_back(x.shape().empty() ? 0 : x.shape()[wrap_dim(dim, x.dim(), "concat")]);
  }
  int d = wrap_dim(dim, xs[0].dim(), "concat");
  return record("concat", k::concat(ts, d), xs, [=](const Var&, const Var& g) {
    VarList out;
    int64_t off = 0;
    for (int64_t s : sizes) {
      out.push_back(narrow(g, d, off, s));
      off += s;
    }
    return out;
  });
}

Var stack(const std::vector<Var>& xs, int64_t dim) {
  DFX_CHECK(!xs.empty(), "stack: no tensors given");
  int d = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Var> us;
  for (const Var& x : xs) us.push_back(unsqueeze(x, d));
  return concat(us, d);
}

std::vector<Var> split(const Var& x, const std::vector<int64_t>& sizes, int64_t dim) {
  k::split(x.data(), sizes, dim);  // validates sizes
  std::vector<Var> out;
  int64_t off = 0;
  for (int64_t s : sizes) {
    out.push_back(narrow(x, dim, off, s));
    off += s;
  }
  return out;
}

}  // namespace dfx::ad
