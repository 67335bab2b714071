// core/tensor.h — the strided, reference-counted n-d array every layer works on.
// A Tensor is a view (shape, strides in elements, storage offset) onto shared Storage, so
// reshape/permute/narrow/expand/squeeze never copy; contiguous() copies only when it must.
// Compute ops live in kernels/; this file holds only what does not compute.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/dtype.h"
#include "core/error.h"

namespace dfx {

using Shape = std::vector<int64_t>;
constexpr int kMaxDims = 8;

int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);

// How the elements of a logical [N, C, *S] tensor lie in memory. The logical shape and every
// op's meaning stay NCHW; ChannelsLast is only a stride layout (N, *S, C outermost to innermost,
// "NHWC"), which tensor-core convolutions want. Elementwise ops keep a channels-last input's
// layout; conv, batch norm and pooling return their result in their input's layout.
enum class MemoryFormat : uint8_t { Contiguous, ChannelsLast };
// Strides of `shape` (3 to 5 dims) in channels-last order.
Shape channels_last_strides(const Shape& shape);
// NumPy broadcasting of two shapes; throws naming `op` and both shapes when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op = "broadcast");
// Wraps a possibly negative dim into [0, ndim); throws naming `op` when out of range.
int wrap_dim(int64_t dim, int ndim, const char* op = "dim");

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() == false
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype);

  static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor empty(const Shape& shape, DType dtype, Device device, MemoryFormat format);
  // A CPU tensor in page-locked memory (needs CUDA): the source or target of asynchronous
  // host<->GPU copies.
  static Tensor empty_pinned(const Shape& shape, DType dtype = DType::Float32);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t size(int64_t dim) const;
  int64_t stride(int64_t dim) const;
  int dim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  int64_t offset() const { return offset_; }
  DType dtype() const { return dtype_; }
  Device device() const;
  size_t itemsize() const { return dtype_size(dtype_); }
  size_t nbytes() const { return numel() * itemsize(); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  bool shares_storage(const Tensor& other) const { return storage_ && storage_ == other.storage_; }

  // Pointer to element 0 of this view (storage base + offset).
  void* raw_data() const;
  template <class T> T* data() const {
    check_dtype(dtype_of<T>::value, "data<T>");
    return static_cast<T*>(raw_data());
  }

  bool is_contiguous() const;
  // ChannelsLast: 3-5 dims laid out densely as N, *S, C (size-1 dims may have any stride).
  bool is_contiguous(MemoryFormat format) const;
  // The layout an op on this tensor should give its result: ChannelsLast when the tensor is
  // channels-last and not also plain contiguous, or (one channel: both) when its strides are
  // exactly channels_last_strides; Contiguous otherwise.
  MemoryFormat suggest_memory_format() const;
  // Same shape and the same strides on every dim of size > 1: element i of one lies where
  // element i of the other does (a flat loop over both storages visits matching elements).
  bool same_layout(const Tensor& other) const;

  // ---- views (share storage) ----
  Tensor view(const Shape& shape) const;     // needs compatible strides; one -1 is inferred
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a contiguous copy
  Tensor flatten() const { return reshape({numel()}); }
  Tensor permute(const std::vector<int>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // drops `dim`
  Tensor expand(const Shape& shape) const;          // NumPy broadcast to `shape`, stride 0
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;

  // ---- copies ----
  Tensor contiguous() const;  // *this if already contiguous
  Tensor contiguous(MemoryFormat format) const;  // *this if already in `format`
  Tensor clone() const;       // always a fresh contiguous copy
  Tensor to(Device device) const;
  // non_blocking: the copy is queued on the current CUDA stream and not waited for (PyTorch's
  // non_blocking=True). To a GPU, a pageable source is first copied into pinned memory, so the
  // caller may reuse it at once; to the CPU, the result is pinned and must not be read before
  // the stream has passed the copy (cuda::current_stream(i).synchronize()).
  Tensor to(Device device, bool non_blocking) const;
  Tensor pin_memory() const;  // a pinned contiguous copy (*this if already pinned); CPU only
  bool is_pinned() const { return storage_ && storage_->pinned(); }
  Tensor to(DType dtype) const;
  Tensor cpu() const;  // to(Device::cpu()), counted by host_access_count()

  // ---- element access (for tests and small tensors; CPU only; not for hot loops) ----
  double item() const;  // numel() == 1
  double get(const std::vector<int64_t>& index) const;
  void set(const std::vector<int64_t>& index, double value);
  template <class T> T at(std::initializer_list<int64_t> index) const {
    return static_cast<T>(get(std::vector<int64_t>(index)));
  }
  std::vector<double> to_vector() const;  // row-major values, any dtype, any device

  std::string str(int64_t max_per_dim = 6) const;
  std::string describe() const;  // "float32[2, 3] on cpu", used in error messages

  void check_dtype(DType expected, const char* op) const;

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::Float32;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// How many times, since the process began, tensor values have crossed between the host and a
// tensor through this API: cpu() (and so item() and to_vector()), get(), set(), from_vector().
// On a GPU each of them is a copy the host waits for; on the CPU they are free. They are counted
// on every device so that a CPU test can assert that a training step makes none, which is what
// keeps the same step free of host waits on a GPU (cuda::host_waits() counts those directly).
int64_t host_access_count();

// ---- factories ----
Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor scalar_tensor(double value, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::Float32,
              Device device = Device::cpu());
Tensor linspace(double start, double end, int64_t steps, DType dtype = DType::Float32,
                Device device = Device::cpu());
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = Device::cpu());
template <>
Tensor from_vector<bool>(const std::vector<bool>& values, const Shape& shape, Device device);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor empty_like(const Tensor& t);

}  // namespace dfx
