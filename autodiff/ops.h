// autodiff/ops.h — differentiable ops on Vars. Each op's forward calls kernels/ and its backward
// rule (in ops.cpp, next to the forward) is written in these same ops, so it is differentiable.
// The list of primitive ops with their own rule is autodiff/op_list.h; the test suite fails when
// one of them lacks a gradient check.
#pragma once
#include <vector>

#include "autodiff/var.h"

namespace dfx::ad {

// ---- elementwise ----
Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var div(const Var& a, const Var& b);
Var neg(const Var& x);
Var exp(const Var& x);
Var log(const Var& x);
Var sqrt(const Var& x);
Var rsqrt(const Var& x);
Var pow(const Var& x, double p);
Var pow(const Var& x, const Var& p);
Var abs(const Var& x);
Var tanh(const Var& x);
Var sigmoid(const Var& x);
Var relu(const Var& x);
Var leaky_relu(const Var& x, double negative_slope = 0.01);
// g * (y > 0 ? 1 : slope) with y = leaky_relu(x, slope) for slope >= 0 (a constant): the rule of
// relu and leaky_relu, itself differentiable in g for double backward.
Var leaky_relu_backward(const Var& g, const Tensor& y, double slope);
Var square(const Var& x);
Var where(const Tensor& cond, const Var& a, const Var& b);
Var clamp(const Var& x, double lo, double hi);
Var maximum(const Var& a, const Var& b);
Var minimum(const Var& a, const Var& b);

// Scalars become 0-d constants of the Var's dtype and device.
Var add(const Var& a, double b);
Var sub(const Var& a, double b);
Var sub(double a, const Var& b);
Var mul(const Var& a, double b);
Var div(const Var& a, double b);
Var div(double a, const Var& b);

Var operator+(const Var& a, const Var& b);
Var operator-(const Var& a, const Var& b);
Var operator*(const Var& a, const Var& b);
Var operator/(const Var& a, const Var& b);
Var operator-(const Var& a);
Var operator+(const Var& a, double b);
Var operator+(double a, const Var& b);
Var operator-(const Var& a, double b);
Var operator-(double a, const Var& b);
Var operator*(const Var& a, double b);
Var operator*(double a, const Var& b);
Var operator/(const Var& a, double b);
Var operator/(double a, const Var& b);

// ---- reductions (empty dims = all) ----
Var sum(const Var& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Var mean(const Var& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Var amax(const Var& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Var amin(const Var& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Var var(const Var& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1,
        bool keepdim = false);
Var sum_to(const Var& x, const Shape& shape);  // reverse of broadcasting
Var dot(const Var& a, const Var& b);           // sum(a * b), any equal shapes

// ---- linear algebra ----
Var matmul(const Var& a, const Var& b);

// ---- shape (views where the kernels allow) ----
Var reshape(const Var& x, const Shape& shape);
Var flatten(const Var& x);
Var permute(const Var& x, const std::vector<int>& dims);
Var transpose(const Var& x, int64_t d0, int64_t d1);
Var narrow(const Var& x, int64_t dim, int64_t start, int64_t length);
Var unnarrow(const Var& x, const Shape& shape, int64_t dim, int64_t start);
Var expand(const Var& x, const Shape& shape);
Var squeeze(const Var& x, int64_t dim);
Var unsqueeze(const Var& x, int64_t dim);
Var contiguous(const Var& x);
Var concat(const std::vector<Var>& xs, int64_t dim);
Var stack(const std::vector<Var>& xs, int64_t dim);
std::vector<Var> split(const Var& x, const std::vector<int64_t>& sizes, int64_t dim);

}  // namespace dfx::ad
