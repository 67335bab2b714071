// kernels/reduce.cpp — shape handling and device dispatch for reductions.
#include "kernels/reduce.h"

#include <algorithm>

#include "config.h"
#include "kernels/backend.h"
#include "kernels/cpu/reduce.h"
#if DFX_HAVE_CUDA
#include "kernels/cuda/reduce.cuh"
#endif

namespace dfx::kernels {

std::vector<int> normalize_dims(const std::vector<int64_t>& dims, int ndim, const char* op) {
  std::vector<int> out;
  if (dims.empty()) {
    for (int d = 0; d < ndim; ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(wrap_dim(d, ndim, op));
  std::sort(out.begin(), out.end());
  DFX_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), op, ": repeated dim in ",
            Shape(dims.begin(), dims.end()));
  return out;
}

Shape reduced_shape(const Shape& in, const std::vector<int>& dims, bool keepdim) {
  Shape out;
  for (int d = 0; d < static_cast<int>(in.size()); ++d) {
    bool red = std::find(dims.begin(), dims.end(), d) != dims.end();
    if (!red) out.push_back(in[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

namespace {
void check_input(const Tensor& x, const char* op) {
  DFX_CHECK(x.defined(), op, ": undefined input");
  DFX_CHECK(x.device().is_cpu() || DFX_HAVE_CUDA, op, ": no CUDA kernel for ", x.describe(),
            " (dfx was built without CUDA)");
}
}  // namespace

Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  static const char* names[] = {"sum", "mean", "max", "min"};
  const char* name = names[static_cast<int>(op)];
  check_input(x, name);
  std::vector<int> d = normalize_dims(dims, x.dim(), name);
  Shape kept = reduced_shape(x.shape(), d, false);
  if (x.dim() == 0) {
    Tensor out = x.clone();
    return keepdim ? out : out.reshape({});
  }
  Tensor out = Tensor::empty(kept, x.dtype(), x.device());
  DFX_BACKEND(x, reduce(op, x, d, out));
  return keepdim ? out.view(reduced_shape(x.shape(), d, true)) : out;
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  check_input(x, "var");
  std::vector<int> d = normalize_dims(dims, x.dim(), "var");
  Tensor xx = x.dim() == 0 ? x.reshape({1}) : x;
  if (x.dim() == 0) d = {0};
  Tensor out = Tensor::empty(reduced_shape(xx.shape(), d, false), x.dtype(), x.device());
  DFX_BACKEND(x, var(xx, d, correction, out));
  // A 0-d input gives a 0-d result with or without keepdim, as in reduce().
  return keepdim && x.dim() > 0 ? out.view(reduced_shape(xx.shape(), d, true)) : out;
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  check_input(x, "argmax");
  int d = wrap_dim(dim, x.dim(), "argmax");
  if (x.dim() == 0) return zeros({}, DType::Int64, x.device());  // the only element
  Tensor out = Tensor::empty(reduced_shape(x.shape(), {d}, false), DType::Int64, x.device());
  DFX_BACKEND(x, argmax(x, d, out));
  return keepdim ? out.view(reduced_shape(x.shape(), {d}, true)) : out;
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  DFX_CHECK(shape.size() <= x.shape().size(), "sum_to: cannot sum ", x.describe(), " down to ",
            shape, " (more dims)");
  const size_t lead = x.shape().size() - shape.size();
  std::vector<int64_t> dims;
  for (size_t i = 0; i < x.shape().size(); ++i) {
    if (i < lead) {
      dims.push_back(static_cast<int64_t>(i));
    } else if (shape[i - lead] == 1 && x.shape()[i] != 1) {
      dims.push_back(static_cast<int64_t>(i));
    } else {
      DFX_CHECK(shape[i - lead] == x.shape()[i], "sum_to: ", x.describe(), " does not reduce to ",
                shape, " (dim ", i, ")");
    }
  }
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, true).reshape(shape);
}

}  // namespace dfx::kernels
