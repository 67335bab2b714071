// dist/data_parallel.h — data parallelism with loss integrity.
//
// The rule (docs/distributed.md explains why it is exact): a global batch of B samples is split
// into contiguous shards that differ in size by at most one — no padding, no dropping, empty
// shards allowed when B < P; each rank's loss is the SUM of its per-sample losses divided by the
// GLOBAL count B; gradients (and HVPs) are SUMMED across ranks, never averaged by P. Then loss,
// gradients and every optimiser step are those of the single-process run on the whole batch.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "autodiff/nn_ops.h"
#include "autodiff/var.h"
#include "dist/communicator.h"

namespace dfx::dist {

struct Shard {
  int64_t begin = 0;  // first global position owned by the rank
  int64_t count = 0;  // may be 0 when B < P
};
// Rank r of P owns [begin, begin + count) of a global batch of B: the first B % P ranks get
// one extra sample.
Shard shard_of(int64_t global_count, int rank, int size);
// The rank's part of a list of global sample indices.
std::vector<int64_t> shard_indices(const std::vector<int64_t>& global, int rank, int size);

// Rank `root`'s values into every rank's parameters/buffers, in place.
void broadcast_tensors(Communicator& comm, const std::vector<Tensor>& tensors, int root = 0);
// FNV-1a over the bytes of every tensor: equal on all ranks iff the values are bitwise equal.
uint64_t tensors_hash(const std::vector<Tensor>& tensors);
// True when `value` is the same on every rank (for hashes and step counts).
bool same_on_all_ranks(Communicator& comm, uint64_t value);

// Sums a per-channel tensor across ranks in float64: SyncBatchNorm's moment all-reduce.
ad::ChannelAllReduce channel_all_reduce(std::shared_ptr<Communicator> comm);

// Hessian-vector product of the global loss: the sum over ranks of the local HVPs (each local
// loss already divided by the global count). Every rank gets the same result.
std::vector<Tensor> hvp(Communicator& comm, const ad::Var& local_loss,
                        const std::vector<ad::Var>& params, const std::vector<Tensor>& v);

// The global Hessian at the current parameters as an operator (ad::Hessian across ranks): the
// forward and the differentiable backward run once; gradient() and every apply(v) are summed over
// ranks, so all ranks hold the same values. A rank whose local loss is undefined (empty shard
// without SyncBatchNorm) contributes zeros but still joins every all-reduce.
class Hessian {
 public:
  Hessian(Communicator& comm, const ad::Var& local_loss, const std::vector<ad::Var>& params);
  const std::vector<Tensor>& gradient() const { return gradient_; }
  std::vector<Tensor> apply(const std::vector<Tensor>& v) const;

 private:
  Communicator& comm_;
  std::vector<ad::Var> params_;
  std::optional<ad::Hessian> local_;
  std::vector<Tensor> gradient_;
};

// Gradient all-reduce overlapped with backward. Parameters are grouped into buckets (in the
// order gradients are expected to become ready: reverse registration order, as in the forward
// pass of a feed-forward network) of at most `bucket_cap_bytes`; the moment the last gradient of
// a bucket is final (the tape's grad-ready hook), the flattened bucket starts a nonblocking
// all-reduce. finish() waits for all of them and leaves every parameter's .grad equal to the sum
// over ranks. For gradient accumulation over micro-batches, set_sync(false) for all but the last
// backward of a step: hooks then do nothing and the accumulated gradient is reduced once.
class GradReducer {
 public:
  GradReducer(std::shared_ptr<Communicator> comm, std::vector<ad::Var> params,
              size_t bucket_cap_bytes = size_t{25} << 20, bool overlap = true);
  ~GradReducer();

  void set_sync(bool sync);
  // Waits for all buckets (launching any whose gradients never arrived, with zeros for the
  // missing ones) and writes the reduced gradients back. Call before the optimiser step.
  void finish();

  size_t bucket_count() const;
  // Seconds spent blocked in finish() on the last step, and buckets launched during backward.
  double last_wait_seconds() const;
  int last_launched_during_backward() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace dfx::dist
