// apps/cmd_bench.cpp — `dfx bench`: the end-to-end step-time runner on the canonical workloads
// (WORKLOADS.md): forward + loss + backward + optimiser update, median of --steps after --warmup,
// samples/s, peak memory, and optionally the Hessian-vector product time against a step.
// Prints a table line and, with --json, one JSON object for scripts (bench/compare.py).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "apps/commands.h"
#include "apps/run_common.h"
#include "autodiff/ops.h"
#include "core/cuda_runtime.h"
#include "core/rng.h"
#include "kernels/conv_config.h"
#include "kernels/profile.h"
#include "pde/sampler.h"

namespace dfx::app {

namespace {
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
double max_rss_gib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is in KiB
}

struct BenchOptions : RunOptions {
  int64_t steps = 10, warmup = 3;
  bool hvp = false, json = false, profile = false;
};

std::vector<train::Option<BenchOptions>> bench_options() {
  using S = BenchOptions;
  std::vector<train::Option<S>> o = train::run_options<S>();
  o.insert(o.end(), {
      {"steps", &S::steps, "timed steps"},
      {"warmup", &S::warmup, "untimed steps first"},
      {"hvp", &S::hvp,
       "also time Hessian-vector products (double backward), Jacobian-vector products of the "
       "network output and Gauss-Newton products (J^T C J v)"},
      {"json", &S::json, "print one JSON object instead of the table line"},
      {"profile", &S::profile,
       "after timing, run --steps more steps with per-kernel timers (kernels/profile.h) and print "
       "the table to stderr (and the per-step times in the JSON)"},
  });
  return o;
}

}  // namespace

int cmd_bench(const Args& args) {
  const train::Schema<BenchOptions> schema = command_schema("bench", bench_options());
  BenchOptions o;
  if (!parse_options(schema, "bench", "times training steps of a workload (WORKLOADS.md)", args, o)) return 0;
  apply_optimizer_defaults(o);
  apply_threads(o.threads);
  const Device device = run_device(o);
  auto problem = make_problem(problem_options(o));
  auto model = build_model(o, problem->dims());
  model->train();
  auto params = model->parameters();
  auto opt = build_optimizer(o, params);
  const int64_t B = o.batch;
  DFX_CHECK(B >= 1 && o.steps >= 1 && o.warmup >= 0, "dfx bench: need --batch >= 1, --steps >= 1, --warmup >= 0");
  const DType dtype = run_dtype(o);
  std::vector<uint64_t> idx = pde::train_indices(static_cast<uint64_t>(B));
  Tensor x = problem->input(idx, dtype).to(device);

  // One process, one batch: the objective is the loss itself (any optimiser of the registry).
  auto loss_fn = [&] { return problem->loss((*model)(ad::Var(x)), x, B); };
  optim::FunctionObjective objective(
      [&](bool need_grad) {
        if (!need_grad) {
          ad::NoGradGuard ng;
          return loss_fn().item();
        }
        opt->zero_grad();
        ad::Var loss = loss_fn();
        loss.backward();
        return loss.item();
      },
      [&](const std::vector<Tensor>& v) { return ad::hvp(loss_fn, params, v); });
  auto step = [&] { return opt->step(objective); };
  for (int64_t i = 0; i < o.warmup; ++i) step();
  // The peak of the timed steps: the warm-up's one-off allocations (the convolution autotuner
  // tries cuDNN algorithms with workspaces of up to GiBs) are not what a step needs.
  reset_peak_memory(device);
  std::vector<double> times;
  double last_loss = 0;
  // Host waits per step on a GPU (cuda::host_waits): the loss each step reports is one.
  const int64_t waits0 = cuda::host_waits();
  for (int64_t i = 0; i < o.steps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    last_loss = step();
    times.push_back(seconds_since(t0));
  }
  const double waits_per_step =
      static_cast<double>(cuda::host_waits() - waits0) / static_cast<double>(o.steps);
  const double step_s = median(times);
  const double peak_gib = static_cast<double>(memory_stats(device).peak_bytes) / (1024.0 * 1024.0 * 1024.0);

  double hvp_s = 0, grad_s = 0, apply_s = 0, jvp_s = 0, gn_s = 0, gn_apply_s = 0;
  if (o.hvp) {
    std::vector<Tensor> v;
    for (size_t i = 0; i < params.size(); ++i)
      v.push_back(uniform(params[i].shape(), -1, 1, 12345, i, 0, dtype).to(device));
    // grad: forward + backward. hvp: a fresh HVP (forward, differentiable backward, one more
    // reverse pass). apply: one more HVP at the same point (ad::Hessian::apply), what every
    // Newton-CG inner iteration and Hutchinson probe after the first costs.
    // jvp: forward + J v of the network output (ad::jvp, two reverse passes). gn: forward + J v +
    // the problem's output curvature + J^T (a fresh Gauss-Newton product), then one more at the
    // same point (ad::Jacobian reused), what each Gauss-Newton CG iteration after the first costs.
    std::vector<double> th, tg, ta, tj, tn, tna;
    for (int64_t i = 0; i < o.warmup + o.steps; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      ad::grad({loss_fn()}, params);
      double g = seconds_since(t0);
      t0 = std::chrono::steady_clock::now();
      ad::Hessian hess(loss_fn(), params);
      hess.apply(v);
      double h = seconds_since(t0);
      t0 = std::chrono::steady_clock::now();
      hess.apply(v);
      double a = seconds_since(t0);
      t0 = std::chrono::steady_clock::now();
      ad::jvp({(*model)(ad::Var(x))}, params, v);
      double jt = seconds_since(t0);
      t0 = std::chrono::steady_clock::now();
      ad::Var u = (*model)(ad::Var(x));
      ad::Jacobian jac({u}, params);
      const pde::OutputCurvature curv = problem->curvature(u.data(), x, B);
      jac.transpose_apply({curv(jac.apply(v)[0])});
      double n = seconds_since(t0);
      t0 = std::chrono::steady_clock::now();
      jac.transpose_apply({curv(jac.apply(v)[0])});
      double na = seconds_since(t0);
      if (i >= o.warmup) {
        tg.push_back(g);
        th.push_back(h);
        ta.push_back(a);
        tj.push_back(jt);
        tn.push_back(n);
        tna.push_back(na);
      }
    }
    hvp_s = median(th);
    grad_s = median(tg);
    apply_s = median(ta);
    jvp_s = median(tj);
    gn_s = median(tn);
    gn_apply_s = median(tna);
  }

  // Per-kernel timings in a separate pass, so their events do not perturb the timed steps.
  std::vector<kernels::KernelTiming> kernel_rows;
  if (o.profile) {
    kernels::reset_kernel_profile();
    kernels::set_kernel_profiling(true);
    for (int64_t i = 0; i < o.steps; ++i) step();
    kernels::set_kernel_profiling(false);
    kernel_rows = kernels::kernel_profile();
    std::fprintf(stderr, "per-kernel times over %lld training steps on %s (inclusive):\n",
                 (long long)o.steps, device.str().c_str());
    kernels::print_kernel_profile(stderr);
  }

  if (o.json) {
    nlohmann::json j = {{"engine", "dfx"}, {"problem", o.problem}, {"res", o.res},
                        {"batch", B}, {"step_ms", step_s * 1e3}, {"samples_per_s", B / step_s},
                        {"peak_gib", peak_gib}, {"max_rss_gib", max_rss_gib()}, {"loss", last_loss},
                        {"threads", o.threads}, {"parameters", model->num_parameters()},
                        {"device", device.str()}, {"tf32", kernels::allow_tf32()},
                        {"amx_bf16", kernels::amx_bf16_active()},
                        {"conv_backend", kernels::conv_backend_name(kernels::conv_backend())},
                        {"channels_last", o.channels_last},
                        {"bn_recompute", o.bn_recompute},
                        {"activation_checkpoint", o.activation_checkpoint},
                        {"host_waits_per_step", waits_per_step}};
    if (o.hvp) {
      j["hvp_ms"] = hvp_s * 1e3;
      j["grad_ms"] = grad_s * 1e3;
      j["hvp_over_grad"] = hvp_s / grad_s;
      j["hvp_over_step"] = hvp_s / step_s;
      j["hvp_apply_ms"] = apply_s * 1e3;
      j["hvp_apply_over_grad"] = apply_s / grad_s;
      j["jvp_ms"] = jvp_s * 1e3;
      j["jvp_over_grad"] = jvp_s / grad_s;
      j["gn_ms"] = gn_s * 1e3;
      j["gn_over_grad"] = gn_s / grad_s;
      j["gn_apply_over_grad"] = gn_apply_s / grad_s;
    }
    if (o.profile) {
      nlohmann::json per_step = nlohmann::json::object();
      for (const auto& r : kernel_rows)
        per_step[r.name] = r.total_ms / static_cast<double>(o.steps);
      j["kernel_ms_per_step"] = per_step;
    }
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%-10s N=%-5lld batch %-3lld  step %9.2f ms  %8.2f samples/s  peak %.3f GiB (RSS %.3f GiB)",
                o.problem.c_str(), (long long)o.res, (long long)B, step_s * 1e3, B / step_s,
                peak_gib, max_rss_gib());
    if (device.is_cuda()) std::printf("  host waits/step %.1f", waits_per_step);
    if (o.hvp)
      std::printf("  HVP %.2f ms = %.2f x grad (%.2f x step); one more at the same point %.2f x grad;"
                  " JVP %.2f x grad; Gauss-Newton product %.2f x grad (%.2f x at the same point)",
                  hvp_s * 1e3, hvp_s / grad_s, hvp_s / step_s, apply_s / grad_s, jvp_s / grad_s,
                  gn_s / grad_s, gn_apply_s / grad_s);
    std::printf("\n");
  }
  return 0;
}

}  // namespace dfx::app
