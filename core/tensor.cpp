// core/tensor.cpp — Tensor views, copies, element access, printing and factories.
#include "core/tensor.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <sstream>

#include "core/copy.h"

namespace dfx {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t acc = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(shape[i], 1);
  }
  return st;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    DFX_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b,
              " do not broadcast (dim ", i, " of the result: ", da, " vs ", db,
              "; expected equal sizes or one of them 1)");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int wrap_dim(int64_t dim, int ndim, const char* op) {
  int64_t lo = -std::max(ndim, 1), hi = std::max(ndim, 1) - 1;
  DFX_CHECK(dim >= lo && dim <= hi, op, ": dim ", dim, " out of range for a ", ndim,
            "-d tensor (expected ", lo, "..", hi, ")");
  return static_cast<int>(dim < 0 ? dim + std::max(ndim, 1) : dim);
}

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset,
               DType dtype)
    : storage_(std::move(storage)),
      shape_(std::move(shape)),
      strides_(std::move(strides)),
      offset_(offset),
      dtype_(dtype) {
  DFX_CHECK(shape_.size() <= static_cast<size_t>(kMaxDims), "Tensor: ", shape_.size(),
            " dims in shape ", shape_, "; at most ", kMaxDims, " are supported");
  DFX_CHECK(shape_.size() == strides_.size(), "Tensor: shape ", shape_, " and strides ", strides_,
            " differ in length");
  for (int64_t s : shape_) DFX_CHECK(s >= 0, "Tensor: negative size in shape ", shape_);
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  DFX_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), "empty: ", shape.size(),
            " dims in shape ", shape, "; at most ", kMaxDims, " are supported");
  for (int64_t s : shape) DFX_CHECK(s >= 0, "empty: negative size in shape ", shape);
  auto storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), device);
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

// Visits dims in channels-last order (C, then the spatial dims innermost first, then N) with the
// dense stride each would have: f(dim, stride) returns false to stop. Allocation-free, since
// elementwise ops ask on every call.
template <class F>
static bool for_channels_last_dims(const Shape& shape, F&& f) {
  const int nd = static_cast<int>(shape.size());
  int64_t s = 1;
  if (!f(1, s)) return false;
  s *= std::max<int64_t>(shape[1], 1);
  for (int d = nd - 1; d >= 2; --d) {
    if (!f(d, s)) return false;
    s *= std::max<int64_t>(shape[d], 1);
  }
  return f(0, s);
}

Shape channels_last_strides(const Shape& shape) {
  DFX_CHECK(shape.size() >= 3 && shape.size() <= 5, "channels_last_strides: expected 3 to 5 dims "
            "([N, C, *S] with 1 to 3 spatial dims), got shape ", shape);
  Shape st(shape.size());
  for_channels_last_dims(shape, [&](int d, int64_t stride) {
    st[d] = stride;
    return true;
  });
  return st;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device, MemoryFormat format) {
  if (format == MemoryFormat::Contiguous) return empty(shape, dtype, device);
  Tensor t = empty(shape, dtype, device);
  return Tensor(t.storage_, shape, channels_last_strides(shape), 0, dtype);
}

Tensor Tensor::empty_pinned(const Shape& shape, DType dtype) {
  DFX_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), "empty_pinned: ", shape.size(),
            " dims in shape ", shape, "; at most ", kMaxDims, " are supported");
  for (int64_t s : shape) DFX_CHECK(s >= 0, "empty_pinned: negative size in shape ", shape);
  auto storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), Device::cpu(),
                                           /*pinned=*/true);
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Device Tensor::device() const { return storage_ ? storage_->device() : Device::cpu(); }

int64_t Tensor::size(int64_t d) const { return shape_[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides_[wrap_dim(d, dim(), "stride")]; }

void* Tensor::raw_data() const {
  DFX_CHECK(defined(), "data: the tensor is undefined");
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(itemsize());
}

void Tensor::check_dtype(DType expected, const char* op) const {
  DFX_CHECK(dtype_ == expected, op, ": expected ", dtype_name(expected), ", got ", describe());
}

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // nothing to read: dense in every layout (as PyTorch)
  int64_t expect = 1;
  for (int i = dim() - 1; i >= 0; --i) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expect) return false;
    expect *= shape_[i];
  }
  return true;
}

bool Tensor::is_contiguous(MemoryFormat format) const {
  if (format == MemoryFormat::Contiguous) return is_contiguous();
  if (dim() < 3 || dim() > 5) return false;
  if (numel() == 0) return true;
  return for_channels_last_dims(shape_, [&](int d, int64_t want) {
    return shape_[d] == 1 || strides_[d] == want;
  });
}

MemoryFormat Tensor::suggest_memory_format() const {
  if (dim() < 3 || dim() > 5) return MemoryFormat::Contiguous;
  const bool contiguous = is_contiguous();
  if (!contiguous && is_contiguous(MemoryFormat::ChannelsLast)) return MemoryFormat::ChannelsLast;
  // Where one channel makes both layouts dense, the exact strides decide (Module::to lays
  // weights out with exact channels-last strides, so a 1-channel conv follows the model).
  if (!contiguous) return MemoryFormat::Contiguous;
  const bool exact_cl = for_channels_last_dims(shape_, [&](int d, int64_t want) {
    return strides_[d] == want;
  });
  if (!exact_cl) return MemoryFormat::Contiguous;
  int64_t expect = 1;  // exactly the contiguous strides as well (every dim but N of size 1)?
  for (int i = dim() - 1; i >= 0; --i) {
    if (strides_[i] != expect) return MemoryFormat::ChannelsLast;
    expect *= std::max<int64_t>(shape_[i], 1);
  }
  return MemoryFormat::Contiguous;
}

bool Tensor::same_layout(const Tensor& other) const {
  if (shape_ != other.shape_) return false;
  for (int i = 0; i < dim(); ++i)
    if (shape_[i] != 1 && strides_[i] != other.strides_[i]) return false;
  return true;
}

static Shape infer_shape(const Shape& shape, int64_t numel, const char* op, const Shape& from) {
  Shape out = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      DFX_CHECK(infer < 0, op, ": more than one -1 in ", shape);
      infer = static_cast<int>(i);
    } else {
      DFX_CHECK(out[i] >= 0, op, ": negative size in ", shape);
      known *= out[i];
    }
  }
  if (infer >= 0) {
    DFX_CHECK(known != 0 && numel % known == 0, op, ": cannot infer -1 in ", shape, " for ",
              numel, " elements (from ", from, ")");
    out[infer] = numel / known;
  }
  DFX_CHECK(shape_numel(out) == numel, op, ": shape ", shape, " has ", shape_numel(out),
            " elements but the tensor ", from, " has ", numel);
  return out;
}

// Strides for viewing (shape_, strides_) as `target` without copying, if possible. Walks chunks of
// dims that are mutually contiguous in the source and splits/merges within each chunk.
static bool view_strides(const Shape& shape, const Shape& strides, const Shape& target,
                         Shape& out) {
  out.assign(target.size(), 0);
  if (shape_numel(shape) <= 1) {
    out = contiguous_strides(target);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(target.size()) - 1;
  int64_t chunk_base_stride = strides.empty() ? 1 : strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || target[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= target[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Tensor Tensor::view(const Shape& shape) const {
  Shape target = infer_shape(shape, numel(), "view", shape_);
  Shape st;
  DFX_CHECK(view_strides(shape_, strides_, target, st), "view: cannot view ", describe(),
            " with strides ", strides_, " as ", target,
            " without copying; expected compatible strides (use reshape to allow a copy)");
  return Tensor(storage_, target, st, offset_, dtype_);
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape target = infer_shape(shape, numel(), "reshape", shape_);
  Shape st;
  if (view_strides(shape_, strides_, target, st)) return Tensor(storage_, target, st, offset_, dtype_);
  return contiguous().view(target);
}

Tensor Tensor::permute(const std::vector<int>& dims) const {
  DFX_CHECK(static_cast<int>(dims.size()) == dim(), "permute: ", dims.size(),
            " dims given for a ", dim(), "-d tensor ", describe());
  Shape sh(dim()), st(dim());
  std::vector<bool> seen(dim(), false);
  for (int i = 0; i < dim(); ++i) {
    int d = wrap_dim(dims[i], dim(), "permute");
    DFX_CHECK(!seen[d], "permute: dim ", d, " repeated");
    seen[d] = true;
    sh[i] = shape_[d];
    st[i] = strides_[d];
  }
  return Tensor(storage_, sh, st, offset_, dtype_);
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  int a = wrap_dim(d0, dim(), "transpose"), b = wrap_dim(d1, dim(), "transpose");
  Shape sh = shape_, st = strides_;
  std::swap(sh[a], sh[b]);
  std::swap(st[a], st[b]);
  return Tensor(storage_, sh, st, offset_, dtype_);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  DFX_CHECK(dim() > 0, "narrow: a 0-d tensor has no dim to narrow");
  int a = wrap_dim(d, dim(), "narrow");
  if (start < 0) start += shape_[a];
  DFX_CHECK(start >= 0 && length >= 0 && start + length <= shape_[a], "narrow: [", start, ", ",
            start + length, ") out of range for dim ", a, " of ", describe());
  Shape sh = shape_;
  sh[a] = length;
  return Tensor(storage_, sh, strides_, offset_ + start * strides_[a], dtype_);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  DFX_CHECK(dim() > 0, "slice: a 0-d tensor has no dim to slice");
  int a = wrap_dim(d, dim(), "slice");
  DFX_CHECK(step > 0, "slice: step must be positive, got ", step);
  int64_t n = shape_[a];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sh = shape_, st = strides_;
  sh[a] = (end - start + step - 1) / step;
  st[a] = strides_[a] * step;
  return Tensor(storage_, sh, st, offset_ + start * strides_[a], dtype_);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  DFX_CHECK(dim() > 0, "select: a 0-d tensor has no dim to select");
  int a = wrap_dim(d, dim(), "select");
  if (index < 0) index += shape_[a];
  DFX_CHECK(index >= 0 && index < shape_[a], "select: index ", index, " out of range for dim ", a,
            " of ", describe());
  Shape sh = shape_, st = strides_;
  sh.erase(sh.begin() + a);
  st.erase(st.begin() + a);
  return Tensor(storage_, sh, st, offset_ + index * strides_[a], dtype_);
}

Tensor Tensor::expand(const Shape& shape) const {
  DFX_CHECK(shape.size() >= shape_.size(), "expand: cannot expand ", describe(), " to ", shape,
            " (fewer dims)");
  const size_t lead = shape.size() - shape_.size();
  Shape sh(shape.size()), st(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      DFX_CHECK(shape[i] >= 0, "expand: new leading dim ", i, " must be >= 0 in ", shape);
      sh[i] = shape[i];
      continue;
    }
    int64_t have = shape_[i - lead];
    int64_t want = shape[i] == -1 ? have : shape[i];
    DFX_CHECK(have == want || have == 1, "expand: cannot expand ", describe(), " to ", shape,
              " (dim ", i, ": ", have, " vs ", want, "; expected equal or 1)");
    sh[i] = want;
    st[i] = have == want ? strides_[i - lead] : 0;
  }
  return Tensor(storage_, sh, st, offset_, dtype_);
}

Tensor Tensor::squeeze() const {
  Shape sh, st;
  for (int i = 0; i < dim(); ++i)
    if (shape_[i] != 1) {
      sh.push_back(shape_[i]);
      st.push_back(strides_[i]);
    }
  return Tensor(storage_, sh, st, offset_, dtype_);
}

Tensor Tensor::squeeze(int64_t d) const {
  int a = wrap_dim(d, dim(), "squeeze");
  if (shape_[a] != 1) return *this;
  Shape sh = shape_, st = strides_;
  sh.erase(sh.begin() + a);
  st.erase(st.begin() + a);
  return Tensor(storage_, sh, st, offset_, dtype_);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  int a = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape sh = shape_, st = strides_;
  int64_t s = a < dim() ? strides_[a] * shape_[a] : 1;
  sh.insert(sh.begin() + a, 1);
  st.insert(st.begin() + a, s);
  return Tensor(storage_, sh, st, offset_, dtype_);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::contiguous(MemoryFormat format) const {
  if (is_contiguous(format)) return *this;
  Tensor out = Tensor::empty(shape_, dtype_, device(), format);
  copy_(out, *this);
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(shape_, dtype_, device());
  copy_(out, *this);
  return out;
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor out = Tensor::empty(shape_, dtype_, device);
  copy_(out, *this);
  return out;
}

namespace {
std::atomic<int64_t> g_host_accesses{0};
void note_host_access() { g_host_accesses.fetch_add(1, std::memory_order_relaxed); }
}  // namespace

int64_t host_access_count() { return g_host_accesses.load(std::memory_order_relaxed); }

Tensor Tensor::cpu() const {
  note_host_access();
  return to(Device::cpu());
}

Tensor Tensor::to(Device device, bool non_blocking) const {
  if (!non_blocking) return to(device);
  if (device == this->device()) return *this;
  Tensor out = device.is_cpu() ? Tensor::empty_pinned(shape_, dtype_)
                               : Tensor::empty(shape_, dtype_, device);
  copy_(out, *this, /*non_blocking=*/true);
  return out;
}

Tensor Tensor::pin_memory() const {
  DFX_CHECK(device().is_cpu(), "pin_memory: ", describe(), " is not a CPU tensor");
  if (is_pinned() && is_contiguous()) return *this;
  Tensor out = Tensor::empty_pinned(shape_, dtype_);
  copy_(out, *this);
  return out;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor out = Tensor::empty(shape_, dtype, device());
  copy_(out, *this);
  return out;
}

static int64_t element_offset(const Tensor& t, const std::vector<int64_t>& index, const char* op) {
  DFX_CHECK(static_cast<int>(index.size()) == t.dim(), op, ": ", index.size(),
            " indices for ", t.describe());
  int64_t off = t.offset();
  for (int i = 0; i < t.dim(); ++i) {
    int64_t k = index[i] < 0 ? index[i] + t.shape()[i] : index[i];
    DFX_CHECK(k >= 0 && k < t.shape()[i], op, ": index ", index[i], " out of range for dim ", i,
              " of ", t.describe());
    off += k * t.strides()[i];
  }
  return off;
}

static double load(const void* base, int64_t off, DType dt) {
  switch (dt) {
    case DType::Float32: return static_cast<const float*>(base)[off];
    case DType::Float64: return static_cast<const double*>(base)[off];
    case DType::Int64: return static_cast<double>(static_cast<const int64_t*>(base)[off]);
    case DType::Bool: return static_cast<const bool*>(base)[off] ? 1.0 : 0.0;
    default: DFX_FAIL("element access: dtype ", dtype_name(dt), " has no CPU kernels yet");
  }
}

double Tensor::get(const std::vector<int64_t>& index) const {
  DFX_CHECK(device().is_cpu(), "get: element access needs a CPU tensor, got ", describe(),
            " (call .cpu() first)");
  note_host_access();
  return load(storage_->data(), element_offset(*this, index, "get"), dtype_);
}

void Tensor::set(const std::vector<int64_t>& index, double v) {
  DFX_CHECK(device().is_cpu(), "set: element access needs a CPU tensor, got ", describe());
  note_host_access();
  int64_t off = element_offset(*this, index, "set");
  void* base = storage_->data();
  switch (dtype_) {
    case DType::Float32: static_cast<float*>(base)[off] = static_cast<float>(v); break;
    case DType::Float64: static_cast<double*>(base)[off] = v; break;
    case DType::Int64: static_cast<int64_t*>(base)[off] = static_cast<int64_t>(v); break;
    case DType::Bool: static_cast<bool*>(base)[off] = v != 0.0; break;
    default: DFX_FAIL("set: dtype ", dtype_name(dtype_), " has no CPU kernels yet");
  }
}

double Tensor::item() const {
  DFX_CHECK(numel() == 1, "item: expected a tensor with one element, got ", describe());
  Tensor c = cpu().contiguous();
  return load(c.raw_data(), 0, dtype_);
}

std::vector<double> Tensor::to_vector() const {
  Tensor c = cpu().to(DType::Float64).contiguous();
  const double* p = c.data<double>();
  return std::vector<double>(p, p + c.numel());
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  std::ostringstream os;
  os << dtype_name(dtype_) << shape_ << " on " << device().str();
  return os.str();
}

static void print_rec(std::ostringstream& os, const Tensor& c, const std::vector<double>& v,
                      int d, int64_t base, int64_t max_per_dim, int indent) {
  const int64_t n = c.shape()[d];
  const int64_t stride = c.strides()[d];
  os << '[';
  for (int64_t i = 0; i < n; ++i) {
    if (n > max_per_dim && i == max_per_dim / 2) {
      os << (d + 1 == c.dim() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - max_per_dim / 2;
    }
    if (d + 1 == c.dim()) {
      double x = v[base + i * stride];
      if (is_floating(c.dtype())) os << std::setprecision(6) << x;
      else if (c.dtype() == DType::Bool) os << (x != 0 ? "true" : "false");
      else os << static_cast<int64_t>(x);
    } else {
      print_rec(os, c, v, d + 1, base + i * stride, max_per_dim, indent + 1);
    }
    if (i + 1 < n) os << (d + 1 == c.dim() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << ']';
}

std::string Tensor::str(int64_t max_per_dim) const {
  if (!defined()) return "tensor(undefined)";
  std::ostringstream os;
  os << "tensor(";
  Tensor c = contiguous();
  std::vector<double> v = c.to_vector();
  if (dim() == 0) {
    os << v[0];
  } else {
    Tensor cc = Tensor(c.storage(), c.shape(), contiguous_strides(c.shape()), 0, c.dtype());
    print_rec(os, cc, v, 0, 0, max_per_dim, 7);
  }
  os << ", " << describe() << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  fill_(t, value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor scalar_tensor(double value, DType dtype, Device device) { return full({}, value, dtype, device); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor full_like(const Tensor& t, double v) { return full(t.shape(), v, t.dtype(), t.device()); }
Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }

Tensor arange(double start, double end, double step, DType dtype, Device device) {
  DFX_CHECK(step != 0, "arange: step must be non-zero");
  int64_t n = static_cast<int64_t>(std::ceil((end - start) / step));
  n = std::max<int64_t>(n, 0);
  Tensor t = Tensor::empty({n}, DType::Float64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < n; ++i) p[i] = start + static_cast<double>(i) * step;
  return t.to(dtype).to(device);
}

Tensor linspace(double start, double end, int64_t steps, DType dtype, Device device) {
  DFX_CHECK(steps >= 0, "linspace: steps must be >= 0, got ", steps);
  Tensor t = Tensor::empty({steps}, DType::Float64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < steps; ++i)
    p[i] = steps == 1 ? start : start + (end - start) * static_cast<double>(i) / (steps - 1);
  if (steps > 1) p[steps - 1] = end;
  return t.to(dtype).to(device);
}

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  DFX_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ",
            values.size(), " values for shape ", shape, " (", shape_numel(shape), " elements)");
  note_host_access();
  Tensor t = Tensor::empty(shape, dtype_of<T>::value);
  T* p = t.data<T>();
  for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return t.to(device);
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, Device);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, Device);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, Device);
template <>
Tensor from_vector<bool>(const std::vector<bool>& values, const Shape& shape, Device device) {
  DFX_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ",
            values.size(), " values for shape ", shape);
  note_host_access();
  Tensor t = Tensor::empty(shape, DType::Bool);
  bool* p = t.data<bool>();
  for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return t.to(device);
}

}  // namespace dfx
