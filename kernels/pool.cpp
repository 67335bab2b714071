// kernels/pool.cpp — shape checks, window geometry and device dispatch for pooling and upsampling.
// Average pooling, upsampling and their adjoints are all separable linear maps: they are built here
// as one AxisMap per spatial dim, so a device implements a single separable kernel for all four.
// NCHW and channels-last operands go to the kernels as they are (PoolPlanes says which), and
// results are allocated in the input's layout: no layout conversions around the kernels.
#include "kernels/pool.h"

#include <algorithm>

#include "config.h"
#include "kernels/backend.h"
#include "kernels/cpu/pool.h"
#if DFX_HAVE_CUDA
#include "kernels/cuda/pool.cuh"
#endif

namespace dfx::kernels {

namespace {

void check_device(const char* op, const Tensor& x) {
  DFX_CHECK(x.device().is_cpu() || DFX_HAVE_CUDA, op, ": no CUDA kernel for ", x.describe(),
            " (dfx was built without CUDA)");
}

// x dense in the layout its result gets (suggest_memory_format()): x itself when it is NCHW- or
// channels-last-dense, else a copy (NCHW for a non-dense view such as a transpose).
Tensor dense(const Tensor& x, MemoryFormat& fmt) {
  fmt = x.suggest_memory_format();
  return x.contiguous(fmt);
}

PoolPlanes planes_of(const Shape& s, MemoryFormat fmt) { return {s[0], s[1], fmt}; }

void check_input(const Tensor& x, const char* op) {
  DFX_CHECK(x.defined(), op, ": undefined input");
  DFX_CHECK(x.dim() >= 3 && x.dim() <= 5, op, ": expected [N, C, *S] with 1-3 spatial dims, got ",
            x.describe());
  DFX_CHECK(is_floating(x.dtype()), op, ": expected a floating tensor, got ", x.describe());
  check_device(op, x);
}

// A per-dim parameter: one value for every spatial dim, or exactly one per spatial dim.
std::vector<int64_t> per_dim(const std::vector<int64_t>& v, int nsp, const char* op,
                             const char* what) {
  if (v.size() == 1) return std::vector<int64_t>(nsp, v[0]);
  DFX_CHECK(static_cast<int>(v.size()) == nsp, op, ": ", what, " has ", v.size(),
            " values for ", nsp, " spatial dims; expected 1 or ", nsp);
  return v;
}

PoolGeometry resolve(const Shape& xs, const PoolWindow& w, const char* op) {
  DFX_CHECK(xs.size() >= 3 && xs.size() <= 5, op, ": expected [N, C, *S] with 1-3 spatial dims, "
            "got shape ", xs);
  const int nsp = static_cast<int>(xs.size()) - 2;
  DFX_CHECK(!w.kernel.empty(), op, ": empty kernel size");
  std::vector<int64_t> k = per_dim(w.kernel, nsp, op, "kernel");
  std::vector<int64_t> s = per_dim(w.stride.empty() ? w.kernel : w.stride, nsp, op, "stride");
  std::vector<int64_t> p = per_dim(w.padding.empty() ? std::vector<int64_t>{0} : w.padding, nsp,
                                   op, "padding");
  PoolGeometry g;
  g.planes = planes_of(xs, MemoryFormat::Contiguous);  // the caller sets the layout
  for (int d = 0; d < 3; ++d) {
    g.in[d] = g.out[d] = g.k[d] = g.s[d] = 1;
    g.p[d] = 0;
  }
  for (int i = 0; i < nsp; ++i) {
    const int d = 3 - nsp + i;
    const int64_t in = xs[2 + i];
    DFX_CHECK(k[i] >= 1 && s[i] >= 1, op, ": kernel ", Shape(k), " and stride ", Shape(s),
              " must be >= 1");
    DFX_CHECK(p[i] >= 0 && 2 * p[i] <= k[i], op, ": padding ", Shape(p),
              " must be >= 0 and at most half the kernel ", Shape(k));
    DFX_CHECK(in >= 1 && in + 2 * p[i] >= k[i], op, ": input shape ", xs, " is smaller than the ",
              "kernel ", Shape(k), " with padding ", Shape(p));
    g.in[d] = in;
    g.k[d] = k[i];
    g.s[d] = s[i];
    g.p[d] = p[i];
    g.out[d] = (in + 2 * p[i] - k[i]) / s[i] + 1;
  }
  return g;
}

Shape with_spatial(const Shape& xs, const PoolGeometry& g, bool out) {
  Shape r{xs[0], xs[1]};
  const int nsp = static_cast<int>(xs.size()) - 2;
  for (int i = 0; i < nsp; ++i) r.push_back(out ? g.out[3 - nsp + i] : g.in[3 - nsp + i]);
  return r;
}

// Window map of one dim: output o averages inputs [o*s - p, o*s - p + k) that lie inside.
AxisMap window_map(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p) {
  AxisMap m;
  m.rows = out;
  m.cols = in;
  m.ptr = {0};
  m.col.clear();
  m.w.clear();
  for (int64_t o = 0; o < out; ++o) {
    const int64_t lo = std::max<int64_t>(o * s - p, 0), hi = std::min(o * s - p + k, in);
    for (int64_t c = lo; c < hi; ++c) {
      m.col.push_back(c);
      m.w.push_back(1.0);
    }
    m.ptr.push_back(static_cast<int64_t>(m.col.size()));
  }
  return m;
}

// Upsampling map of one dim, in -> in * s.
AxisMap upsample_map(int64_t in, int64_t s, UpsampleMode mode) {
  AxisMap m;
  m.rows = in * s;
  m.cols = in;
  m.ptr = {0};
  m.col.clear();
  m.w.clear();
  const double inv = 1.0 / static_cast<double>(s);
  for (int64_t o = 0; o < m.rows; ++o) {
    if (mode == UpsampleMode::Nearest) {
      m.col.push_back(o / s);
      m.w.push_back(1.0);
    } else {
      // PyTorch's area_pixel_compute_source_index (align_corners = false, clamped at 0).
      const double src = std::max(inv * (static_cast<double>(o) + 0.5) - 0.5, 0.0);
      const int64_t i0 = static_cast<int64_t>(src);
      const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
      const double l1 = src - static_cast<double>(i0), l0 = 1.0 - l1;
      if (i1 == i0 || l1 == 0.0) {  // both weights on one input, or the second one zero
        m.col.push_back(i0);
        m.w.push_back(1.0);
      } else {
        m.col.insert(m.col.end(), {i0, i1});
        m.w.insert(m.w.end(), {l0, l1});
      }
    }
    m.ptr.push_back(static_cast<int64_t>(m.col.size()));
  }
  return m;
}

Tensor run_separable(const Tensor& x, const AxisMap (&maps)[3], double scale,
                     const Shape& out_shape, const char* op) {
  check_device(op, x);
  MemoryFormat fmt;
  const Tensor xd = dense(x, fmt);
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device(), fmt);
  DFX_BACKEND(x, separable(xd, maps, scale, planes_of(out_shape, fmt), out));
  return out;
}

void window_maps(const PoolGeometry& g, AxisMap (&maps)[3]) {
  for (int d = 0; d < 3; ++d) maps[d] = window_map(g.in[d], g.out[d], g.k[d], g.s[d], g.p[d]);
}

}  // namespace

AxisMap AxisMap::transposed() const {
  AxisMap t;
  t.rows = cols;
  t.cols = rows;
  t.ptr.assign(cols + 1, 0);
  for (int64_t c : col) t.ptr[c + 1] += 1;
  for (int64_t c = 0; c < cols; ++c) t.ptr[c + 1] += t.ptr[c];
  t.col.resize(col.size());
  t.w.resize(w.size());
  std::vector<int64_t> fill(t.ptr.begin(), t.ptr.end() - 1);
  for (int64_t r = 0; r < rows; ++r) {  // increasing r: each transposed row stays sorted
    for (int64_t e = ptr[r]; e < ptr[r + 1]; ++e) {
      const int64_t at = fill[col[e]]++;
      t.col[at] = r;
      t.w[at] = w[e];
    }
  }
  return t;
}

Shape pool_output_shape(const Shape& x_shape, const PoolWindow& w, const char* op) {
  return with_spatial(x_shape, resolve(x_shape, w, op), true);
}

MaxPoolResult max_pool(const Tensor& x, const PoolWindow& w) {
  check_input(x, "max_pool");
  PoolGeometry g = resolve(x.shape(), w, "max_pool");
  const Tensor xd = dense(x, g.planes.format);
  Shape os = with_spatial(x.shape(), g, true);
  // Values and indices both in x's layout (see MaxPoolResult).
  MaxPoolResult r{Tensor::empty(os, x.dtype(), x.device(), g.planes.format),
                  Tensor::empty(os, DType::Int64, x.device(), g.planes.format)};
  r.disjoint = true;  // padding does not matter: a window's positions are its own
  for (int d = 0; d < 3; ++d) r.disjoint = r.disjoint && g.s[d] >= g.k[d];
  DFX_BACKEND(x, max_pool(xd, g, r.values, r.indices));
  return r;
}

namespace {
// Plane size of a gather/scatter pair: `big` [N, C, *S_in], idx [N, C, *S_out].
void check_indexed(const Shape& big, const Tensor& idx, const char* op, int64_t& in_numel) {
  DFX_CHECK(idx.defined() && idx.dtype() == DType::Int64, op, ": indices must be int64, got ",
            idx.describe());
  DFX_CHECK(big.size() >= 3 && idx.dim() == static_cast<int>(big.size()) &&
                idx.shape()[0] == big[0] && idx.shape()[1] == big[1],
            op, ": indices ", idx.describe(), " do not match planes of shape ", big,
            "; expected [N, C, *S_out] with the same N, C and number of dims");
  in_numel = 1;
  for (size_t d = 2; d < big.size(); ++d) in_numel *= big[d];
}
}  // namespace

Tensor pool_gather(const Tensor& x, const Tensor& indices, bool trusted) {
  DFX_CHECK(x.defined(), "pool_gather: undefined input");
  int64_t in_numel;
  check_indexed(x.shape(), indices, "pool_gather", in_numel);
  DFX_CHECK(x.device() == indices.device(), "pool_gather: ", x.describe(), " and indices ",
            indices.describe(), " are on different devices");
  check_device("pool_gather", x);
  // x, the indices and the result in x's layout (indices of the other layout are copied).
  MemoryFormat fmt;
  const Tensor xd = dense(x, fmt);
  Tensor out = Tensor::empty(indices.shape(), x.dtype(), x.device(), fmt);
  DFX_CHECK(DFX_BACKEND(x, pool_gather(xd, indices.contiguous(fmt), planes_of(x.shape(), fmt),
                                       in_numel, out, !trusted)),
            "pool_gather: an index in ", indices.describe(), " is outside the planes of ",
            x.describe());
  return out;
}

Tensor pool_scatter(const Tensor& g, const Tensor& indices, const Shape& in_shape, bool disjoint,
                    bool trusted) {
  DFX_CHECK(g.defined(), "pool_scatter: undefined input");
  int64_t in_numel;
  check_indexed(in_shape, indices, "pool_scatter", in_numel);
  DFX_CHECK(g.shape() == indices.shape(), "pool_scatter: values ", g.describe(),
            " and indices ", indices.describe(), " differ in shape");
  DFX_CHECK(g.device() == indices.device(), "pool_scatter: ", g.describe(), " and indices ",
            indices.describe(), " are on different devices");
  check_device("pool_scatter", g);
  // g, the indices and the result in g's layout (indices of the other layout are copied).
  MemoryFormat fmt;
  const Tensor gd = dense(g, fmt);
  Tensor out = Tensor::empty(in_shape, g.dtype(), g.device(), fmt);
  DFX_CHECK(DFX_BACKEND(g, pool_scatter(gd, indices.contiguous(fmt), planes_of(in_shape, fmt),
                                        in_numel, disjoint, out, !trusted)),
            "pool_scatter: an index in ", indices.describe(), " is outside planes of shape ",
            in_shape);
  return out;
}

Tensor avg_pool(const Tensor& x, const PoolWindow& w) {
  check_input(x, "avg_pool");
  PoolGeometry g = resolve(x.shape(), w, "avg_pool");
  AxisMap maps[3];
  window_maps(g, maps);
  const double scale = 1.0 / static_cast<double>(g.k[0] * g.k[1] * g.k[2]);
  return run_separable(x, maps, scale, with_spatial(x.shape(), g, true), "avg_pool");
}

Tensor avg_pool_adjoint(const Tensor& grad, const Shape& in_shape, const PoolWindow& w) {
  check_input(grad, "avg_pool_adjoint");
  PoolGeometry g = resolve(in_shape, w, "avg_pool_adjoint");
  Shape os = with_spatial(in_shape, g, true);
  DFX_CHECK(grad.shape() == os, "avg_pool_adjoint: gradient ", grad.describe(),
            " does not match the pooled shape ", os, " of input shape ", in_shape);
  AxisMap maps[3];
  window_maps(g, maps);
  for (AxisMap& m : maps) m = m.transposed();
  const double scale = 1.0 / static_cast<double>(g.k[0] * g.k[1] * g.k[2]);
  return run_separable(grad, maps, scale, in_shape, "avg_pool_adjoint");
}

namespace {
std::vector<int64_t> check_scale(const Tensor& x, const std::vector<int64_t>& scale,
                                 const char* op) {
  check_input(x, op);
  DFX_CHECK(!scale.empty(), op, ": empty scale");
  std::vector<int64_t> s = per_dim(scale, x.dim() - 2, op, "scale");
  for (int64_t v : s) DFX_CHECK(v >= 1, op, ": scale ", Shape(s), " must be >= 1");
  return s;
}
}  // namespace

Tensor upsample(const Tensor& x, const std::vector<int64_t>& scale, UpsampleMode mode) {
  std::vector<int64_t> s = check_scale(x, scale, "upsample");
  const int nsp = x.dim() - 2;
  AxisMap maps[3];
  Shape os{x.shape()[0], x.shape()[1]};
  for (int i = 0; i < nsp; ++i) {
    maps[3 - nsp + i] = upsample_map(x.shape()[2 + i], s[i], mode);
    os.push_back(x.shape()[2 + i] * s[i]);
  }
  return run_separable(x, maps, 1.0, os, "upsample");
}

Tensor upsample_adjoint(const Tensor& g, const std::vector<int64_t>& scale, UpsampleMode mode) {
  std::vector<int64_t> s = check_scale(g, scale, "upsample_adjoint");
  const int nsp = g.dim() - 2;
  AxisMap maps[3];
  Shape is{g.shape()[0], g.shape()[1]};
  for (int i = 0; i < nsp; ++i) {
    const int64_t o = g.shape()[2 + i];
    DFX_CHECK(o % s[i] == 0, "upsample_adjoint: gradient ", g.describe(),
              " is not a multiple of the scale ", Shape(s));
    maps[3 - nsp + i] = upsample_map(o / s[i], s[i], mode).transposed();
    is.push_back(o / s[i]);
  }
  return run_separable(g, maps, 1.0, is, "upsample_adjoint");
}

}  // namespace dfx::kernels
