// apps/cmd_solve.cpp — `dfx solve`: the classical reference solution (multigrid-preconditioned CG
// for Poisson, finite volumes for Burgers) for a field given as .npy or by sample index, to .npy.
#include <cstdio>

#include "apps/commands.h"
#include "apps/run_common.h"
#include "core/npy.h"
#include "pde/sampler.h"

namespace dfx::app {
namespace {

struct SolveOptions : train::OptionSet {
  std::string problem = "poisson2d";
  int64_t res = 64;
  std::string input;
  int64_t sample = -1;
  bool heldout = false;
  int64_t seed = 0;
  double visc = 0.01;
  std::string out = "solution.npy";
  int64_t threads = 0;
};

std::vector<train::Option<SolveOptions>> solve_options() {
  using S = SolveOptions;
  return {{"problem", &S::problem, "workload", {"poisson2d", "poisson3d", "burgers"}},
          {"res", &S::res, "grid nodes per side (when the field is a sample index)"},
          {"input", &S::input, ".npy input field (omega = log nu for Poisson, b(x) for Burgers)"},
          {"sample", &S::sample, "use training sample K instead of --input"},
          {"heldout", &S::heldout, "--sample K names held-out sample K"},
          {"seed", &S::seed, "seed of the sampled fields"},
          {"visc", &S::visc, "Burgers viscosity"},
          {"out", &S::out, "output .npy"},
          {"threads", &S::threads, "CPU threads (0: OpenMP default)"}};
}

}  // namespace

int cmd_solve(const Args& args) {
  const train::Schema<SolveOptions> schema = command_schema("solve", solve_options());
  SolveOptions o;
  if (!parse_options(schema, "solve", "reference solution of one field, written as .npy", args, o)) return 0;
  apply_threads(o.threads);
  DFX_CHECK(!o.was_given("sample") || o.sample >= 0, "dfx solve: --sample must be >= 0 (the "
            "index of a training field, or a held-out one with --heldout), got ", o.sample);
  const bool from_file = !o.input.empty();
  DFX_CHECK(from_file != (o.sample >= 0), "dfx solve: give exactly one of --input FILE.npy or --sample K");
  ProblemOptions p;
  p.name = o.problem;
  p.seed = static_cast<uint64_t>(o.seed);
  p.visc = o.visc;
  p.res = o.res;
  Tensor field;
  std::vector<uint64_t> samples;
  if (from_file) {
    field = load_npy(o.input).to(DType::Float64);
    const int want = p.name == "poisson3d" ? 3 : (p.name == "burgers" ? 1 : 2);
    DFX_CHECK(field.dim() == want || (field.dim() == want + 2 && field.shape()[0] == 1 && field.shape()[1] == 1),
              "dfx solve: '", o.input, "' holds ", field.describe(), "; expected a ", want,
              "-d field for ", p.name);
    p.res = field.shape().back();
    for (int64_t k = field.dim() - want; k < field.dim(); ++k)
      DFX_CHECK(field.shape()[k] == p.res, "dfx solve: '", o.input, "' holds ", field.describe(),
                "; expected a ", p.name == "poisson3d" ? "cubic" : "square", " field (the same "
                "number of nodes along every axis)");
    DFX_CHECK(p.res >= 4, "dfx solve: '", o.input, "' holds ", field.describe(), "; expected "
              "at least 4 nodes per side");
  }
  auto problem = make_problem(p);
  Tensor input;
  if (from_file) {
    input = p.name == "burgers" ? field.reshape({1, 1, 1, p.res}).expand({1, 1, p.res, p.res}).contiguous()
                                : field.reshape(problem->field_shape(1));
  } else {
    uint64_t k = static_cast<uint64_t>(o.sample);
    samples = {o.heldout ? pde::held_out_indices(k + 1).back() : k};
    input = problem->input(samples, DType::Float64);
  }
  Tensor u = problem->reference(input, samples);
  Shape out_shape(u.shape().begin() + 2, u.shape().end());
  save_npy(o.out, u.reshape(out_shape));
  std::printf("wrote %s: %s reference, %s\n", o.out.c_str(), p.name.c_str(), u.reshape(out_shape).describe().c_str());
  return 0;
}

}  // namespace dfx::app
