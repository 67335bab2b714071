// dist/nccl_communicator.cpp — the NCCL backend: collectives on GPU buffers, run on the
// communicator's own high-priority stream and ordered against the caller's current stream with
// events, so no call blocks the host to be correct. Bootstrapped by broadcasting rank 0's
// ncclUniqueId over another communicator (MPI, or Local for one process). Built only with CUDA
// and NCCL (dist/nccl_stub.cpp otherwise).
#include <nccl.h>

#include <cstring>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "core/copy.h"
#include "core/cuda_check.h"
#include "dist/nccl_communicator.h"

namespace dfx::dist {
namespace {

// NCCL's own message plus its last-error text (the detail: which peer, which transport), and
// where to look next. Never exits: dfx is embedded in other people's programs.
std::string nccl_message(ncclResult_t r) {
  std::string m = ncclGetErrorString(r);
  const char* last = ncclGetLastError(nullptr);  // the argument is unused by NCCL
  if (last && *last) m += std::string(": ") + last;
  if (r == ncclInvalidUsage)
    m += " (NCCL needs a different GPU for every rank; ranks sharing one GPU can use the MPI "
         "backend on device tensors instead)";
  else if (r == ncclSystemError || r == ncclRemoteError || r == ncclInternalError)
    m += " (run with NCCL_DEBUG=WARN for NCCL's own report)";
  return m;
}

[[noreturn]] void nccl_failed(ncclResult_t r, const std::string& what, const char* file,
                              int line) {
  DFX_FAIL(what, " failed at ", file, ":", line, ": ", nccl_message(r));
}

// DFX_NCCL_CHECK(call, "what it was doing, with shapes") for calls outside a communicator.
#define DFX_NCCL_CHECK(call, what)                                                  \
  do {                                                                              \
    ncclResult_t dfx_nccl_rc_ = (call);                                             \
    if (dfx_nccl_rc_ != ncclSuccess) nccl_failed(dfx_nccl_rc_, (what), __FILE__, __LINE__); \
  } while (0)

ncclDataType_t nccl_type(DType t, const char* op) {
  switch (t) {
    case DType::Float32: return ncclFloat32;
    case DType::Float64: return ncclFloat64;
    case DType::Int64: return ncclInt64;
    default:
      DFX_FAIL(op, ": dtype ", dtype_name(t), " not supported; expected float32, float64 or int64");
  }
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::Sum ? ncclSum : ncclMax; }

// Shared by the communicator and its pending Works, so that a Work outliving its communicator
// still finds the NCCL handle it checks for asynchronous errors.
struct NcclState {
  std::shared_ptr<Communicator> bootstrap;  // first member: released after the NCCL comm
  ncclComm_t comm = nullptr;
  int device = 0, rank = 0, size = 1;
  cuda::Stream stream;
  bool failed = false;  // an NCCL call failed: tear down with ncclCommAbort

  NcclState() = default;
  NcclState(const NcclState&) = delete;
  NcclState& operator=(const NcclState&) = delete;

  ~NcclState() {
    if (!comm) return;
    int prev = -1;
    const bool have_prev = cudaGetDevice(&prev) == cudaSuccess;
    if (have_prev && prev != device) (void)cudaSetDevice(device);
    // ncclCommDestroy flushes outstanding collectives, which needs every peer to take part;
    // after an error, or while an exception unwinds (a peer may never get here), abort instead.
    if (failed || std::uncaught_exceptions() > 0) (void)ncclCommAbort(comm);
    else (void)ncclCommDestroy(comm);
    (void)cudaGetLastError();
    if (have_prev && prev != device) (void)cudaSetDevice(prev);
  }

  std::string where() const {
    return detail::cat("rank ", rank, " of ", size, " on cuda:", device);
  }

  void check(ncclResult_t r, const char* op, const char* call, const Tensor& t, const char* file,
             int line) {
    if (r == ncclSuccess) return;
    failed = true;
    nccl_failed(r, detail::cat(op, ": ", call, " on ", t.describe(), " (", where(), ")"), file,
                line);
  }

  // Errors NCCL found after a call returned (a peer died, a network failure) surface here.
  void check_async(const char* op) {
    ncclResult_t async = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(comm, &async);
    if (r != ncclSuccess) {
      failed = true;
      nccl_failed(r, detail::cat(op, ": ncclCommGetAsyncError (", where(), ")"), __FILE__, __LINE__);
    }
    if (async != ncclSuccess && async != ncclInProgress) {
      failed = true;
      DFX_FAIL(op, ": NCCL reported an asynchronous error (", where(), "): ", nccl_message(async));
    }
  }

  // Queues `call` on the NCCL stream after the work queued so far on the current stream of
  // `device` (which produces the inputs), marks every tensor in `used` as in use on the NCCL
  // stream (the caching allocator then does not hand its block out again before the collective
  // is done, even when the tensor is freed first), and returns an event recorded after it.
  template <class Call>
  cuda::Event launch(const char* op, const char* call_name, const std::vector<Tensor>& used,
                     Call&& call) {
    check_async(op);
    cuda::DeviceGuard guard(device);
    cuda::Event inputs_ready;
    inputs_ready.record(cuda::current_stream(device));
    inputs_ready.wait(stream);
    check(call(cuda::native(stream)), op, call_name, used.front(), __FILE__, __LINE__);
    for (const Tensor& t : used) cuda::record_stream(t, stream);
    cuda::Event done;
    done.record(stream);
    return done;
  }
};

// The device buffer a collective works on: the tensor itself when it lives on the
// communicator's GPU; for a host tensor, a device copy (`host` is then the tensor to write the
// result back to). Host tensors are staged rather than refused because the control values that
// cross ranks in dfx (loss sums, stop flags, parameter hashes) are small CPU tensors, and staging
// keeps every caller backend-neutral; the two synchronous copies are what reading a host value
// costs anyway.
struct Buffer {
  Tensor dev, host;
};

Buffer device_buffer(const NcclState& s, const Tensor& t, const char* op) {
  DFX_CHECK(t.defined(), op, ": undefined tensor");
  DFX_CHECK(t.is_contiguous(), op, ": tensor must be contiguous, got strides ", t.strides(),
            " for ", t.describe());
  if (t.device().is_cpu()) return {t.to(Device::cuda(s.device)), t};
  DFX_CHECK(t.device().index == s.device, op, ": ", t.describe(), " is on another GPU; this NCCL "
            "communicator (", s.where(), ") expects tensors on cuda:", s.device, " (or on the CPU)");
  return {t, Tensor()};
}

// After the collective: later work on the caller's current stream waits for it (device-side),
// and a staged host tensor receives the result (that copy runs on the current stream, so after
// the wait, and returns once the bytes are on the host).
void complete(const NcclState& s, const cuda::Event& done, const Buffer& b) {
  done.wait(cuda::current_stream(s.device));
  if (b.host.defined()) copy_(b.host, b.dev);
}

class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<NcclState> s, cuda::Event done, Buffer b, const char* op)
      : s_(std::move(s)), done_(std::move(done)), buf_(std::move(b)), op_(op) {}
  ~NcclWork() override {
    if (!finished_) {
      try {
        wait();
      } catch (...) {
      }
    }
  }
  void wait() override {
    if (finished_) return;
    finished_ = true;  // a failed wait is not retried by the destructor
    s_->check_async(op_);
    complete(*s_, done_, buf_);
  }
  bool test() override {
    if (finished_) return true;
    s_->check_async(op_);
    if (!done_.query()) return false;
    wait();
    return true;
  }

 private:
  std::shared_ptr<NcclState> s_;
  cuda::Event done_;
  Buffer buf_;
  const char* op_;
  bool finished_ = false;
};

class NcclCommunicator : public Communicator {
 public:
  explicit NcclCommunicator(std::shared_ptr<NcclState> s) : s_(std::move(s)) {}
  int rank() const override { return s_->rank; }
  int size() const override { return s_->size; }
  std::string backend() const override { return "nccl"; }
  const NcclState& state() const { return *s_; }

  void all_reduce(const Tensor& t, ReduceOp op) override {
    const ncclDataType_t type = nccl_type(t.dtype(), "all_reduce");
    Buffer b = device_buffer(*s_, t, "all_reduce");
    if (b.dev.numel() == 0) return;
    cuda::Event done = start_all_reduce(b, type, op, "all_reduce");
    complete(*s_, done, b);
  }

  std::unique_ptr<Work> all_reduce_async(const Tensor& t, ReduceOp op) override {
    const ncclDataType_t type = nccl_type(t.dtype(), "all_reduce_async");
    Buffer b = device_buffer(*s_, t, "all_reduce_async");
    cuda::Event done;  // never recorded for an empty tensor: query() and wait() are no-ops
    if (b.dev.numel() > 0) done = start_all_reduce(b, type, op, "all_reduce_async");
    return std::make_unique<NcclWork>(s_, std::move(done), std::move(b), "all_reduce_async");
  }

  void broadcast(const Tensor& t, int root) override {
    DFX_CHECK(root >= 0 && root < s_->size, "broadcast: root ", root, " out of range for ",
              s_->size, " ranks");
    Buffer b = device_buffer(*s_, t, "broadcast");
    if (b.dev.numel() == 0) return;
    // Bytes, like the MPI backend: any dtype can be broadcast.
    void* p = b.dev.raw_data();
    const size_t n = b.dev.nbytes();
    ncclComm_t comm = s_->comm;
    cuda::Event done = s_->launch("broadcast", "ncclBroadcast", {b.dev}, [&](cudaStream_t st) {
      return ncclBroadcast(p, p, n, ncclUint8, root, comm, st);
    });
    complete(*s_, done, b);
  }

  Tensor all_gather(const Tensor& t) override {
    DFX_CHECK(t.defined(), "all_gather: undefined tensor");
    Buffer b = device_buffer(*s_, t.contiguous(), "all_gather");
    Shape shape = t.shape();
    shape.insert(shape.begin(), s_->size);
    Tensor out = Tensor::empty(shape, t.dtype(), Device::cuda(s_->device));
    if (b.dev.numel() > 0) {
      const void* src = b.dev.raw_data();
      void* dst = out.raw_data();
      const size_t n = b.dev.nbytes();
      ncclComm_t comm = s_->comm;
      cuda::Event done = s_->launch("all_gather", "ncclAllGather", {b.dev, out},
                                    [&](cudaStream_t st) {
                                      return ncclAllGather(src, dst, n, ncclUint8, comm, st);
                                    });
      done.wait(cuda::current_stream(s_->device));
    }
    // A host input gets a host result, as from the other backends.
    return t.device().is_cpu() ? out.cpu() : out;
  }

  void barrier() override {
    all_reduce(zeros({1}, DType::Float32, Device::cuda(s_->device)), ReduceOp::Sum);
    // Every rank has entered the barrier once the all-reduce is done on this GPU.
    s_->stream.synchronize();
    s_->check_async("barrier");
  }

 private:
  cuda::Event start_all_reduce(const Buffer& b, ncclDataType_t type, ReduceOp op, const char* name) {
    void* p = b.dev.raw_data();
    const size_t n = static_cast<size_t>(b.dev.numel());
    const ncclRedOp_t red = nccl_op(op);
    ncclComm_t comm = s_->comm;
    return s_->launch(name, "ncclAllReduce", {b.dev}, [&](cudaStream_t st) {
      return ncclAllReduce(p, p, n, type, red, comm, st);
    });
  }

  std::shared_ptr<NcclState> s_;
};

}  // namespace

std::shared_ptr<Communicator> make_nccl(std::shared_ptr<Communicator> bootstrap, int device) {
  DFX_CHECK(bootstrap, "make_nccl: the bootstrap communicator is null");
  const int n = cuda::device_count();
  DFX_CHECK(device >= 0 && device < n, "make_nccl: cuda:", device, " does not exist (", n,
            " CUDA device", n == 1 ? "" : "s", " visible)");
  auto s = std::make_shared<NcclState>();
  s->bootstrap = bootstrap;
  s->device = device;
  s->rank = bootstrap->rank();
  s->size = bootstrap->size();

  // Rank 0's id travels in an int64 CPU tensor (every backend broadcasts those) behind a flag,
  // so that a failure on rank 0 stops every rank instead of leaving them in ncclCommInitRank.
  static_assert(sizeof(ncclUniqueId) == NCCL_UNIQUE_ID_BYTES, "ncclUniqueId layout");
  constexpr int64_t kWords = (NCCL_UNIQUE_ID_BYTES + 7) / 8;
  Tensor msg = zeros({1 + kWords}, DType::Int64);
  ncclResult_t id_rc = ncclSuccess;
  if (s->rank == 0) {
    ncclUniqueId id;
    id_rc = ncclGetUniqueId(&id);
    if (id_rc == ncclSuccess) {
      msg.data<int64_t>()[0] = 1;
      std::memcpy(msg.data<int64_t>() + 1, &id, sizeof id);
    }
  }
  bootstrap->broadcast(msg, 0);
  if (s->rank == 0) DFX_NCCL_CHECK(id_rc, "make_nccl: ncclGetUniqueId on rank 0");
  DFX_CHECK(msg.data<int64_t>()[0] == 1, "make_nccl: rank 0 could not create the NCCL unique id "
            "(its own error says why); rank ", s->rank, " of ", s->size, " gives up");
  ncclUniqueId id;
  std::memcpy(&id, msg.data<int64_t>() + 1, sizeof id);

  {
    cuda::DeviceGuard guard(device);  // ncclCommInitRank binds the current device
    ncclComm_t comm = nullptr;
    ncclResult_t rc = ncclCommInitRank(&comm, s->size, id, s->rank);
    if (rc != ncclSuccess) {
      const std::string msg_text = nccl_message(rc);  // before the abort resets the last error
      // A comm whose initialisation failed inside NCCL is still allocated: abort frees it.
      if (comm) (void)ncclCommAbort(comm);
      DFX_FAIL("make_nccl: ncclCommInitRank (", s->where(), ") failed: ", msg_text);
    }
    s->comm = comm;
  }
  s->stream = cuda::Stream::create(device, /*high_priority=*/true);
  return std::make_shared<NcclCommunicator>(std::move(s));
}

bool nccl_available() { return true; }

cuda::Stream nccl_stream(const Communicator& comm) {
  const auto* c = dynamic_cast<const NcclCommunicator*>(&comm);
  DFX_CHECK(c, "nccl_stream: the communicator's backend is '", comm.backend(), "', not 'nccl'");
  return c->state().stream;
}

}  // namespace dfx::dist
