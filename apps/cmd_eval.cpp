// apps/cmd_eval.cpp — `dfx eval --checkpoint PATH --samples M --out DIR`: relative L2 error of a
// trained model against the classical reference on M held-out fields; writes summary.json and
// inputs/predictions/reference .npy arrays for analysis in Python.
#include <cmath>
#include <cstdio>

#include "apps/commands.h"
#include "apps/report.h"
#include "apps/run_common.h"
#include "train/memory.h"

namespace dfx::app {
namespace {

struct EvalOptions : train::OptionSet {
  std::string checkpoint;
  int64_t samples = 64, res = 0;
  std::string out;
  int64_t panels = 0, threads = 0;
  std::string device = "cpu";
  bool tf32 = false, amx_bf16 = false;
  std::string conv_backend;
};

std::vector<train::Option<EvalOptions>> eval_options() {
  using S = EvalOptions;
  return {{"checkpoint", &S::checkpoint, "checkpoint written by dfx train"},
          {"samples", &S::samples, "held-out fields"},
          {"res", &S::res, "grid nodes per side to evaluate at (0: the run's); the U-Net is fully "
           "convolutional, so any multiple of 2^(depth-1) works"},
          {"out", &S::out, "directory for summary.json and the .npy arrays (optional)"},
          {"panels", &S::panels, "also draw this many fields into panels.png"},
          {"threads", &S::threads, "CPU threads (0: OpenMP default)"},
          {"device", &S::device, "cpu or cuda[:N] (whatever device the run trained on)"},
          {"tf32", &S::tf32, "float32 CUDA convolutions may use TF32 (or DFX_TF32=1)"},
          {"amx_bf16", &S::amx_bf16, "float32 CPU convolutions may use AMX bf16 tiles (or "
           "DFX_AMX_BF16=1)"},
          {"conv_backend", &S::conv_backend, "CUDA convolutions (unset: DFX_CONV_BACKEND, else auto "
           "on a GPU when dfx has cuDNN, else native)", {"auto", "native", "cudnn"}}};
}

}  // namespace

int cmd_eval(const Args& args) {
  const train::Schema<EvalOptions> schema = command_schema("eval", eval_options());
  EvalOptions o;
  if (!parse_options(schema, "eval", "evaluates a checkpoint against the reference solver on "
                     "held-out fields", args, o))
    return 0;
  DFX_CHECK(!o.checkpoint.empty(), "dfx eval: --checkpoint PATH is required");
  DFX_CHECK(o.samples >= 1, "--samples must be >= 1, got ", o.samples);
  apply_threads(o.threads);
  const std::string path = o.checkpoint;
  LoadedCheckpoint meta = read_checkpoint_metadata(path);
  // The run's problem and network from the checkpoint's stored config (the keys of dfx train).
  const train::Schema<RunOptions> run_schema(train::run_options<RunOptions>(), {"dfx eval: ", true});
  RunOptions run;
  nlohmann::json known = nlohmann::json::object();
  for (const std::string& k : run_schema.keys())
    if (meta.config.contains(k) && !meta.config[k].is_null()) known[k] = meta.config[k];
  // How to compute comes from this command line, not from the run that trained.
  known.erase("tf32");
  known.erase("amx_bf16");
  known.erase("conv_backend");
  run_schema.apply_json(run, known, "checkpoint '" + path + "'");
  run.device = o.device;
  DFX_CHECK(o.res >= 0, "dfx eval: --res must be >= 0 (0: the run's resolution), got ", o.res);
  if (o.res > 0) run.res = o.res;
  run.tf32 = o.tf32;
  run.amx_bf16 = o.amx_bf16;
  run.conv_backend = o.conv_backend;
  auto problem = make_problem(problem_options(run));
  // A --grow-depth run's checkpoint: the network as grown at its step.
  const int grown = meta.config.value("grown_levels", 0);
  auto model = build_model(run, problem->dims(), run_device(run), grown);
  load_run_checkpoint(path, *model, nullptr);
  {
    // The held-out inputs, predictions and references are kept in float64 (three fields each).
    double field = 1;
    for (int64_t d : problem->field_shape(1)) field *= static_cast<double>(d);
    const double need = 3.0 * 8.0 * field * static_cast<double>(o.samples);
    const double avail = train::available_memory_bytes(Device::cpu());
    DFX_CHECK(avail <= 0 || need < 0.8 * avail, "dfx eval: --samples ", o.samples, " at N=",
              run.res, " needs about ", train::format_bytes(need), " of memory, but ",
              train::format_bytes(avail), " is available; evaluate fewer fields");
  }
  EvalResult r = evaluate(*model, *problem, o.samples, run_dtype(run));
  std::printf("%s N=%lld, step %lld: relative L2 error over %lld held-out fields: mean %.4e, max %.4e\n",
              run.problem.c_str(), (long long)run.res, (long long)meta.step, (long long)o.samples, r.summary.mean, r.summary.max);
  DFX_CHECK(std::isfinite(r.summary.mean) && std::isfinite(r.summary.max), "dfx eval: checkpoint '",
            path, "' gives non-finite predictions (relative L2 error mean ", r.summary.mean, ", max ",
            r.summary.max, "); its weights are probably NaN or Inf: evaluate an earlier checkpoint");
  std::printf("  with batch-norm by these fields' own moments: mean %.4e; loss gap to the reference: "
              "mean %.4e, max %.4e\n", r.summary_batch_bn.mean, r.loss_gap.mean, r.loss_gap.max);
  if (!o.out.empty()) {
    ensure_directory(o.out);
    write_eval_summary(o.out + "/summary.json", r, meta.config);
    write_eval_arrays(o.out, r);
    if (o.panels > 0) write_panels(o.out + "/panels", r, *problem, std::min(o.panels, o.samples));
    std::printf("wrote %s/summary.json, inputs.npy, predictions.npy, reference.npy\n", o.out.c_str());
  }
  return 0;
}

}  // namespace dfx::app
