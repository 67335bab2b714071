// core/copy.cpp — strided copy with broadcasting and dtype conversion, fill, and the CPU<->CUDA
// transfers (through a contiguous staging copy on the side that needs it).
#include "core/copy.h"

#include "core/cuda_runtime.h"
#include "core/dispatch.h"
#include "core/strided_loop.h"

namespace dfx {
namespace {

template <class D, class S>
inline D convert(S v) {
  if constexpr (std::is_same_v<D, bool>) return v != S(0);
  else return static_cast<D>(v);
}

void copy_cpu(const Tensor& dst, const Tensor& src) {
  Tensor s = src.expand(dst.shape());
  dispatch_all(dst.dtype(), "copy_", [&](auto dz) {
    using D = decltype(dz);
    dispatch_all(s.dtype(), "copy_", [&](auto sz) {
      using S = decltype(sz);
      D* d = static_cast<D*>(dst.raw_data());
      const S* p = static_cast<const S*>(s.raw_data());
      detail::for_each_chunk<2>(dst.shape(), {&dst.strides(), &s.strides()},
                                [&](auto off, auto inner, int64_t n) {
                                  D* dd = d + off[0];
                                  const S* pp = p + off[1];
                                  if (inner[0] == 1 && inner[1] == 1) {
                                    for (int64_t i = 0; i < n; ++i) dd[i] = convert<D>(pp[i]);
                                  } else {
                                    for (int64_t i = 0; i < n; ++i)
                                      dd[i * inner[0]] = convert<D>(pp[i * inner[1]]);
                                  }
                                });
    });
  });
}

}  // namespace

void copy_(const Tensor& dst, const Tensor& src) { copy_(dst, src, /*non_blocking=*/false); }

void copy_(const Tensor& dst, const Tensor& src, bool non_blocking) {
  DFX_CHECK(dst.defined() && src.defined(), "copy_: undefined tensor (dst ", dst.describe(),
            ", src ", src.describe(), ")");
  broadcast_shapes(src.shape(), dst.shape(), "copy_");
  const Device dd = dst.device(), sd = src.device();
  if (dd.is_cpu() && sd.is_cpu()) return copy_cpu(dst, src);
  if (dd == sd) return cuda::copy_strided(dst, src);
  // Cross-device: move contiguous bytes of src's dtype and shape, then fix layout/dtype locally.
  Tensor s = src.contiguous();
  const bool same_layout =
      dst.is_contiguous() && dst.dtype() == s.dtype() && dst.shape() == s.shape();
  if (dd.is_cpu()) {
    if (non_blocking && same_layout && dst.is_pinned()) {
      cuda::copy_bytes_async(dst.raw_data(), s.raw_data(), s.nbytes(),
                             cuda::CopyKind::DeviceToHost, sd.index);
      return;
    }
    // Straight into dst when it has src's layout; else through a host staging copy.
    Tensor staging = same_layout ? dst : Tensor::empty(s.shape(), s.dtype(), Device::cpu());
    cuda::copy_bytes(staging.raw_data(), s.raw_data(), s.nbytes(), cuda::CopyKind::DeviceToHost,
                     sd.index);
    if (!same_layout) copy_cpu(dst, staging);
    return;
  }
  if (sd.is_cpu()) {
    Tensor staging = same_layout ? dst : Tensor::empty(s.shape(), s.dtype(), dd);
    if (non_blocking) {
      // The pinned copy's storage may die with this scope: the pinned cache reuses a block only
      // after the stream has passed the copy that reads it.
      Tensor host = s.is_pinned() ? s : s.pin_memory();
      cuda::copy_bytes_async(staging.raw_data(), host.raw_data(), host.nbytes(),
                             cuda::CopyKind::HostToDevice, dd.index);
    } else {
      cuda::copy_bytes(staging.raw_data(), s.raw_data(), s.nbytes(), cuda::CopyKind::HostToDevice,
                       dd.index);
    }
    if (!same_layout) cuda::copy_strided(dst, staging);
    return;
  }
  Tensor host = s.cpu();
  copy_(dst, host);  // between two GPUs, through the host (peer copies come with the CUDA work)
}

void fill_(const Tensor& dst, double value) {
  DFX_CHECK(dst.defined(), "fill_: undefined tensor");
  if (dst.device().is_cuda()) return cuda::fill(dst, value);
  dispatch_all(dst.dtype(), "fill_", [&](auto z) {
    using D = decltype(z);
    D v = convert<D>(value);
    D* d = static_cast<D*>(dst.raw_data());
    detail::for_each_chunk<1>(dst.shape(), {&dst.strides()}, [&](auto off, auto inner, int64_t n) {
      D* dd = d + off[0];
      if (inner[0] == 1) {
        for (int64_t i = 0; i < n; ++i) dd[i] = v;
      } else {
        for (int64_t i = 0; i < n; ++i) dd[i * inner[0]] = v;
      }
    });
  });
}

}  // namespace dfx
