// dist/job.h — where this process stands in an MPI job, for code that must not pull in the
// communicators (the command line's error reporting).
#pragma once

namespace dfx::dist {

// This process's rank in MPI_COMM_WORLD while MPI is initialised (and not yet finalised); -1
// before MPI_Init, after MPI_Finalize, or when dfx was built without MPI.
int job_rank();

}  // namespace dfx::dist
