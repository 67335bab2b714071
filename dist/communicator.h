// dist/communicator.h — the small interface every distributed piece of dfx talks to: rank, size,
// all-reduce (blocking and nonblocking), broadcast, all-gather, barrier. Backends: Local (one
// process), MPI (dist/mpi_communicator.h, built with MPI) and NCCL (GPU buffers, built with CUDA
// and NCCL; dist/nccl_communicator.h). The backend is chosen at run time; code above never sees
// MPI or NCCL types.
#pragma once
#include <memory>
#include <string>

#include "core/tensor.h"

namespace dfx::dist {

enum class ReduceOp { Sum, Max };

// A pending nonblocking operation. wait() completes it; the tensor handed to the call holds the
// result afterwards. Destroying an unfinished Work waits for it. On the NCCL backend, waiting is
// device-side: wait() orders the calling thread's current CUDA stream after the collective
// (later kernels and copies on it see the result) without blocking the host; a host tensor,
// staged through the GPU, gets its result copied back in wait(), which then does block.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool test() = 0;  // true once complete (drives progress, never blocks)
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;

  // In place over all ranks. The tensor must be contiguous; float32, float64 or int64.
  virtual void all_reduce(const Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  virtual std::unique_ptr<Work> all_reduce_async(const Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  virtual void broadcast(const Tensor& t, int root = 0) = 0;
  // [size, *t.shape]: every rank's t, in rank order (all ranks pass the same shape).
  virtual Tensor all_gather(const Tensor& t) = 0;
  virtual void barrier() = 0;

  bool is_root() const { return rank() == 0; }
};

// One process: every collective is the identity.
std::shared_ptr<Communicator> make_local();

// MPI over MPI_COMM_WORLD (duplicated). Initialises MPI if nobody has (and then finalises it at
// exit); leaves an already-initialised MPI alone. Throws when dfx was built without MPI.
std::shared_ptr<Communicator> make_mpi();

// MPI when this process was started by an MPI launcher (or MPI is already initialised) and dfx
// has MPI; Local otherwise.
std::shared_ptr<Communicator> make_default();

bool mpi_available();

// After an error on this rank of a multi-rank MPI job: MPI_Abort(MPI_COMM_WORLD, code), so the
// other ranks, waiting in a collective for this one, end within seconds instead of hanging.
// Returns false (and does nothing) outside such a job.
bool abort_job(int code);

// NCCL on cuda:`device`, one rank per rank of `bootstrap` (MPI under a launcher, or Local for one
// process): rank 0's ncclUniqueId is broadcast over `bootstrap`, which the NCCL communicator
// keeps alive. Every rank must pass a different GPU (NCCL refuses two ranks on one device).
// Throws when dfx was built without CUDA and NCCL.
std::shared_ptr<Communicator> make_nccl(std::shared_ptr<Communicator> bootstrap, int device);

bool nccl_available();  // built with NCCL (a device may still be missing)

// This rank's position among the ranks on its host (same host name), and their number: to give
// each rank of a node its own GPU. Collective: every rank of `comm` must call it.
struct NodeRank {
  int local_rank = 0;
  int local_size = 1;
};
NodeRank node_rank(Communicator& comm);

}  // namespace dfx::dist
