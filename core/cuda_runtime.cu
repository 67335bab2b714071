// core/cuda_runtime.cu — the CUDA side of core: device queries, the caching device allocator with
// its statistics, byte copies, and the strided copy (broadcast + dtype conversion) and fill
// kernels behind dfx::copy_ / dfx::fill_ for tensors on a GPU.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "core/cuda_check.h"
#include "core/cuda_loop.cuh"
#include "core/cuda_runtime.h"

namespace dfx::cuda {

bool is_built() { return true; }

int device_count() {
  // The visible device set is fixed for the life of a process (CUDA_VISIBLE_DEVICES is read at
  // driver initialisation), so one query suffices.
  static const int count = [] {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();  // no driver or no device is an answer (0), not an error
      return 0;
    }
    return n;
  }();
  return count;
}

namespace {

void check_device_index(int device, const char* op) {
  const int n = device_count();
  DFX_CHECK(device >= 0 && device < n, op, ": cuda:", device, " does not exist (", n,
            " CUDA device", n == 1 ? "" : "s", " visible)");
}

}  // namespace

std::string device_name(int index) {
  check_device_index(index, "device_name");
  cudaDeviceProp prop{};
  DFX_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return prop.name;
}

// ---- caching allocator ---------------------------------------------------------------------
// cudaMalloc/cudaFree are slow and cudaFree synchronises the device, so freed blocks are kept in
// per-device free lists keyed by their size class and handed out again for the next request of
// the same class. Everything runs on the legacy default stream for now, which orders a block's
// next use after every kernel that touched it, so reuse needs no events. Streams will need them.
namespace {

constexpr size_t kSmallQuantum = 512;               // size classes below kLargeThreshold
constexpr size_t kLargeThreshold = size_t(1) << 20; // 1 MiB
constexpr size_t kLargeQuantum = size_t(2) << 20;   // 2 MiB classes above it

size_t size_class(size_t nbytes) {
  if (nbytes == 0) return kSmallQuantum;  // a real, distinct pointer even for empty tensors
  const size_t q = nbytes < kLargeThreshold ? kSmallQuantum : kLargeQuantum;
  return (nbytes + q - 1) / q * q;
}

struct DeviceCache {
  std::multimap<size_t, void*> free_blocks;      // size class -> cached block
  std::unordered_map<void*, size_t> live_blocks; // handed-out block -> its size class
  MemoryStats stats;                             // current/peak count size-class bytes
};

class CachingAllocator {
 public:
  void* allocate(size_t nbytes, int device) {
    check_device_index(device, "device_alloc");
    DFX_CHECK(nbytes <= std::numeric_limits<size_t>::max() - kLargeQuantum,
              "device_alloc: request of ", nbytes, " bytes on cuda:", device, " is too large");
    const size_t bytes = size_class(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceCache& c = caches_[device];
    void* ptr = nullptr;
    auto it = c.free_blocks.find(bytes);
    if (it != c.free_blocks.end()) {
      ptr = it->second;
      c.free_blocks.erase(it);
    } else {
      ptr = malloc_with_retry(c, nbytes, bytes, device);
      c.stats.reserved_bytes += bytes;
    }
    c.live_blocks.emplace(ptr, bytes);
    c.stats.current_bytes += bytes;
    if (c.stats.current_bytes > c.stats.peak_bytes) c.stats.peak_bytes = c.stats.current_bytes;
    return ptr;
  }

  // Never throws: it runs from Storage's destructor.
  void free(void* ptr, int device) {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceCache& c = caches_[device];
    auto it = c.live_blocks.find(ptr);
    if (it == c.live_blocks.end()) {
      std::fprintf(stderr, "dfx: device_free: %p is not a live block of cuda:%d; ignored\n", ptr,
                   device);
      return;
    }
    const size_t bytes = it->second;
    c.live_blocks.erase(it);
    c.stats.current_bytes -= bytes;
    c.free_blocks.emplace(bytes, ptr);
  }

  MemoryStats stats(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = caches_.find(device);
    return it == caches_.end() ? MemoryStats{} : it->second.stats;
  }

  void reset_peak(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = caches_.find(device);
    if (it != caches_.end()) it->second.stats.peak_bytes = it->second.stats.current_bytes;
  }

  void empty_cache(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = caches_.find(device);
    if (it == caches_.end()) return;
    DeviceGuard guard(device);
    release_cached(it->second);
  }

 private:
  // Caller holds mutex_ and has made `device` current (or is about to, for cudaMalloc).
  void release_cached(DeviceCache& c) {
    while (!c.free_blocks.empty()) {
      auto it = c.free_blocks.begin();
      DFX_CUDA_CHECK(cudaFree(it->second));
      c.stats.reserved_bytes -= it->first;
      c.free_blocks.erase(it);
    }
  }

  void* malloc_with_retry(DeviceCache& c, size_t nbytes, size_t bytes, int device) {
    DeviceGuard guard(device);
    void* ptr = nullptr;
    cudaError_t err = cudaMalloc(&ptr, bytes);
    if (err == cudaErrorMemoryAllocation) {
      // Cached blocks of other size classes may add up to enough: give them back and try once more.
      (void)cudaGetLastError();
      release_cached(c);
      err = cudaMalloc(&ptr, bytes);
    }
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      std::string driver;
      if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
        driver = ::dfx::detail::cat("; the driver reports ", free_b, " of ", total_b,
                                    " bytes free");
      } else {
        (void)cudaGetLastError();
      }
      DFX_FAIL("device_alloc: CUDA out of memory on cuda:", device, " asking for ", nbytes,
               " bytes (size class ", bytes, "); dfx holds ", c.stats.current_bytes,
               " bytes in live tensors and ", c.stats.reserved_bytes,
               " bytes reserved after releasing its cache", driver);
    }
    check_impl::check(err, "cudaMalloc(&ptr, bytes)", __FILE__, __LINE__);
    return ptr;
  }

  std::mutex mutex_;
  std::unordered_map<int, DeviceCache> caches_;
};

// Never destroyed: tensors held in static objects may be freed after this file's statics would
// be, and calling cudaFree while the runtime tears itself down at exit fails. The driver
// reclaims all device memory when the process ends.
CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

}  // namespace

void* device_alloc(size_t nbytes, int device) { return allocator().allocate(nbytes, device); }
void device_free(void* ptr, size_t, int device) { allocator().free(ptr, device); }
MemoryStats device_memory_stats(int device) { return allocator().stats(device); }
void reset_device_peak(int device) { allocator().reset_peak(device); }
void empty_cache(int device) { allocator().empty_cache(device); }

// ---- transfers -----------------------------------------------------------------------------

void copy_bytes(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) {
  if (nbytes == 0) return;
  check_device_index(device, "copy_bytes");
  DeviceGuard guard(device);
  cudaMemcpyKind k = kind == CopyKind::HostToDevice   ? cudaMemcpyHostToDevice
                     : kind == CopyKind::DeviceToHost ? cudaMemcpyDeviceToHost
                                                      : cudaMemcpyDeviceToDevice;
  DFX_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, k));
}

void synchronize(int device) {
  check_device_index(device, "synchronize");
  DeviceGuard guard(device);
  DFX_CUDA_CHECK(cudaDeviceSynchronize());
}

// ---- strided copy and fill -----------------------------------------------------------------
namespace {

template <class D, class S>
__device__ __forceinline__ D convert(S v) {
  if constexpr (std::is_same_v<D, bool>) return v != S(0);
  else return static_cast<D>(v);
}

template <class D, class S, class Index>
__global__ void copy_kernel(D* dst, const S* src, StridedPlan<2> plan, Index n) {
  const Index step = static_cast<Index>(blockDim.x) * gridDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[2];
    strided_offsets<Index, 2>(plan, i, off);
    dst[off[0]] = convert<D>(src[off[1]]);
  }
}

template <class D, class Index>
__global__ void fill_kernel(D* dst, D value, StridedPlan<1> plan, Index n) {
  const Index step = static_cast<Index>(blockDim.x) * gridDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[1];
    strided_offsets<Index, 1>(plan, i, off);
    dst[off[0]] = value;
  }
}

template <class F>
void dispatch_dtype(DType t, const char* op, const Tensor& which, F&& f) {
  switch (t) {
    case DType::Float32: f(float{}); break;
    case DType::Float64: f(double{}); break;
    case DType::Int64: f(int64_t{}); break;
    case DType::Bool: f(bool{}); break;
    default: DFX_FAIL(op, ": dtype ", dtype_name(t), " has no CUDA kernel yet (", which.describe(),
                      ")");
  }
}

void check_on_cuda(const Tensor& t, const char* op) {
  DFX_CHECK(t.defined() && t.device().is_cuda(), op, ": expected a CUDA tensor, got ",
            t.describe());
}

}  // namespace

void copy_strided(const Tensor& dst, const Tensor& src) {
  check_on_cuda(dst, "copy_");
  check_on_cuda(src, "copy_");
  DFX_CHECK(dst.device() == src.device(), "copy_: ", dst.describe(), " and ", src.describe(),
            " are on different devices (cuda::copy_strided copies within one GPU)");
  const int64_t n = dst.numel();
  if (n == 0) return;
  Tensor s = src.expand(dst.shape());
  DeviceGuard guard(dst.device().index);
  // Same layout and dtype without aliasing: one driver copy beats a kernel.
  if (s.dtype() == dst.dtype() && s.is_contiguous() && dst.is_contiguous() &&
      s.shape() == dst.shape() && !s.shares_storage(dst)) {
    DFX_CUDA_CHECK(cudaMemcpy(dst.raw_data(), s.raw_data(), dst.nbytes(),
                              cudaMemcpyDeviceToDevice));
    return;
  }
  StridedPlan<2> plan = make_strided_plan<2>(dst.shape(), {&dst.strides(), &s.strides()});
  dispatch_dtype(dst.dtype(), "copy_", dst, [&](auto dz) {
    using D = decltype(dz);
    dispatch_dtype(s.dtype(), "copy_", src, [&](auto sz) {
      using S = decltype(sz);
      D* d = static_cast<D*>(dst.raw_data());
      const S* p = static_cast<const S*>(s.raw_data());
      if (fits_u32(n)) {
        copy_kernel<D, S, uint32_t><<<grid_for(n), kThreads>>>(d, p, plan, uint32_t(n));
      } else {
        copy_kernel<D, S, uint64_t><<<grid_for(n), kThreads>>>(d, p, plan, uint64_t(n));
      }
      DFX_CUDA_CHECK_LAUNCH(::dfx::detail::cat("copy_kernel<", dtype_name(dst.dtype()), " <- ",
                                               dtype_name(s.dtype()), ">"),
                            dst.shape());
    });
  });
}

void fill(const Tensor& dst, double value) {
  check_on_cuda(dst, "fill_");
  const int64_t n = dst.numel();
  if (n == 0) return;
  DeviceGuard guard(dst.device().index);
  StridedPlan<1> plan = make_strided_plan<1>(dst.shape(), {&dst.strides()});
  dispatch_dtype(dst.dtype(), "fill_", dst, [&](auto dz) {
    using D = decltype(dz);
    // Converted on the host exactly as the CPU fill converts, so both give the same bits.
    D v;
    if constexpr (std::is_same_v<D, bool>) v = value != 0.0;
    else v = static_cast<D>(value);
    D* d = static_cast<D*>(dst.raw_data());
    if (fits_u32(n)) {
      fill_kernel<D, uint32_t><<<grid_for(n), kThreads>>>(d, v, plan, uint32_t(n));
    } else {
      fill_kernel<D, uint64_t><<<grid_for(n), kThreads>>>(d, v, plan, uint64_t(n));
    }
    DFX_CUDA_CHECK_LAUNCH(::dfx::detail::cat("fill_kernel<", dtype_name(dst.dtype()), ">"),
                          dst.shape());
  });
}

}  // namespace dfx::cuda
