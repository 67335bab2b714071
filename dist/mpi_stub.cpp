// dist/mpi_stub.cpp — without MPI, dfx runs single-process: make_default() is Local and asking
// for MPI explicitly says how to get it.
#include "dist/communicator.h"
#include "dist/job.h"

namespace dfx::dist {

std::shared_ptr<Communicator> make_mpi() {
  DFX_FAIL("make_mpi: dfx was built without MPI (apt-get install libmpich-dev, then reconfigure)");
}
std::shared_ptr<Communicator> make_default() { return make_local(); }
bool mpi_available() { return false; }
bool abort_job(int) { return false; }
int job_rank() { return -1; }

}  // namespace dfx::dist
