// tests/mpi/mpi_world.h — the communicator shared by the MPI suites, and collective checks:
// every rank evaluates the same assertions, and all_ranks() makes each one true only if it holds
// on every rank, so rank 0's report (the only one printed) is the verdict of the whole job.
#pragma once
#include <memory>

#include "dist/communicator.h"

namespace dfx::testing {

dist::Communicator& world();
std::shared_ptr<dist::Communicator> world_ptr();
bool all_ranks(bool ok);

}  // namespace dfx::testing
