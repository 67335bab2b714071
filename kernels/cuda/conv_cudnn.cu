// kernels/cuda/conv_cudnn.cu — the three convolution products through cuDNN's v7-style API
// (still in cuDNN 9: simple, and enough for groups = 1), and the autotuner behind the Auto and
// Cudnn backends of kernels/conv.h:
//   conv             = cudnnConvolutionForward        (+ bias with cudnnAddTensor)
//   conv_transpose   = cudnnConvolutionBackwardData   (+ bias with cudnnAddTensor)
//   conv_weight_grad = cudnnConvolutionBackwardFilter
// 1-d convolutions run as 2-d with a unit height. Descriptors carry the layout (NCHW, or
// channels-last when the data operand is channels-last packed: the other operands are brought to
// it and the output is allocated in it), so NHWC-strided tensors need no copy.
//
// Choosing: the first call of a key (op, dtype, shapes and layouts, geometry, bias, allow_tf32,
// conv_deterministic, device, mode) lists cuDNN's algorithms (cudnnGet*_v7), drops those the
// settings forbid (non-deterministic ones in deterministic mode; FFT/Winograd and tensor-op math
// without TF32), times the rest on the current stream with CUDA events (one warm-up, then up to
// three runs) — and in Auto mode dfx's own kernel the same way — and caches the ranking. Later
// calls run the winner; if its workspace cannot be allocated they take the next one.
#include <cudnn.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/cuda_check.h"
#include "core/cuda_runtime.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/conv.cuh"
#include "kernels/cuda/conv_cudnn.cuh"

namespace dfx::kernels::cuda::cudnn {
namespace {

using ::dfx::detail::cat;

enum class Op { Forward, BackwardData, BackwardFilter };

const char* op_name(Op op) {
  switch (op) {
    case Op::Forward: return "conv (cuDNN forward)";
    case Op::BackwardData: return "conv_transpose (cuDNN backward data)";
    case Op::BackwardFilter: return "conv_weight_grad (cuDNN backward filter)";
  }
  return "?";
}

// Packed layouts cuDNN reads directly. Other strides are made contiguous first.
enum class Layout { Nchw, Nhwc, Other };

const char* layout_name(Layout l) {
  return l == Layout::Nchw ? "nchw" : l == Layout::Nhwc ? "channels-last" : "strided";
}

// Packed strides of `shape` [N, C, *S] in `layout` (Nchw: row-major; Nhwc: C innermost, then the
// spatial dims from last to first, then N).
Shape packed_strides(const Shape& shape, Layout layout) {
  const int r = static_cast<int>(shape.size());
  Shape st(r, 1);
  if (layout == Layout::Nhwc) {
    int64_t acc = shape[1];
    for (int d = r - 1; d >= 2; --d) {
      st[d] = acc;
      acc *= shape[d];
    }
    st[0] = acc;
    st[1] = 1;
  } else {
    for (int d = r - 2; d >= 0; --d) st[d] = st[d + 1] * shape[d + 1];
  }
  return st;
}

// Whether t is packed in `layout`. Size-1 dims do not constrain it (their stride is never used),
// so a tensor with one channel is packed in both.
bool packed_in(const Tensor& t, Layout layout) {
  const Shape want = packed_strides(t.shape(), layout);
  for (int d = 0; d < t.dim(); ++d)
    if (t.size(d) != 1 && t.stride(d) != want[d]) return false;
  return true;
}

// The layout a call runs in is kernels/conv.cpp's memory format of the call (decided from the
// exact strides of both operands there): operands in it are read in place, others are copied to
// it, and the output is allocated in it, so cuDNN sees one layout. A one-channel operand is
// packed in both layouts and follows the call (the U-Net's first conv and its 1x1 head).
Layout call_layout(MemoryFormat fmt) {
  return fmt == MemoryFormat::ChannelsLast ? Layout::Nhwc : Layout::Nchw;
}

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0; }

// Uninitialised [N, C, *S] in `layout` (channels-last: [N, *S, C] storage viewed as NCHW).
Tensor empty_in(const Shape& shape, Layout layout, DType dtype, Device device) {
  if (layout != Layout::Nhwc) return Tensor::empty(shape, dtype, device);
  const int r = static_cast<int>(shape.size());
  Shape storage{shape[0]};
  std::vector<int> back{0, r - 1};
  for (int d = 2; d < r; ++d) storage.push_back(shape[d]);
  storage.push_back(shape[1]);
  for (int d = 1; d < r - 1; ++d) back.push_back(d);
  return Tensor::empty(storage, dtype, device).permute(back);
}

// `t` itself when it is in `layout` and 16-byte aligned (cuDNN's vectorised kernels expect it),
// else a copy that is (fresh blocks from the caching allocator are aligned).
Tensor in_layout(const Tensor& t, Layout layout) {
  if (packed_in(t, layout) && aligned16(t)) return t;
  Tensor r = empty_in(t.shape(), layout, t.dtype(), t.device());
  ::dfx::cuda::copy_strided(r, t);
  return r;
}

// One call in the terms of the conv it derives from: x [N, Cin, *S], w [Cout, Cin, *K],
// y [N, Cout, *S'] — inputs or output depending on the op.
struct Problem {
  Op op = Op::Forward;
  DType dtype = DType::Float32;
  int device = 0;
  Shape x, w, y;
  Layout xl = Layout::Nchw, wl = Layout::Nchw, yl = Layout::Nchw;
  ConvGeometry g;
  bool bias = false, tf32 = false, deterministic = true;

  std::string describe() const {
    return cat(op_name(op), " on ", dtype_name(dtype), " cuda:", device, ": x ", x, " (",
               layout_name(xl), "), w ", w, " (", layout_name(wl), "), y ", y, " (",
               layout_name(yl), "), ", g.str(), bias ? ", bias" : "");
  }
  std::string key(ConvBackend mode) const {
    return cat(describe(), ", tf32 ", tf32 ? "on" : "off", ", deterministic ",
               deterministic ? "on" : "off", ", mode ", conv_backend_name(mode));
  }
};

// ---- errors ----------------------------------------------------------------------------------

[[noreturn]] void cudnn_failed(cudnnStatus_t s, const char* call, const std::string& where,
                               const char* file, int line) {
  std::string detail;
#if CUDNN_VERSION >= 90000
  char msg[512] = {0};
  cudnnGetLastErrorString(msg, sizeof msg);
  if (msg[0]) detail = cat(" (", msg, ")");
#endif
  DFX_FAIL("cuDNN call ", call, " failed at ", file, ":", line, ": ", cudnnGetErrorString(s),
           detail, " in ", where);
}

// DFX_CUDNN_CHECK(cudnnConvolutionForward(...), problem): throws dfx::Error naming the call, the
// op and its shapes. `where` is only described when the call failed.
#define DFX_CUDNN_CHECK(call, where)                                           \
  do {                                                                         \
    const cudnnStatus_t dfx_cudnn_status_ = (call);                            \
    if (dfx_cudnn_status_ != CUDNN_STATUS_SUCCESS)                             \
      cudnn_failed(dfx_cudnn_status_, #call, (where).describe(), __FILE__, __LINE__); \
  } while (0)

bool is_out_of_memory(const Error& e) {
  return std::string(e.what()).find("out of memory") != std::string::npos;
}

// ---- handles ---------------------------------------------------------------------------------
// One handle per device, created on first use and never destroyed (as the caching allocator:
// tearing cuDNN down during static destruction at exit fails). A handle holds one stream at a
// time, so a mutex keeps each set-stream-and-call pair whole when several host threads share it.

struct HandleSlot {
  std::mutex mu;
  cudnnHandle_t h = nullptr;
};

HandleSlot& slot(int device) {
  static std::mutex mu;
  static auto* slots = new std::map<int, std::unique_ptr<HandleSlot>>();
  std::lock_guard<std::mutex> lock(mu);
  std::unique_ptr<HandleSlot>& s = (*slots)[device];
  if (!s) s = std::make_unique<HandleSlot>();
  return *s;
}

// f(handle) with the handle bound to the current stream of `device`.
template <class F>
void with_handle(const Problem& p, F&& f) {
  HandleSlot& s = slot(p.device);
  std::lock_guard<std::mutex> lock(s.mu);
  ::dfx::cuda::DeviceGuard guard(p.device);
  if (!s.h) DFX_CUDNN_CHECK(cudnnCreate(&s.h), p);
  DFX_CUDNN_CHECK(cudnnSetStream(s.h, ::dfx::cuda::current_cuda_stream(p.device)), p);
  f(s.h);
}

// ---- descriptors -----------------------------------------------------------------------------

// Owns one cuDNN descriptor (created by the code that fills it), destroyed once.
template <class Handle, cudnnStatus_t (*Destroy)(Handle)>
struct Desc {
  Handle d = nullptr;
  Desc() = default;
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  ~Desc() {
    if (d) (void)Destroy(d);
  }
};
using TensorDesc = Desc<cudnnTensorDescriptor_t, cudnnDestroyTensorDescriptor>;
using FilterDesc = Desc<cudnnFilterDescriptor_t, cudnnDestroyFilterDescriptor>;
using ConvDesc = Desc<cudnnConvolutionDescriptor_t, cudnnDestroyConvolutionDescriptor>;

cudnnDataType_t data_type(DType t) {
  return t == DType::Float64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
}

// [N, C, *S] -> cuDNN's [N, C, (1,) *S]: a 1-d shape gets a unit height, so cuDNN sees 2-d.
Shape as_nd(const Shape& s) {
  if (s.size() != 3) return s;
  return Shape{s[0], s[1], 1, s[2]};
}

// Why cuDNN cannot take the problem (its v7 API takes int sizes and strides), or "".
std::string unsupported_reason(const Problem& p) {
  if (p.xl == Layout::Other || p.wl == Layout::Other || p.yl == Layout::Other)
    return "an operand is neither NCHW nor channels-last packed";
  for (const Shape* s : {&p.x, &p.w, &p.y}) {
    for (int64_t v : *s)
      if (v > INT_MAX) return cat("size ", *s, " exceeds cuDNN's 32-bit sizes");
    if (shape_numel(*s) > INT_MAX) return cat("tensor ", *s, " has more than 2^31 - 1 elements");
  }
  for (int d = 0; d < p.g.nd; ++d)
    if (p.g.stride[d] > INT_MAX || p.g.padding[d] > INT_MAX || p.g.dilation[d] > INT_MAX)
      return cat(p.g.str(), " exceeds cuDNN's 32-bit parameters");
  return "";
}

std::vector<int> ints(const Shape& s) { return std::vector<int>(s.begin(), s.end()); }

void set_tensor(TensorDesc& t, const Problem& p, const Shape& shape, Layout layout) {
  const Shape s = as_nd(shape);
  const std::vector<int> dims = ints(s), strides = ints(packed_strides(s, layout));
  DFX_CUDNN_CHECK(cudnnCreateTensorDescriptor(&t.d), p);
  DFX_CUDNN_CHECK(cudnnSetTensorNdDescriptor(t.d, data_type(p.dtype), static_cast<int>(dims.size()),
                                             dims.data(), strides.data()),
                  p);
}

// Everything one cuDNN call needs; the data pointers are filled in when the tensors exist.
struct Call {
  Problem p;
  TensorDesc x, y, bias;
  FilterDesc w;
  ConvDesc conv;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;  // the descriptor's math before a candidate's
  const void* bias_ptr = nullptr;
  void *x_ptr = nullptr, *w_ptr = nullptr, *y_ptr = nullptr;
};

void init_call(Call& c) {
  const Problem& p = c.p;
  set_tensor(c.x, p, p.x, p.xl);
  set_tensor(c.y, p, p.y, p.yl);
  const std::vector<int> wd = ints(as_nd(p.w));
  DFX_CUDNN_CHECK(cudnnCreateFilterDescriptor(&c.w.d), p);
  DFX_CUDNN_CHECK(cudnnSetFilterNdDescriptor(
                      c.w.d, data_type(p.dtype),
                      p.wl == Layout::Nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW,
                      static_cast<int>(wd.size()), wd.data()),
                  p);
  if (p.bias) {
    // [1, C, 1, ...] broadcast over the output by cudnnAddTensor; C is the output's channels.
    const int64_t channels = p.op == Op::Forward ? p.y[1] : p.x[1];
    Shape bs(as_nd(p.x).size(), 1);
    bs[1] = channels;
    set_tensor(c.bias, p, bs, Layout::Nchw);
  }
  std::vector<int> pad, stride, dil;
  if (p.g.nd == 1) {  // the unit height
    pad.push_back(0);
    stride.push_back(1);
    dil.push_back(1);
  }
  for (int d = 0; d < p.g.nd; ++d) {
    pad.push_back(static_cast<int>(p.g.padding[d]));
    stride.push_back(static_cast<int>(p.g.stride[d]));
    dil.push_back(static_cast<int>(p.g.dilation[d]));
  }
  DFX_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&c.conv.d), p);
  DFX_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(c.conv.d, static_cast<int>(pad.size()),
                                                  pad.data(), stride.data(), dil.data(),
                                                  CUDNN_CROSS_CORRELATION, data_type(p.dtype)),
                  p);
  // FMA_MATH forbids TF32 for float32 (dfx's default). Float64 has no reduced-precision mode
  // (FP64 tensor cores are IEEE-exact), so it may use any.
  c.math = p.dtype == DType::Float64 ? CUDNN_DEFAULT_MATH
           : p.tf32                  ? CUDNN_TENSOR_OP_MATH
                                     : CUDNN_FMA_MATH;
  DFX_CUDNN_CHECK(cudnnSetConvolutionMathType(c.conv.d, c.math), p);
}

// ---- algorithms ------------------------------------------------------------------------------

const char* algo_name(Op op, int a) {
  static const char* fwd[] = {"IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT",
                              "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
  static const char* data[] = {"ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD",
                               "WINOGRAD_NONFUSED"};
  static const char* filt[] = {"ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD",
                               "WINOGRAD_NONFUSED", "FFT_TILING"};
  switch (op) {
    case Op::Forward: return a >= 0 && a < 8 ? fwd[a] : "?";
    case Op::BackwardData: return a >= 0 && a < 6 ? data[a] : "?";
    case Op::BackwardFilter: return a >= 0 && a < 7 ? filt[a] : "?";
  }
  return "?";
}

// FFT and Winograd transform the operands; their rounding error is well above a direct sum's,
// so they count as reduced precision and run only when the user allowed TF32.
bool is_transform(Op op, int a) {
  switch (op) {
    case Op::Forward:
      return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
             a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD ||
             a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
    case Op::BackwardData:
      return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT ||
             a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
             a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD ||
             a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
    case Op::BackwardFilter:
      return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT ||
             a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
             a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD ||
             a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
  }
  return false;
}

const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH: return "default math";
    case CUDNN_TENSOR_OP_MATH: return "tensor-op math";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "tensor-op math with conversion";
    case CUDNN_FMA_MATH: return "fma math";
  }
  return "?";
}

struct Candidate {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;  // set on the descriptor before running
  bool deterministic = true;
  size_t workspace = 0;
  float ms = -1;        // measured time; < 0 when it did not run
  std::string skipped;  // why it was not timed (empty: it was)

  std::string name(Op op) const {
    return cat("cudnn ", algo_name(op, algo), " (", math_name(math), ")");
  }
};

// cuDNN's algorithms for the problem with the settings' filters applied (a filtered one keeps
// its reason in `skipped`), each with its workspace size.
template <class Perf>
void add_candidates(const Call& c, const Perf* perf, int n, std::vector<Candidate>& out) {
  const Problem& p = c.p;
  const bool fp32_exact = p.dtype == DType::Float32 && !p.tf32;
  for (int i = 0; i < n; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;  // not supported for these shapes
    Candidate cand;
    cand.algo = static_cast<int>(perf[i].algo);
    cand.math = perf[i].mathType;
    cand.deterministic = perf[i].determinism == CUDNN_DETERMINISTIC;
    if (cand.math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)
      cand.skipped = "converts float32 to half precision";
    else if (fp32_exact && cand.math == CUDNN_TENSOR_OP_MATH)
      cand.skipped = "tensor-op math (needs allow_tf32)";
    else if (!p.tf32 && is_transform(p.op, cand.algo))
      cand.skipped = "FFT/Winograd transform (reduced precision; needs allow_tf32)";
    else if (p.deterministic && !cand.deterministic)
      cand.skipped = "non-deterministic (conv_deterministic is on)";
    // Exact float32 runs with FMA_MATH whatever the heuristic reported; otherwise with the math
    // the heuristic paired the algorithm with (cuDNN's rule for the v7 API).
    if (fp32_exact && cand.skipped.empty()) cand.math = CUDNN_FMA_MATH;
    // One entry per (algorithm, math); a runnable one replaces a skipped one.
    auto same = std::find_if(out.begin(), out.end(), [&](const Candidate& o) {
      return o.algo == cand.algo && o.math == cand.math;
    });
    if (same == out.end()) out.push_back(cand);
    else if (!same->skipped.empty() && cand.skipped.empty()) *same = cand;
  }
}

std::vector<Candidate> list_candidates(Call& c) {
  std::vector<Candidate> out;
  const Problem& p = c.p;
  with_handle(p, [&](cudnnHandle_t h) {
    int max = 0, n = 0;
    switch (p.op) {
      case Op::Forward: {
        DFX_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max), p);
        std::vector<cudnnConvolutionFwdAlgoPerf_t> r(std::max(max, 1));
        DFX_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, c.x.d, c.w.d, c.conv.d, c.y.d,
                                                               max, &n, r.data()),
                        p);
        add_candidates(c, r.data(), n, out);
        break;
      }
      case Op::BackwardData: {
        DFX_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max), p);
        std::vector<cudnnConvolutionBwdDataAlgoPerf_t> r(std::max(max, 1));
        DFX_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, c.w.d, c.y.d, c.conv.d,
                                                                    c.x.d, max, &n, r.data()),
                        p);
        add_candidates(c, r.data(), n, out);
        break;
      }
      case Op::BackwardFilter: {
        DFX_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max), p);
        std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> r(std::max(max, 1));
        DFX_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, c.x.d, c.y.d, c.conv.d,
                                                                      c.w.d, max, &n, r.data()),
                        p);
        add_candidates(c, r.data(), n, out);
        break;
      }
    }
    // Workspace sizes with the math each candidate will run with.
    for (Candidate& cand : out) {
      if (!cand.skipped.empty()) continue;
      DFX_CUDNN_CHECK(cudnnSetConvolutionMathType(c.conv.d, cand.math), p);
      cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
      switch (p.op) {
        case Op::Forward:
          s = cudnnGetConvolutionForwardWorkspaceSize(
              h, c.x.d, c.w.d, c.conv.d, c.y.d,
              static_cast<cudnnConvolutionFwdAlgo_t>(cand.algo), &cand.workspace);
          break;
        case Op::BackwardData:
          s = cudnnGetConvolutionBackwardDataWorkspaceSize(
              h, c.w.d, c.y.d, c.conv.d, c.x.d,
              static_cast<cudnnConvolutionBwdDataAlgo_t>(cand.algo), &cand.workspace);
          break;
        case Op::BackwardFilter:
          s = cudnnGetConvolutionBackwardFilterWorkspaceSize(
              h, c.x.d, c.y.d, c.conv.d, c.w.d,
              static_cast<cudnnConvolutionBwdFilterAlgo_t>(cand.algo), &cand.workspace);
          break;
      }
      // The heuristic offered it, but cuDNN refuses this math/algorithm pair: not a candidate.
      if (s != CUDNN_STATUS_SUCCESS)
        cand.skipped = cat("workspace query: ", cudnnGetErrorString(s));
    }
    DFX_CUDNN_CHECK(cudnnSetConvolutionMathType(c.conv.d, c.math), p);
  });
  return out;
}

const void* scalar(DType t, double v) {
  static const float f1 = 1.f, f0 = 0.f;
  static const double d1 = 1.0, d0 = 0.0;
  if (t == DType::Float64) return v == 1.0 ? static_cast<const void*>(&d1) : &d0;
  return v == 1.0 ? static_cast<const void*>(&f1) : &f0;
}

// One run of `cand` (output = product, then + bias) with `ws` of cand.workspace bytes.
void execute(Call& c, const Candidate& cand, void* ws) {
  const Problem& p = c.p;
  const void* one = scalar(p.dtype, 1.0);
  const void* zero = scalar(p.dtype, 0.0);
  with_handle(p, [&](cudnnHandle_t h) {
    DFX_CUDNN_CHECK(cudnnSetConvolutionMathType(c.conv.d, cand.math), p);
    switch (p.op) {
      case Op::Forward:
        DFX_CUDNN_CHECK(cudnnConvolutionForward(h, one, c.x.d, c.x_ptr, c.w.d, c.w_ptr, c.conv.d,
                                                static_cast<cudnnConvolutionFwdAlgo_t>(cand.algo),
                                                ws, cand.workspace, zero, c.y.d, c.y_ptr),
                        p);
        if (c.bias_ptr)
          DFX_CUDNN_CHECK(cudnnAddTensor(h, one, c.bias.d, c.bias_ptr, one, c.y.d, c.y_ptr), p);
        break;
      case Op::BackwardData:
        DFX_CUDNN_CHECK(cudnnConvolutionBackwardData(
                            h, one, c.w.d, c.w_ptr, c.y.d, c.y_ptr, c.conv.d,
                            static_cast<cudnnConvolutionBwdDataAlgo_t>(cand.algo), ws,
                            cand.workspace, zero, c.x.d, c.x_ptr),
                        p);
        if (c.bias_ptr)
          DFX_CUDNN_CHECK(cudnnAddTensor(h, one, c.bias.d, c.bias_ptr, one, c.x.d, c.x_ptr), p);
        break;
      case Op::BackwardFilter:
        DFX_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
                            h, one, c.x.d, c.x_ptr, c.y.d, c.y_ptr, c.conv.d,
                            static_cast<cudnnConvolutionBwdFilterAlgo_t>(cand.algo), ws,
                            cand.workspace, zero, c.w.d, c.w_ptr),
                        p);
        break;
    }
  });
}

// Runs `cand` with a workspace from the caching allocator (freed in stream order afterwards).
void run_candidate(Call& c, const Candidate& cand) {
  Tensor ws;
  if (cand.workspace > 0) ws = scratch_bytes(cand.workspace, Device::cuda(c.p.device));
  execute(c, cand, ws.defined() ? ws.raw_data() : nullptr);
}

// The largest workspace worth trying: what the driver has free plus dfx's cached free blocks
// (the allocator gives those back when a fresh block does not fit), less a 10 % margin.
size_t workspace_limit(int device) {
  ::dfx::cuda::DeviceGuard guard(device);
  size_t free_b = 0, total_b = 0;
  DFX_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const MemoryStats st = ::dfx::cuda::device_memory_stats(device);
  const size_t cached =
      st.reserved_bytes > st.current_bytes ? st.reserved_bytes - st.current_bytes : 0;
  return (free_b + cached) / 10 * 9;
}

// Milliseconds per call of `run` on the current stream: one warm-up (first-use setup stays out
// of the timing), then 3 timed runs, or 1 when the warm-up alone took over 50 ms.
template <class F>
float time_ms(int device, F&& run) {
  const ::dfx::cuda::Stream s = ::dfx::cuda::current_stream(device);
  ::dfx::cuda::Event w0(true), w1(true), t0(true), t1(true);
  w0.record(s);
  run();
  w1.record(s);
  w1.synchronize();
  const int reps = w0.elapsed_ms(w1) > 50.f ? 1 : 3;
  t0.record(s);
  for (int i = 0; i < reps; ++i) run();
  t1.record(s);
  t1.synchronize();
  return t0.elapsed_ms(t1) / static_cast<float>(reps);
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string human_bytes(size_t b) {
  if (b >= (size_t{1} << 20)) return cat(b >> 20, " MiB");
  if (b >= 1024) return cat(b >> 10, " KiB");
  return cat(b, " B");
}

// ---- the decision cache ----------------------------------------------------------------------

struct Decision {
  bool native = false;
  std::vector<Candidate> ranked;  // cuDNN algorithms that ran, fastest first
};

struct Cache {
  std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<const Decision>> decisions;
  std::vector<ConvTuneRecord> records;
};

Cache& cache() {
  static auto* c = new Cache();  // never destroyed, like the handles
  return *c;
}

std::shared_ptr<const Decision> lookup(const std::string& key) {
  Cache& k = cache();
  std::lock_guard<std::mutex> lock(k.mu);
  auto it = k.decisions.find(key);
  return it == k.decisions.end() ? nullptr : it->second;
}

// Times the candidates (and, in Auto mode, `native`), stores and logs the decision. Runs outside
// the cache lock; when two threads tune the same key at once, the first stored decision wins.
template <class Native>
std::shared_ptr<const Decision> tune(Call& c, ConvBackend mode, const std::string& key,
                                     Native&& native) {
  const Problem& p = c.p;
  std::vector<Candidate> cands;
  std::string list_note;
  try {
    cands = list_candidates(c);
  } catch (const Error& e) {  // Auto still has dfx's kernel; Cudnn has nothing else to offer
    if (mode != ConvBackend::Auto) throw;
    list_note = cat("cuDNN failed: ", first_line(e.what()));
  }
  const size_t limit = workspace_limit(p.device);
  for (Candidate& cand : cands) {
    if (!cand.skipped.empty()) continue;
    if (cand.workspace > limit) {
      cand.skipped = cat("workspace ", human_bytes(cand.workspace), " > free ", human_bytes(limit));
      continue;
    }
    try {
      cand.ms = time_ms(p.device, [&] { run_candidate(c, cand); });
    } catch (const Error& e) {  // out of memory, or cuDNN refusing at run time: not a candidate
      cand.skipped = cat("failed: ", first_line(e.what()));
    }
  }
  auto d = std::make_shared<Decision>();
  for (const Candidate& cand : cands)
    if (cand.skipped.empty()) d->ranked.push_back(cand);
  std::stable_sort(d->ranked.begin(), d->ranked.end(),
                   [](const Candidate& a, const Candidate& b) { return a.ms < b.ms; });

  std::string native_note;
  float native_ms = -1;
  if (mode == ConvBackend::Auto) {
    if (d->ranked.empty()) {
      native_ms = time_ms(p.device, native);  // the only option: its errors are the caller's
    } else {
      try {
        native_ms = time_ms(p.device, native);
      } catch (const Error& e) {
        native_note = cat("native failed: ", first_line(e.what()));
      }
    }
    // Ties go to dfx's kernel: deterministic and independent of the cuDNN version.
    d->native = native_ms >= 0 && (d->ranked.empty() || native_ms <= d->ranked.front().ms);
  }

  std::string list;
  auto add = [&](const std::string& item) { list += (list.empty() ? "" : "; ") + item; };
  if (native_ms >= 0) add(cat("native ", native_ms, " ms"));
  if (!native_note.empty()) add(native_note);
  for (const Candidate& cand : cands) {
    if (cand.skipped.empty())
      add(cat(cand.name(p.op), " ", cand.ms, " ms, workspace ", human_bytes(cand.workspace)));
    else
      add(cat(cand.name(p.op), " skipped: ", cand.skipped));
  }
  if (!list_note.empty()) add(list_note);
  else if (cands.empty()) add("cuDNN offers no algorithm for these shapes");
  DFX_CHECK(d->native || !d->ranked.empty(), p.describe(),
            ": no cuDNN algorithm can run it with the current settings (allow_tf32 ",
            p.tf32 ? "on" : "off", ", conv_deterministic ", p.deterministic ? "on" : "off",
            "): ", list, "; use the native or auto convolution backend");
  const std::string choice = d->native ? "native" : d->ranked.front().name(p.op);
  if (conv_log())
    std::fprintf(stderr, "dfx conv autotune: %s -> %s [%s]\n", key.c_str(), choice.c_str(),
                 list.c_str());

  Cache& k = cache();
  std::lock_guard<std::mutex> lock(k.mu);
  auto [it, inserted] = k.decisions.emplace(key, d);
  if (inserted) k.records.push_back(ConvTuneRecord{key, choice, list});
  return it->second;
}

// Runs the fastest ranked algorithm whose workspace can be allocated now. False when none can.
bool run_ranked(Call& c, const Decision& d) {
  for (const Candidate& cand : d.ranked) {
    Tensor ws;
    if (cand.workspace > 0) {
      try {
        ws = scratch_bytes(cand.workspace, Device::cuda(c.p.device));
      } catch (const Error& e) {
        if (!is_out_of_memory(e)) throw;
        continue;  // the next one may need less
      }
    }
    execute(c, cand, ws.defined() ? ws.raw_data() : nullptr);
    return true;
  }
  return false;
}

void check_args(ConvBackend mode, const char* op, const Tensor& a, const char* an,
                const Tensor& b, const char* bn) {
  DFX_CHECK(mode == ConvBackend::Auto || mode == ConvBackend::Cudnn, op,
            ": the cuDNN path runs in auto or cudnn mode, got ", conv_backend_name(mode));
  check_cuda_tensor(a, op, an);
  check_cuda_tensor(b, op, bn);
  DFX_CHECK((a.dtype() == DType::Float32 || a.dtype() == DType::Float64) && b.dtype() == a.dtype(),
            op, ": the cuDNN path takes float32 or float64 operands of one dtype, got ", an, " ",
            a.describe(), " and ", bn, " ", b.describe());
}

Problem make_problem(Op op, const Tensor& like, const Shape& x, Layout xl, const Shape& w,
                     Layout wl, const Shape& y, Layout yl, bool bias, const ConvGeometry& g) {
  Problem p;
  p.op = op;
  p.dtype = like.dtype();
  p.device = like.device().index;
  p.x = x;
  p.w = w;
  p.y = y;
  p.xl = xl;
  p.wl = wl;
  p.yl = yl;
  p.g = g;
  p.g.backend.reset();  // the backend is `mode`, not part of the problem
  p.bias = bias;
  p.tf32 = allow_tf32();
  p.deterministic = conv_deterministic();
  return p;
}

// A contiguous, 16-byte aligned copy of `t` unless it already is one (the bias).
Tensor aligned_contiguous(const Tensor& t) {
  Tensor r = t.contiguous();
  return aligned16(r) ? r : r.clone();
}

// The flow the three ops share. Of x, w and y, the two inputs are in the problem's layout and
// aligned; the output (the role `p.op` writes: y, x or w) is undefined and allocated here in that
// layout. `native` computes the same product with dfx's kernel (in the same layout).
template <class Native>
Tensor run_op(const Problem& p, ConvBackend mode, Tensor x, Tensor w, Tensor y, const Tensor& bias,
              Native&& native) {
  const std::string why = unsupported_reason(p);
  if (!why.empty()) {
    DFX_CHECK(mode == ConvBackend::Auto, p.describe(), ": cuDNN cannot run it: ", why,
              "; use the native or auto convolution backend");
    return native();
  }
  const std::string key = p.key(mode);
  std::shared_ptr<const Decision> d = lookup(key);
  if (d && d->native) return native();

  Call c;
  c.p = p;
  try {
    init_call(c);
  } catch (const Error&) {
    if (mode != ConvBackend::Auto) throw;
    return native();  // cuDNN rejects the descriptors: dfx's kernel needs none
  }
  Tensor& out = p.op == Op::Forward ? y : p.op == Op::BackwardData ? x : w;
  const Layout out_layout = p.op == Op::Forward ? p.yl : p.op == Op::BackwardData ? p.xl : p.wl;
  out = empty_in(p.op == Op::Forward ? p.y : p.op == Op::BackwardData ? p.x : p.w, out_layout,
                 p.dtype, Device::cuda(p.device));
  c.x_ptr = x.raw_data();
  c.w_ptr = w.raw_data();
  c.y_ptr = y.raw_data();
  c.bias_ptr = bias.defined() ? bias.raw_data() : nullptr;
  if (!d) {
    d = tune(c, mode, key, native);
    if (d->native) return native();
  }
  if (run_ranked(c, *d)) return out;
  DFX_CHECK(mode == ConvBackend::Auto, p.describe(),
            ": out of memory for the workspace of every cuDNN algorithm timed for it (fastest "
            "first: ", d->ranked.front().name(p.op), ", ", human_bytes(d->ranked.front().workspace),
            "); free memory or use the native convolution backend");
  return native();
}

}  // namespace

Tensor conv(const Tensor& x0, const Tensor& w0, const Tensor& bias0, const Shape& y_shape,
            const ConvGeometry& g, ConvBackend mode, MemoryFormat fmt) {
  check_args(mode, "conv", x0, "input", w0, "weight");
  auto native = [&] {
    return ::dfx::kernels::cuda::conv(x0.contiguous(fmt), w0.contiguous(fmt),
                                      bias0.defined() ? bias0.contiguous() : Tensor(), y_shape, g,
                                      fmt);
  };
  if (x0.numel() == 0 || w0.numel() == 0 || shape_numel(y_shape) == 0) return native();
  ::dfx::cuda::DeviceGuard guard(x0.device().index);
  const Layout l = call_layout(fmt);
  const Tensor x = in_layout(x0, l), w = in_layout(w0, l);
  const Tensor bias = bias0.defined() ? aligned_contiguous(bias0) : Tensor();
  const Problem p =
      make_problem(Op::Forward, x, x.shape(), l, w.shape(), l, y_shape, l, bias.defined(), g);
  return run_op(p, mode, x, w, Tensor(), bias, native);
}

Tensor conv_transpose(const Tensor& y0, const Tensor& w0, const Tensor& bias0, const Shape& x_shape,
                      const ConvGeometry& g, ConvBackend mode, MemoryFormat fmt) {
  check_args(mode, "conv_transpose", y0, "input", w0, "weight");
  auto native = [&] {
    return ::dfx::kernels::cuda::conv_transpose(
        y0.contiguous(fmt), w0.contiguous(fmt), bias0.defined() ? bias0.contiguous() : Tensor(),
        x_shape, g, fmt);
  };
  if (y0.numel() == 0 || w0.numel() == 0 || shape_numel(x_shape) == 0) return native();
  ::dfx::cuda::DeviceGuard guard(y0.device().index);
  const Layout l = call_layout(fmt);
  const Tensor y = in_layout(y0, l), w = in_layout(w0, l);
  const Tensor bias = bias0.defined() ? aligned_contiguous(bias0) : Tensor();
  const Problem p = make_problem(Op::BackwardData, y, x_shape, l, w.shape(), l, y.shape(), l,
                                 bias.defined(), g);
  return run_op(p, mode, Tensor(), w, y, bias, native);
}

Tensor conv_weight_grad(const Tensor& y0, const Tensor& x0, const Shape& w_shape,
                        const ConvGeometry& g, ConvBackend mode, MemoryFormat fmt) {
  check_args(mode, "conv_weight_grad", y0, "output gradient", x0, "input");
  auto native = [&] {
    return ::dfx::kernels::cuda::conv_weight_grad(y0.contiguous(fmt), x0.contiguous(fmt), w_shape,
                                                  g, fmt);
  };
  if (y0.numel() == 0 || x0.numel() == 0 || shape_numel(w_shape) == 0) return native();
  ::dfx::cuda::DeviceGuard guard(y0.device().index);
  const Layout l = call_layout(fmt);
  const Tensor y = in_layout(y0, l), x = in_layout(x0, l);
  const Problem p =
      make_problem(Op::BackwardFilter, y, x.shape(), l, w_shape, l, y.shape(), l, false, g);
  return run_op(p, mode, x, Tensor(), y, Tensor(), native);
}

std::vector<ConvTuneRecord> tune_records() {
  Cache& k = cache();
  std::lock_guard<std::mutex> lock(k.mu);
  return k.records;
}

void clear_tune_cache() {
  Cache& k = cache();
  std::lock_guard<std::mutex> lock(k.mu);
  k.decisions.clear();
  k.records.clear();
}

}  // namespace dfx::kernels::cuda::cudnn
