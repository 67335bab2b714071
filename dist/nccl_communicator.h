// dist/nccl_communicator.h — what only the NCCL backend has, beyond dist::Communicator: the side
// stream its collectives run on, for ordering your own work against them. Compiles in every
// build (no NCCL types); make_nccl() itself is declared in dist/communicator.h.
#pragma once
#include "core/cuda_runtime.h"
#include "dist/communicator.h"

namespace dfx::dist {

// The high-priority stream on which `comm` runs its NCCL calls. Each collective waits there for
// the work queued so far on the caller's current stream, and blocking calls (and Work::wait())
// make the current stream wait for it in turn, so code that stays on its current stream never
// needs this. Throws when `comm` is not an NCCL communicator.
cuda::Stream nccl_stream(const Communicator& comm);

}  // namespace dfx::dist
