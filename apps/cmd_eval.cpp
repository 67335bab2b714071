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
using T = OptionSpec::Type;

int cmd_eval(const Args& args) {
  Options o("eval", "evaluates a checkpoint against the reference solver on held-out fields",
            {{"checkpoint", T::String, "", "checkpoint written by dfx train"},
             {"samples", T::Int, "64", "held-out fields"},
             {"res", T::Int, "0", "grid nodes per side to evaluate at (0: the run's); the U-Net is "
              "fully convolutional, so any multiple of 2^(depth-1) works"},
             {"out", T::String, "", "directory for summary.json and the .npy arrays (optional)"},
             {"panels", T::Int, "0", "also draw this many fields into panels.png"},
             {"threads", T::Int, "0", "CPU threads (0: OpenMP default)"},
             {"device", T::String, "cpu", "cpu or cuda[:N] (whatever device the run trained on)"},
             {"tf32", T::Bool, "false", "float32 CUDA convolutions may use TF32 (or DFX_TF32=1)"},
             {"conv_backend", T::String, "", "CUDA convolutions (unset: DFX_CONV_BACKEND, else "
              "auto on a GPU when dfx has cuDNN, else native)", {"auto", "native", "cudnn"}}});
  if (!o.parse(args)) return 0;
  DFX_CHECK(!o.s("checkpoint").empty(), "dfx eval: --checkpoint PATH is required");
  DFX_CHECK(o.i("samples") >= 1, "--samples must be >= 1, got ", o.i("samples"));
  apply_threads(o.i("threads"));
  const std::string path = o.s("checkpoint");
  LoadedCheckpoint meta = read_checkpoint_metadata(path);
  Options run("train", "", run_option_specs());
  nlohmann::json known = nlohmann::json::object();
  const nlohmann::json defaults = run.to_json();
  for (auto it = defaults.begin(); it != defaults.end(); ++it)
    if (meta.config.contains(it.key()) && !meta.config[it.key()].is_null()) known[it.key()] = meta.config[it.key()];
  // How to compute comes from this command line, not from the run that trained.
  known.erase("tf32");
  known.erase("conv_backend");
  run.apply_json(known, "checkpoint '" + path + "'");
  run.apply_json(nlohmann::json{{"device", o.s("device")}}, "--device");
  DFX_CHECK(o.i("res") >= 0, "dfx eval: --res must be >= 0 (0: the run's resolution), got ", o.i("res"));
  if (o.i("res") > 0) run.apply_json(nlohmann::json{{"res", o.i("res")}}, "--res");
  run.apply_json(nlohmann::json{{"tf32", o.b("tf32")}}, "--tf32");
  if (!o.s("conv_backend").empty())
    run.apply_json(nlohmann::json{{"conv_backend", o.s("conv_backend")}}, "--conv-backend");
  auto problem = make_problem(problem_options(run));
  auto model = build_model(run, problem->dims());
  load_run_checkpoint(path, *model, nullptr);
  {
    // The held-out inputs, predictions and references are kept in float64 (three fields each).
    double field = 1;
    for (int64_t d : problem->field_shape(1)) field *= static_cast<double>(d);
    const double need = 3.0 * 8.0 * field * static_cast<double>(o.i("samples"));
    const double avail = train::available_memory_bytes(Device::cpu());
    DFX_CHECK(avail <= 0 || need < 0.8 * avail, "dfx eval: --samples ", o.i("samples"), " at N=",
              run.i("res"), " needs about ", train::format_bytes(need), " of memory, but ",
              train::format_bytes(avail), " is available; evaluate fewer fields");
  }
  EvalResult r = evaluate(*model, *problem, o.i("samples"), run_dtype(run));
  std::printf("%s N=%lld, step %lld: relative L2 error over %lld held-out fields: mean %.4e, max %.4e\n",
              run.s("problem").c_str(), (long long)run.i("res"), (long long)meta.step,
              (long long)o.i("samples"), r.summary.mean, r.summary.max);
  DFX_CHECK(std::isfinite(r.summary.mean) && std::isfinite(r.summary.max), "dfx eval: checkpoint '",
            path, "' gives non-finite predictions (relative L2 error mean ", r.summary.mean, ", max ",
            r.summary.max, "); its weights are probably NaN or Inf: evaluate an earlier checkpoint");
  std::printf("  with batch-norm by these fields' own moments: mean %.4e; loss gap to the reference: "
              "mean %.4e, max %.4e\n", r.summary_batch_bn.mean, r.loss_gap.mean, r.loss_gap.max);
  if (!o.s("out").empty()) {
    ensure_directory(o.s("out"));
    write_eval_summary(o.s("out") + "/summary.json", r, meta.config);
    write_eval_arrays(o.s("out"), r);
    if (o.i("panels") > 0)
      write_panels(o.s("out") + "/panels", r, *problem, std::min(o.i("panels"), o.i("samples")));
    std::printf("wrote %s/summary.json, inputs.npy, predictions.npy, reference.npy\n", o.s("out").c_str());
  }
  return 0;
}

}  // namespace dfx::app
