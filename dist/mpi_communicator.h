// dist/mpi_communicator.h — for programs that embed dfx in their own MPI code: build a dfx
// communicator from any MPI_Comm (dfx duplicates it, so its traffic never mixes with yours).
// Include only where <mpi.h> is available (dfx built with MPI).
#pragma once
#include <mpi.h>

#include <memory>

#include "dist/communicator.h"

namespace dfx::dist {

std::shared_ptr<Communicator> make_mpi(MPI_Comm comm);

}  // namespace dfx::dist
