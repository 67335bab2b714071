// tests/gpu/test_nccl.cpp — the NCCL communicator at P = 1 on a Local bootstrap: every collective
// on device tensors of each dtype (and on host tensors, which are staged), async Works, the
// event ordering against the caller's current stream (made visible by holding streams back with
// a host-function gate), record_stream keeping a freed block out of reuse until NCCL is done,
// and a data-parallel step (GradReducer, distributed HVP) equal to the Local backend's. Several ranks are checked under MPI in tests/mpi/test_gpu_collectives.cpp.
// Skipped (not passed) without a device, through tests/gpu/main_gpu.cpp, and without NCCL.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "autodiff/ops.h"
#include "config.h"
#include "core/copy.h"
#include "core/cuda_runtime.h"
#include "core/rng.h"
#include "dist/data_parallel.h"
#include "dist/nccl_communicator.h"
#include "kernels/elementwise.h"
#include "tests/mlp_fixture.h"
#if DFX_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

using namespace dfx;
namespace A = dfx::ad;
using dfx::testing::max_rel;

namespace {

const Device kGpu = Device::cuda(0);
// Counted as skipped, not passed, when dfx has no NCCL (the stub's error is checked in dfx_unit).
const bool kNoNccl = !dist::nccl_available();

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Holds back all later work on a stream (a host function that spins until open() or until
// `limit_s` has passed), so ordering mistakes show up as wrong values instead of depending on
// timing. A call that wrongly waits for the gated stream on the host returns only after
// `limit_s`, which the checks on elapsed time catch, rather than hanging the suite.
class Gate {
 public:
  Gate(const cuda::Stream& s, double limit_s) : state_(std::make_shared<State>()) {
    state_->limit_s = limit_s;
#if DFX_HAVE_CUDA
    auto* arg = new std::shared_ptr<State>(state_);  // the host function owns one reference
    cudaError_t err = cudaLaunchHostFunc(static_cast<cudaStream_t>(s.handle()), &Gate::hold, arg);
    if (err != cudaSuccess) {
      delete arg;
      (void)cudaGetLastError();
      FAIL("cudaLaunchHostFunc: " << cudaGetErrorString(err));
    }
#else
    (void)s;
#endif
  }
  ~Gate() { open(); }
  void open() { state_->open.store(true); }
  bool timed_out() const { return state_->timed_out.load(); }

 private:
  struct State {
    std::atomic<bool> open{false}, timed_out{false};
    double limit_s = 0;
  };
#if DFX_HAVE_CUDA
  static void CUDART_CB hold(void* p) {
    auto* sp = static_cast<std::shared_ptr<State>*>(p);
    State& st = **sp;
    const auto t0 = std::chrono::steady_clock::now();
    while (!st.open.load() && seconds_since(t0) < st.limit_s)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    st.timed_out.store(!st.open.load());
    delete sp;
  }
#endif
  std::shared_ptr<State> state_;
};

Tensor random_of(DType dt, const Shape& shape, uint64_t seed) {
  Tensor v = uniform(shape, -3, 3, seed, 0, 0, DType::Float64);
  if (dt != DType::Int64) return v.to(dt);
  std::vector<double> d = v.to_vector();
  std::vector<int64_t> iv(d.size());
  for (size_t i = 0; i < d.size(); ++i) iv[i] = static_cast<int64_t>(std::lround(d[i] * 1e6));
  return from_vector<int64_t>(iv, shape);
}

// Exact equality, element by element in float64 (int64 values here stay below 2^53).
bool same_values(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  return a.to_vector() == b.to_vector();
}

std::shared_ptr<dist::Communicator> nccl1() { return dist::make_nccl(dist::make_local(), 0); }

// The shared two-layer perceptron (tests/mlp_fixture.h), on the GPU.
struct Mlp : dfx::testing::Mlp {
  Mlp() : dfx::testing::Mlp(kGpu) {}
};

Tensor batch(int64_t n, uint64_t seed) {
  return uniform({n, dfx::testing::kMlpIn}, -1, 1, seed, 0, 0, DType::Float64).to(kGpu);
}

// One reduced step: gradients of `net` after backward + finish() on `comm`.
std::vector<Tensor> reduced_grads(std::shared_ptr<dist::Communicator> comm, const Tensor& x,
                                  int64_t* launched_in_backward = nullptr) {
  Mlp net;
  // 200 bytes per bucket: several buckets, some launched during backward.
  dist::GradReducer reducer(comm, net.params, 200);
  std::vector<Tensor> out;
  for (int step = 0; step < 2; ++step) {  // the second step reuses the bucket buffers
    for (auto& p : net.params) p.zero_grad();
    net.loss(x, x.shape()[0]).backward();
    reducer.finish();
    if (launched_in_backward) *launched_in_backward = reducer.last_launched_during_backward();
    CHECK(reducer.bucket_count() > 1);
  }
  for (auto& p : net.params) out.push_back(p.grad().data().cpu());
  return out;
}

}  // namespace

TEST_SUITE("nccl") {

TEST_CASE("nccl: P = 1 over a Local bootstrap" * doctest::skip(kNoNccl)) {
  auto c = nccl1();
  CHECK(c->rank() == 0);
  CHECK(c->size() == 1);
  CHECK(c->backend() == "nccl");
  const cuda::Stream s = dist::nccl_stream(*c);
  CHECK(s.device() == 0);
  CHECK_FALSE(s.is_default());
  CHECK(s != cuda::current_stream(0));
  c->barrier();
}

TEST_CASE("nccl: all_reduce sum and max of device tensors leave them as they are (P = 1)" *
          doctest::skip(kNoNccl)) {
  auto c = nccl1();
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    for (dist::ReduceOp op : {dist::ReduceOp::Sum, dist::ReduceOp::Max}) {
      CAPTURE(dtype_name(dt));
      CAPTURE(op == dist::ReduceOp::Sum ? "sum" : "max");
      const Tensor want = random_of(dt, {3, 1000}, 17);
      Tensor t = want.to(kGpu);
      c->all_reduce(t, op);
      CHECK(t.device() == kGpu);
      CHECK(same_values(t.cpu(), want));
    }
  }
  Tensor empty = Tensor::empty({0}, DType::Float32, kGpu);
  c->all_reduce(empty);  // nothing to do, and no error
}

TEST_CASE("nccl: all_reduce_async: wait() orders the current stream, test() turns true" *
          doctest::skip(kNoNccl)) {
  auto c = nccl1();
  const Tensor want = random_of(DType::Float32, {4096}, 23);
  Tensor t = want.to(kGpu);
  auto w = c->all_reduce_async(t);
  w->wait();
  CHECK(same_values(t.cpu(), want));
  CHECK(w->test());

  // While the NCCL stream is held back, test() stays false; after, it turns true.
  Tensor u = want.to(kGpu);
  cuda::current_stream(0).synchronize();
  Gate gate(dist::nccl_stream(*c), 20.0);
  auto w2 = c->all_reduce_async(u);
  CHECK_FALSE(w2->test());
  gate.open();
  const auto t0 = std::chrono::steady_clock::now();
  bool done = false;
  while (!(done = w2->test()) && seconds_since(t0) < 10)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(done);
  CHECK_FALSE(gate.timed_out());
  CHECK(same_values(u.cpu(), want));
}

TEST_CASE("nccl: broadcast and all_gather on the device" * doctest::skip(kNoNccl)) {
  auto c = nccl1();
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64, DType::Bool}) {
    CAPTURE(dtype_name(dt));
    const Tensor want = dt == DType::Bool ? kernels::compare(kernels::CompareOp::Gt,
                                                             random_of(DType::Float64, {5, 7}, 3),
                                                             zeros({}, DType::Float64))
                                          : random_of(dt, {5, 7}, 29);
    Tensor b = want.to(kGpu);
    c->broadcast(b, 0);
    CHECK(same_values(b.cpu(), want));
    Tensor g = c->all_gather(want.to(kGpu));
    CHECK(g.device() == kGpu);
    CHECK(g.shape() == Shape{1, 5, 7});
    CHECK(same_values(g.select(0, 0).cpu(), want));
  }
  // A non-contiguous input is gathered by value; the result is a fresh contiguous tensor.
  const Tensor m = random_of(DType::Float32, {6, 4}, 31);
  Tensor mt = m.to(kGpu).permute({1, 0});
  Tensor g = c->all_gather(mt);
  CHECK(g.shape() == Shape{1, 4, 6});
  CHECK(g.is_contiguous());
  CHECK(same_values(g.select(0, 0).cpu(), m.permute({1, 0}).contiguous()));
  CHECK(c->all_gather(Tensor::empty({0, 3}, DType::Float32, kGpu)).shape() == Shape{1, 0, 3});
}

TEST_CASE("nccl: host tensors are staged through the device and stay on the host" *
          doctest::skip(kNoNccl)) {
  auto c = nccl1();
  const Tensor want = random_of(DType::Float64, {257}, 37);
  Tensor h = want.clone();
  c->all_reduce(h);
  CHECK(h.device().is_cpu());
  CHECK(same_values(h, want));
  Tensor m = random_of(DType::Int64, {9}, 41);
  const Tensor mwant = m.clone();
  c->all_reduce(m, dist::ReduceOp::Max);
  CHECK(same_values(m, mwant));
  Tensor b = want.clone();
  c->broadcast(b, 0);
  CHECK(same_values(b, want));
  Tensor g = c->all_gather(want);
  CHECK(g.device().is_cpu());
  CHECK(same_values(g.select(0, 0), want));
  Tensor a = want.clone();
  auto w = c->all_reduce_async(a);
  w->wait();
  CHECK(same_values(a, want));
  // The helpers built on CPU control values work unchanged on NCCL.
  CHECK(dist::same_on_all_ranks(*c, 0x9e3779b97f4a7c15ull));
}

TEST_CASE("nccl: bad input names the op, the tensor and the expected device" *
          doctest::skip(kNoNccl)) {
  auto c = nccl1();
  CHECK_THROWS_WITH_AS(c->all_reduce(Tensor::empty({3}, DType::Bool, kGpu)),
                       doctest::Contains("all_reduce: dtype bool not supported"), Error);
  CHECK_THROWS_WITH_AS(c->all_reduce(zeros({3, 4}, DType::Float32, kGpu).permute({1, 0})),
                       doctest::Contains("must be contiguous"), Error);
  CHECK_THROWS_WITH_AS(c->broadcast(zeros({2}, DType::Float32, kGpu), 1),
                       doctest::Contains("root 1 out of range"), Error);
  CHECK_THROWS_WITH_AS(c->all_reduce(Tensor()), doctest::Contains("undefined"), Error);
  CHECK_THROWS_WITH_AS(dist::make_nccl(dist::make_local(), cuda::device_count()),
                       doctest::Contains("does not exist"), Error);
  CHECK_THROWS_WITH_AS(dist::make_nccl(nullptr, 0), doctest::Contains("null"), Error);
  CHECK_THROWS_WITH_AS(dist::nccl_stream(*dist::make_local()), doctest::Contains("'local'"), Error);
  // The communicator is still usable after refused calls.
  Tensor t = ones({4}, DType::Float32, kGpu);
  c->all_reduce(t);
  CHECK(t.cpu().to_vector() == std::vector<double>(4, 1.0));
}

TEST_CASE("nccl: collectives wait for the producer on the caller's non-default stream, and the "
          "caller's stream waits for them, without blocking the host" * doctest::skip(kNoNccl)) {
  auto c = nccl1();
  cuda::Stream s = cuda::Stream::create(0);
  cuda::StreamGuard guard(s);
  const int64_t n = 1 << 20;
  const Tensor want64 = uniform({n}, -1, 1, 71, 0, 0, DType::Float64);
  const Tensor want = want64.to(DType::Float32);

  SUBCASE("the input's producer runs first") {
    Tensor src = want64.to(kGpu);
    Tensor x = full({n}, -7.0, DType::Float32, kGpu);
    s.synchronize();
    Gate gate(s, 20.0);
    copy_(x, src);  // the producer: a float64 -> float32 copy kernel, queued behind the gate
    const auto t0 = std::chrono::steady_clock::now();
    Tensor out = c->all_gather(x);
    CHECK(seconds_since(t0) < 5.0);  // queued, not waited for on the host
    gate.open();
    CHECK(same_values(out.select(0, 0).cpu(), want));  // not the -7s of before the producer
    CHECK_FALSE(gate.timed_out());
  }
  SUBCASE("later work on the current stream sees the result") {
    Tensor y = want.to(kGpu);
    s.synchronize();
    Gate hold_nccl(dist::nccl_stream(*c), 1.5);  // opens by itself: the read below blocks
    const auto t0 = std::chrono::steady_clock::now();
    Tensor out = c->all_gather(y);
    CHECK(seconds_since(t0) < 1.0);
    CHECK(same_values(out.select(0, 0).cpu(), want));  // this copy runs on s, after NCCL
    CHECK(hold_nccl.timed_out());  // the gate really held NCCL back for its whole time
  }
  SUBCASE("a blocking all_reduce does not wait on the host") {
    Tensor z = want.to(kGpu);
    s.synchronize();
    Gate gate(dist::nccl_stream(*c), 20.0);
    const auto t0 = std::chrono::steady_clock::now();
    c->all_reduce(z);
    CHECK(seconds_since(t0) < 5.0);
    gate.open();
    CHECK(same_values(z.cpu(), want));
  }
}

TEST_CASE("nccl: record_stream keeps a block freed during a collective out of reuse until NCCL "
          "is past it" * doctest::skip(kNoNccl)) {
  auto c = nccl1();
  cuda::Stream s = cuda::Stream::create(0);
  cuda::StreamGuard guard(s);
  cuda::empty_cache(0);  // no cached block of this size class anywhere
  const int64_t n = (int64_t{3} << 20) / 4 + 1;  // 3 MiB + 4 bytes: the 4 MiB size class
  Tensor t = full({n}, 1.0, DType::Float32, kGpu);
  s.synchronize();
  const void* block = t.storage()->data();
  Gate gate(dist::nccl_stream(*c), 20.0);
  auto w = c->all_reduce_async(t);
  w->wait();  // device-side: the host goes on
  w.reset();
  t = Tensor();  // freed while the collective has not even started
  const size_t reserved = cuda::device_memory_stats(0).reserved_bytes;
  Tensor u = Tensor::empty({n}, DType::Float32, kGpu);
  CHECK(u.storage()->data() != block);
  CHECK(cuda::device_memory_stats(0).reserved_bytes >= reserved + (size_t{4} << 20));
  gate.open();
  dist::nccl_stream(*c).synchronize();
  s.synchronize();
  Tensor v = Tensor::empty({n}, DType::Float32, kGpu);
  CHECK(v.storage()->data() == block);  // handed out again once NCCL has passed it
  CHECK_FALSE(gate.timed_out());
}

TEST_CASE("nccl: a Work outlives its communicator" * doctest::skip(kNoNccl)) {
  auto c = nccl1();
  const Tensor want = random_of(DType::Float64, {100}, 43);
  Tensor t = want.to(kGpu);
  auto w = c->all_reduce_async(t);
  c.reset();
  w->wait();
  CHECK(same_values(t.cpu(), want));
}

TEST_CASE("nccl: a data-parallel step on the GPU equals the Local backend's (P = 1)" *
          doctest::skip(kNoNccl)) {
  auto c = nccl1();
  auto local = dist::make_local();
  cuda::Stream s = cuda::Stream::create(0);
  cuda::StreamGuard guard(s);  // events, not the legacy stream's implicit order, must carry it
  const Tensor x = batch(13, 7);

  int64_t launched = 0;
  std::vector<Tensor> gn = reduced_grads(c, x, &launched);
  std::vector<Tensor> gl = reduced_grads(local, x);
  CHECK(launched > 0);  // some buckets started during backward
  REQUIRE(gn.size() == gl.size());
  for (size_t i = 0; i < gn.size(); ++i) {
    CAPTURE(i);
    CHECK(max_rel(gn[i], gl[i]) < 1e-13);  // NCCL adds nothing at P = 1; kernels may reorder
  }

  // The distributed HVP (dist::Hessian's all-reduces of device tensors).
  Mlp net;
  std::vector<Tensor> v;
  for (size_t i = 0; i < net.params.size(); ++i)
    v.push_back(uniform(net.params[i].shape(), -1, 1, 53, i, 0, DType::Float64).to(kGpu));
  std::vector<Tensor> hn = dist::hvp(*c, net.loss(x, 13), net.params, v);
  std::vector<Tensor> hl = dist::hvp(*local, net.loss(x, 13), net.params, v);
  for (size_t i = 0; i < hn.size(); ++i) {
    CAPTURE(i);
    CHECK(hn[i].device() == kGpu);
    CHECK(max_rel(hn[i], hl[i]) < 1e-13);
  }
}

}  // TEST_SUITE
