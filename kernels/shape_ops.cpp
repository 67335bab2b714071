// kernels/shape_ops.cpp — concat/stack/split/unnarrow, device-agnostic: they are views and
// core's copy_, which dispatches by device itself.
#include "kernels/shape_ops.h"

namespace dfx::kernels {

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  DFX_CHECK(!xs.empty(), "concat: no tensors given");
  const Tensor& x0 = xs[0];
  DFX_CHECK(x0.dim() > 0, "concat: cannot concatenate 0-d tensors (", x0.describe(),
            "); expected >= 1 dim (stack joins 0-d tensors)");
  int d = wrap_dim(dim, x0.dim(), "concat");
  Shape shape = x0.shape();
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    DFX_CHECK(x.dim() == x0.dim() && x.dtype() == x0.dtype() && x.device() == x0.device(),
              "concat: tensor ", i, " is ", x.describe(), " but tensor 0 is ", x0.describe(),
              "; expected the same rank, dtype and device");
    for (int k = 0; k < x.dim(); ++k)
      DFX_CHECK(k == d || x.shape()[k] == x0.shape()[k], "concat: tensor ", i, " has shape ",
                x.shape(), ", tensor 0 has ", x0.shape(), "; they may differ only in dim ", d);
    total += x.shape()[d];
  }
  shape[d] = total;
  // Channels-last inputs (a U-Net's skip connections) give a channels-last result.
  MemoryFormat format = MemoryFormat::Contiguous;
  if (shape.size() >= 3 && shape.size() <= 5) {
    for (const Tensor& x : xs)
      if (x.suggest_memory_format() == MemoryFormat::ChannelsLast) format = MemoryFormat::ChannelsLast;
  }
  Tensor out = Tensor::empty(shape, x0.dtype(), x0.device(), format);
  int64_t off = 0;
  for (const Tensor& x : xs) {
    copy_(out.narrow(d, off, x.shape()[d]), x);
    off += x.shape()[d];
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  DFX_CHECK(!xs.empty(), "stack: no tensors given");
  int d = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  for (size_t i = 0; i < xs.size(); ++i) {
    DFX_CHECK(xs[i].shape() == xs[0].shape(), "stack: tensor ", i, " has shape ", xs[i].shape(),
              ", tensor 0 has ", xs[0].shape(), "; expected equal shapes");
    us.push_back(xs[i].unsqueeze(d));
  }
  return concat(us, d);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  DFX_CHECK(x.dim() > 0, "split: cannot split a 0-d tensor (", x.describe(), ")");
  int d = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    DFX_CHECK(s >= 0, "split: negative size in ", Shape(sizes));
    total += s;
  }
  DFX_CHECK(total == x.shape()[d], "split: sizes ", Shape(sizes), " add up to ", total,
            " but dim ", d, " of ", x.describe(), " is ", x.shape()[d]);
  std::vector<Tensor> out;
  int64_t off = 0;
  for (int64_t s : sizes) {
    out.push_back(x.narrow(d, off, s));
    off += s;
  }
  return out;
}

Tensor unnarrow(const Tensor& x, const Shape& shape, int64_t dim, int64_t start) {
  int d = wrap_dim(dim, static_cast<int>(shape.size()), "unnarrow");
  bool fits = x.dim() > 0 && x.dim() == static_cast<int>(shape.size());
  for (int k = 0; fits && k < x.dim(); ++k) fits = k == d || x.shape()[k] == shape[k];
  DFX_CHECK(fits, "unnarrow: ", x.describe(), " does not fit in ", shape, " along dim ", d,
            "; expected the same rank and the same sizes off dim ", d);
  Tensor out = zeros(shape, x.dtype(), x.device());
  copy_(out.narrow(d, start, x.shape()[d]), x);
  return out;
}

}  // namespace dfx::kernels
