// dist/data_parallel.cpp — sharding, parameter broadcast and hashing, the bucketed gradient
// reducer, SyncBatchNorm's all-reduce and distributed HVPs.
#include "dist/data_parallel.h"

#include <cstring>

#include "autodiff/ops.h"
#include "core/copy.h"

namespace dfx::dist {

Shard shard_of(int64_t global_count, int rank, int size) {
  DFX_CHECK(size > 0 && rank >= 0 && rank < size, "shard_of: rank ", rank, " of ", size,
            " is not a valid rank");
  DFX_CHECK(global_count >= 0, "shard_of: negative global count ", global_count);
  const int64_t base = global_count / size, extra = global_count % size;
  Shard s;
  s.count = base + (rank < extra ? 1 : 0);
  s.begin = rank * base + std::min<int64_t>(rank, extra);
  return s;
}

std::vector<int64_t> shard_indices(const std::vector<int64_t>& global, int rank, int size) {
  Shard s = shard_of(static_cast<int64_t>(global.size()), rank, size);
  return std::vector<int64_t>(global.begin() + s.begin, global.begin() + s.begin + s.count);
}

void broadcast_tensors(Communicator& comm, const std::vector<Tensor>& tensors, int root) {
  for (const Tensor& t : tensors) {
    DFX_CHECK(t.is_contiguous(), "broadcast_tensors: parameter ", t.describe(),
              " is not contiguous");
    comm.broadcast(t, root);
  }
}

uint64_t tensors_hash(const std::vector<Tensor>& tensors) {
  uint64_t h = 1469598103934665603ull;
  for (const Tensor& t0 : tensors) {
    Tensor t = t0.cpu().contiguous();
    const auto* p = static_cast<const unsigned char*>(t.raw_data());
    for (size_t i = 0; i < t.nbytes(); ++i) {
      h ^= p[i];
      h *= 1099511628211ull;
    }
  }
  return h;
}

bool same_on_all_ranks(Communicator& comm, uint64_t value) {
  // int64 all-reduce of the value and its negation: max == -min iff all equal.
  Tensor t = from_vector<int64_t>({static_cast<int64_t>(value >> 1), -static_cast<int64_t>(value >> 1),
                                   static_cast<int64_t>(value & 1), -static_cast<int64_t>(value & 1)},
                                  {4});
  comm.all_reduce(t, ReduceOp::Max);
  return t.get({0}) == -t.get({1}) && t.get({2}) == -t.get({3});
}

ad::ChannelAllReduce channel_all_reduce(std::shared_ptr<Communicator> comm) {
  return [comm](Tensor& sums) {
    if (comm->size() == 1) return;
    Tensor t = sums.dtype() == DType::Float64 && sums.is_contiguous() ? sums : sums.to(DType::Float64).contiguous();
    comm->all_reduce(t);
    if (!t.shares_storage(sums)) copy_(sums, t);
  };
}

namespace {
// Sums over ranks into fresh tensors (the inputs may be values held by a graph).
std::vector<Tensor> summed_over_ranks(Communicator& comm, std::vector<Tensor> ts) {
  for (Tensor& t : ts) {
    t = t.clone();
    comm.all_reduce(t);
  }
  return ts;
}
std::vector<Tensor> zeros_like_params(const std::vector<ad::Var>& params) {
  std::vector<Tensor> z;
  for (const ad::Var& p : params) z.push_back(zeros_like(p.data()));
  return z;
}
}  // namespace

std::vector<Tensor> hvp(Communicator& comm, const ad::Var& local_loss,
                        const std::vector<ad::Var>& params, const std::vector<Tensor>& v) {
  return Hessian(comm, local_loss, params).apply(v);
}

Hessian::Hessian(Communicator& comm, const ad::Var& local_loss, const std::vector<ad::Var>& params)
    : comm_(comm), params_(params) {
  if (local_loss.defined()) local_.emplace(local_loss, params);
  gradient_ = summed_over_ranks(comm_, local_ ? local_->gradient() : zeros_like_params(params_));
}

std::vector<Tensor> Hessian::apply(const std::vector<Tensor>& v) const {
  return summed_over_ranks(comm_, local_ ? local_->apply(v) : zeros_like_params(params_));
}

// ------------------------------------------------------------------------ GradReducer

struct GradReducer::State {
  struct Bucket {
    std::vector<size_t> params;   // indices into State::params
    std::vector<int64_t> offset;  // element offset of each param in `flat`
    Tensor flat;
    int pending = 0;
    bool launched = false;
    std::unique_ptr<Work> work;
  };
  std::shared_ptr<Communicator> comm;
  std::vector<ad::Var> params;
  std::vector<Bucket> buckets;
  std::vector<size_t> bucket_of;  // param -> bucket
  std::vector<size_t> slot_of;    // param -> position within its bucket
  std::vector<Tensor> ready;      // param -> final gradient of this step
  bool sync = true, overlap = true;
  double wait_seconds = 0;
  int launched_in_backward = 0, last_launched = 0;

  void reset() {
    for (auto& b : buckets) {
      b.pending = static_cast<int>(b.params.size());
      b.launched = false;
      b.work.reset();
    }
    for (auto& r : ready) r = Tensor();
  }

  void launch(Bucket& b) {
    for (size_t k = 0; k < b.params.size(); ++k) {
      const size_t i = b.params[k];
      Tensor dst = b.flat.narrow(0, b.offset[k], params[i].numel()).view(params[i].shape());
      if (ready[i].defined()) copy_(dst, ready[i]);
      else fill_(dst, 0.0);  // a parameter the loss did not reach this step
    }
    b.launched = true;
    b.work = comm->all_reduce_async(b.flat);
  }

  void on_ready(size_t i, const ad::Var& g) {
    if (!sync) return;
    ready[i] = g.data();
    Bucket& b = buckets[bucket_of[i]];
    if (--b.pending == 0 && overlap && !b.launched) {
      launch(b);
      ++launched_in_backward;
    }
    // Nonblocking collectives progress only inside MPI calls: poke the earlier ones.
    for (auto& other : buckets)
      if (other.launched && other.work) other.work->test();
  }
};

GradReducer::GradReducer(std::shared_ptr<Communicator> comm, std::vector<ad::Var> params,
                         size_t bucket_cap_bytes, bool overlap)
    : state_(std::make_shared<State>()) {
  State& s = *state_;
  s.comm = std::move(comm);
  s.params = std::move(params);
  s.overlap = overlap;
  const size_t n = s.params.size();
  s.bucket_of.assign(n, 0);
  s.slot_of.assign(n, 0);
  s.ready.assign(n, Tensor());
  // Reverse order: the last layers' gradients are final first.
  size_t bytes = 0;
  for (size_t r = 0; r < n; ++r) {
    const size_t i = n - 1 - r;
    const ad::Var& p = s.params[i];
    DFX_CHECK(p.requires_grad() && p.is_leaf(), "GradReducer: parameter ", i, " (",
              p.data().describe(), ") is not a leaf that requires grad");
    const size_t pb = p.numel() * p.data().itemsize();
    bool fresh = s.buckets.empty() || bytes + pb > bucket_cap_bytes ||
                 s.params[s.buckets.back().params.front()].dtype() != p.dtype() ||
                 s.params[s.buckets.back().params.front()].device() != p.device();
    if (fresh) {
      s.buckets.emplace_back();
      bytes = 0;
    }
    auto& b = s.buckets.back();
    b.offset.push_back(b.params.empty() ? 0 : b.offset.back() + s.params[b.params.back()].numel());
    b.params.push_back(i);
    s.bucket_of[i] = s.buckets.size() - 1;
    s.slot_of[i] = b.params.size() - 1;
    bytes += pb;
  }
  for (auto& b : s.buckets) {
    int64_t total = 0;
    for (size_t i : b.params) total += s.params[i].numel();
    const ad::Var& p0 = s.params[b.params.front()];
    b.flat = Tensor::empty({total}, p0.dtype(), p0.device());
  }
  s.reset();
  std::weak_ptr<State> weak = state_;
  for (size_t i = 0; i < n; ++i) {
    s.params[i].register_grad_ready_hook([weak, i](const ad::Var& g) {
      if (auto st = weak.lock()) st->on_ready(i, g);
    });
  }
}

GradReducer::~GradReducer() = default;

void GradReducer::set_sync(bool sync) { state_->sync = sync; }

void GradReducer::finish() {
  State& s = *state_;
  auto t0 = std::chrono::steady_clock::now();
  for (auto& b : s.buckets)
    if (!b.launched) s.launch(b);
  for (auto& b : s.buckets) b.work->wait();
  s.wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (auto& b : s.buckets) {
    for (size_t k = 0; k < b.params.size(); ++k) {
      ad::Var& p = s.params[b.params[k]];
      // Fresh storage per step: the bucket buffer is reused by the next step.
      p.set_grad(ad::Var(b.flat.narrow(0, b.offset[k], p.numel()).view(p.shape()).clone()));
    }
  }
  s.last_launched = s.launched_in_backward;
  s.launched_in_backward = 0;
  s.reset();
}

size_t GradReducer::bucket_count() const { return state_->buckets.size(); }
double GradReducer::last_wait_seconds() const { return state_->wait_seconds; }
int GradReducer::last_launched_during_backward() const { return state_->last_launched; }

}  // namespace dfx::dist
