// apps/dfx_main.cpp — `dfx <command> [options]`: dispatches to a subcommand and turns any dfx::Error
// into a message on stderr and exit status 2.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <thread>

#include "apps/commands.h"
#include "core/error.h"
#include "dist/communicator.h"
#include "dist/job.h"

namespace {

struct Command {
  const char* name;
  int (*run)(const dfx::app::Args&);
  const char* help;
};

const Command kCommands[] = {
    {"train", dfx::app::cmd_train, "train a U-Net on a PDE loss (data-free); works under mpiexec"},
    {"eval", dfx::app::cmd_eval, "relative L2 error of a checkpoint against the reference solver"},
    {"solve", dfx::app::cmd_solve, "reference solution of one field (.npy in, .npy out)"},
    {"bench", dfx::app::cmd_bench, "step time, samples/s, peak memory and HVP cost of a workload"},
    {"info", dfx::app::cmd_info, "version, built parts (CUDA, cuDNN, NCCL, MPI) and devices"},
    {"demo", dfx::app::cmd_demo, "fit a small network with the tape, printing the loss"},
};

void usage(FILE* out) {
  std::fprintf(out, "usage: dfx <command> [options]   (dfx <command> --help for its options)\n\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-8s %s\n", c.name, c.help);
}

// This process's rank in an MPI job, from the launcher's environment (MPICH, Open MPI, PMIx,
// Slurm); 0 outside one.
int launcher_rank() {
  for (const char* v : {"PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"})
    if (const char* r = std::getenv(v)) return std::atoi(r);
  return 0;
}

// Under mpiexec an error every rank meets (a bad flag or value) is printed once, by rank 0.
// Before MPI is up the ranks have only parsed the same arguments, so the others stay silent
// (false: do not print). Once it is up, the others wait a moment, in which rank 0, failing too,
// prints and aborts the job; a rank that fails alone still prints after the wait, then aborts it.
bool report_here() {
  if (launcher_rank() == 0) return true;
  if (dfx::dist::job_rank() < 0) return false;
  std::this_thread::sleep_for(std::chrono::seconds(2));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  dfx::app::Args args(argv + 2, argv + argc);
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.run(args);
    } catch (const dfx::Error& e) {
      // Messages from option parsing already start with "dfx <command>:".
      if (!report_here()) {
      } else if (std::strncmp(e.what(), "dfx ", 4) == 0) {
        std::fprintf(stderr, "error: %s\n", e.what());
      } else {
        std::fprintf(stderr, "dfx %s: error: %s\n", c.name, e.what());
      }
      dfx::dist::abort_job(2);  // under mpiexec: end the other ranks too, not leave them waiting
      return 2;
    } catch (const std::exception& e) {
      if (report_here()) std::fprintf(stderr, "dfx %s: unexpected error: %s\n", c.name, e.what());
      dfx::dist::abort_job(3);
      return 3;
    }
  }
  std::fprintf(stderr, "dfx: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
