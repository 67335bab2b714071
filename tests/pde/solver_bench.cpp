// tests/pde/solver_bench.cpp — times the Poisson reference solver on W1/W2 fields and prints a
// markdown table (docs/reference_solvers.md). Usage:
//   pde_solver_bench [--dim 2|3] [--plain] [--samples K] [--seed S] N [N ...]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <omp.h>
#include <string>
#include <vector>

#include "pde/poisson_solver.h"
#include "pde/sampler.h"

using namespace dfx;
using namespace dfx::pde;

int main(int argc, char** argv) {
  int dim = 2, samples = 1;
  uint64_t seed = 1;
  PoissonOptions opts;
  std::vector<int64_t> sizes;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--dim" && i + 1 < argc) dim = std::atoi(argv[++i]);
    else if (a == "--plain") opts.preconditioner = Preconditioner::None;
    else if (a == "--samples" && i + 1 < argc) samples = std::atoi(argv[++i]);
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else sizes.push_back(std::atoll(argv[i]));
  }
  if (sizes.empty()) sizes = dim == 2 ? std::vector<int64_t>{64, 128, 256, 512, 1024}
                                      : std::vector<int64_t>{32, 64};
  std::printf("W%d fields (held-out samples 2^40 + 0..%d, seed %llu), rtol %.0e, %s, "
              "%d threads\n\n",
              dim == 2 ? 1 : 2, samples - 1, static_cast<unsigned long long>(seed), opts.rtol,
              opts.preconditioner == Preconditioner::None ? "plain CG" : "multigrid PCG",
              omp_get_max_threads());
  std::printf("| N | nodes | levels | iterations | rel. residual | setup s | solve s "
              "| total s |\n");
  std::printf("|---:|---:|---|---:|---:|---:|---:|---:|\n");
  try {
    for (int64_t n : sizes) {
      for (int s = 0; s < samples; ++s) {
        const Tensor nu = nu_batch(dim, n, seed, {kHeldOutStart + s}, DType::Float64);
        const PoissonSolution sol = solve_poisson(nu.select(0, 0).select(0, 0), opts);
        const PoissonStats& st = sol.stats[0];
        std::printf("| %lld | %lld | %s | %d | %.1e | %.3f | %.3f | %.3f |\n",
                    static_cast<long long>(n), static_cast<long long>(nu.numel()),
                    st.hierarchy.empty() ? "-" : st.hierarchy.c_str(), st.iterations,
                    st.relative_residual, st.setup_seconds, st.solve_seconds,
                    st.setup_seconds + st.solve_seconds);
        std::fflush(stdout);
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "pde_solver_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
