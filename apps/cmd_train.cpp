// apps/cmd_train.cpp — `dfx train`: data-free training of a U-Net on a PDE loss, on one process
// or under mpiexec (exact sharding, bucketed all-reduce, SyncBatchNorm; only rank 0 prints and
// writes). Writes config.json, metrics.jsonl, atomic safetensors checkpoints and, at the end, a
// held-out evaluation with PNG panels and the loss curve.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>

#include "apps/commands.h"
#include "apps/report.h"
#include "apps/run_common.h"
#include "autodiff/ops.h"
#include "core/rng.h"
#include "dist/data_parallel.h"
#include "optim/second_order.h"
#include "pde/sampler.h"

namespace dfx::app {
using T = OptionSpec::Type;

namespace {

// The training order of epoch e: a permutation of [0, n) keyed by (seed, epoch) alone, so every
// rank computes the same one without communicating.
std::vector<uint64_t> epoch_order(uint64_t n, uint64_t seed, int64_t epoch) {
  std::vector<uint64_t> p(n);
  for (uint64_t i = 0; i < n; ++i) p[i] = i;
  for (uint64_t i = n; i > 1; --i) {
    uint64_t j = static_cast<uint64_t>(philox_uniform(seed ^ 0x5eedull, 1000 + epoch, i) * i);
    std::swap(p[i - 1], p[std::min(j, i - 1)]);
  }
  return p;
}

}  // namespace

int cmd_train(const Args& args) {
  std::vector<OptionSpec> specs = run_option_specs();
  specs.insert(specs.end(), {
      {"steps", T::Int, "0", "optimiser steps (0: use --epochs)"},
      {"epochs", T::Int, "1", "passes over --samples training fields"},
      {"samples", T::Int, "256", "training fields per epoch"},
      {"out", T::String, "runs/latest", "run directory"},
      {"checkpoint_every", T::Int, "0", "steps between checkpoints (0: only at the end)"},
      {"resume", T::String, "", "continue from this checkpoint (weights, optimiser state, step)"},
      {"eval_samples", T::Int, "8", "held-out fields evaluated at the end (0: none)"},
      {"eval_every", T::Int, "0", "steps between held-out evaluations logged to metrics.jsonl (0: end only)"},
      {"max_time", T::Float, "0", "stop after this many seconds of training, evaluations excluded (0: no limit)"},
      {"panels", T::Int, "3", "held-out fields drawn in panels.png"},
      {"log_every", T::Int, "10", "steps between plain progress lines (not on a terminal)"},
      {"bucket_mb", T::Float, "25", "gradient all-reduce bucket size (MiB)"},
      {"sync_bn", T::Bool, "true", "batch-norm moments over the global batch under MPI"},
      {"overlap", T::Bool, "true", "start gradient all-reduces during backward (false: after it)"},
      {"comm", T::String, "auto", "communicator: auto (NCCL for one GPU per MPI rank, else MPI "
       "under mpiexec, else one process), local, mpi (device tensors staged through the host) or "
       "nccl (needs --device cuda)", {"auto", "local", "mpi", "nccl"}},
  });
  Options o("train", "trains a U-Net on a PDE loss, data-free", specs);
  if (!o.parse(args)) return 0;
  apply_optimizer_defaults(o);

  apply_threads(o.i("threads"));
  const RunComm run_comm = make_run_comm(o);
  const auto& comm = run_comm.comm;
  const Device device = run_comm.device;
  const bool root = comm->rank() == 0;
  const std::string out = o.s("out");
  // Every rank checks; only rank 0 writes.
  if (root) ensure_directory(out);
  if (!o.s("resume").empty()) {
    // Architecture and problem come from the checkpoint unless given again on this command line.
    LoadedCheckpoint meta = read_checkpoint_metadata(o.s("resume"));
    for (const char* k : {"problem", "res", "depth", "width", "dtype", "seed"})
      if (!o.given(k) && meta.config.contains(k)) o.apply_json(nlohmann::json{{k, meta.config[k]}}, "the checkpoint");
  }
  auto problem = make_problem(problem_options(o));
  const int64_t B = o.i("batch"), samples = o.i("samples");
  DFX_CHECK(B >= 1, "--batch must be >= 1, got ", B);
  DFX_CHECK(samples >= 1, "--samples must be >= 1, got ", samples);
  const int64_t steps_per_epoch = (samples + B - 1) / B;
  const int64_t total_steps = o.i("steps") > 0 ? o.i("steps") : o.i("epochs") * steps_per_epoch;
  DFX_CHECK(total_steps >= 1, "nothing to do: --steps and --epochs are both 0");

  auto model = build_model(o, problem->dims(), device);
  model->train();
  auto params = model->parameters();
  auto opt = build_optimizer(o, params);
  const optim::Schedule schedule = build_schedule(o, total_steps);
  int64_t start_step = 0;
  if (!o.s("resume").empty()) {
    start_step = load_run_checkpoint(o.s("resume"), *model, opt.get()).step;
    DFX_CHECK(start_step < total_steps, "--resume: the checkpoint is at step ", start_step,
              ", at or past the requested ", total_steps, " steps; raise --steps or --epochs");
  }
  std::vector<Tensor> state;
  for (auto& [name, t] : model->state_dict()) state.push_back(t);
  dist::broadcast_tensors(*comm, state);  // rank 0's weights everywhere
  if (comm->size() > 1 && o.b("sync_bn"))
    for (auto& [name, m] : model->named_modules())
      if (auto* bn = dynamic_cast<nn::BatchNorm*>(m)) bn->set_all_reduce(dist::channel_all_reduce(comm));
  dist::GradReducer reducer(comm, params, static_cast<size_t>(o.f("bucket_mb") * 1048576.0),
                            o.b("overlap"));
  double wait_total = 0, step_total = 0;

  nlohmann::json config = o.to_json();
  config["ranks"] = comm->size();
  config["backend"] = comm->backend();
  std::ofstream metrics;
  if (root) {
    write_text_atomic(out + "/config.json", config.dump(2) + "\n");
    metrics.open(out + "/metrics.jsonl", start_step > 0 ? std::ios::app : std::ios::trunc);
    DFX_CHECK(metrics.good(), "cannot write '", out, "/metrics.jsonl'");
    ensure_directory(out + "/checkpoints");
    std::printf("dfx train: %s N=%lld, U-Net depth %lld width %lld (%s parameters), batch %lld on %d rank%s (%s, %s), %lld steps\n",
                o.s("problem").c_str(), (long long)o.i("res"), (long long)o.i("depth"),
                (long long)o.i("width"), nn::format_count(model->num_parameters()).c_str(),
                (long long)B, comm->size(), comm->size() > 1 ? "s" : "", comm->backend().c_str(),
                device.str().c_str(), (long long)total_steps);
  }
  const bool tty = root && ::isatty(STDOUT_FILENO);
  // Held-out fields and their reference solutions, once: periodic evaluations only run the model.
  const int64_t n_eval = o.i("eval_samples");
  DFX_CHECK(n_eval >= 0, "--eval-samples must be >= 0, got ", n_eval);
  EvalResult held_out;
  if (root && n_eval > 0) held_out = prepare_eval(*problem, n_eval, run_dtype(o));
  double eval_seconds = 0;  // excluded from the reported training time
  const DType dtype = run_dtype(o);
  const std::string last_ckpt = out + "/checkpoints/last.safetensors";
  std::string last_good = o.s("resume");
  std::vector<double> curve_x, curve_y;
  auto t_start = std::chrono::steady_clock::now();
  int status = 0;
  int64_t step = start_step;
  for (; step < total_steps; ++step) {
    const int64_t epoch = step / steps_per_epoch, k = step % steps_per_epoch;
    std::vector<uint64_t> order = epoch_order(static_cast<uint64_t>(samples), static_cast<uint64_t>(o.i("seed")), epoch);
    const int64_t begin = k * B, count = std::min(B, samples - begin);
    std::vector<int64_t> global(count);
    for (int64_t i = 0; i < count; ++i) global[i] = static_cast<int64_t>(order[begin + i]);
    std::vector<int64_t> mine = dist::shard_indices(global, comm->rank(), comm->size());
    std::vector<uint64_t> local(mine.begin(), mine.end());

    auto t0 = std::chrono::steady_clock::now();
    // This rank's share of the global loss (sum of its per-sample losses / global count). An
    // empty shard still runs the network when SyncBatchNorm needs its collectives.
    auto local_loss = [&]() -> ad::Var {
      if (local.empty() && !(comm->size() > 1 && o.b("sync_bn"))) return ad::Var();
      Tensor x = (local.empty() ? Tensor::empty(problem->field_shape(0), dtype) : problem->input(local, dtype)).to(device);
      return problem->loss((*model)(ad::Var(x)), x, count);
    };
    // Newton-CG, and AdaHessian on the steps it re-estimates the diagonal, need HVPs at the
    // point where they take the gradient: that gradient is then taken differentiably and its
    // graph kept (dist::Hessian), so each HVP costs one reverse pass instead of three.
    auto* ncg = dynamic_cast<optim::NewtonCG*>(opt.get());
    auto* ada = dynamic_cast<optim::AdaHessian*>(opt.get());
    const bool want_hessian = ncg || (ada && ada->hessian_due());
    std::optional<dist::Hessian> hessian;  // at the current parameters, or empty
    // The global loss; with need_grad the global gradient is left in every parameter's .grad().
    auto closure = [&](bool need_grad) -> double {
      hessian.reset();  // the parameters may have moved since it was built
      Tensor sum = zeros({}, DType::Float64);
      if (need_grad && want_hessian) {
        opt->zero_grad();
        ad::Var l = local_loss();
        hessian.emplace(*comm, l, params);
        for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(ad::Var(hessian->gradient()[i]));
        if (l.defined() && !local.empty()) sum = l.data().to(DType::Float64).cpu().clone();
      } else if (need_grad) {
        opt->zero_grad();
        ad::Var l = local_loss();
        if (l.defined()) {
          l.backward();
          if (!local.empty()) sum = l.data().to(DType::Float64).cpu().clone();
        }
        reducer.finish();
      } else {
        ad::NoGradGuard ng;
        ad::Var l = local_loss();
        if (l.defined() && !local.empty()) sum = l.data().to(DType::Float64).cpu().clone();
      }
      comm->all_reduce(sum);
      return sum.item();
    };
    // The global Hessian-vector product at the current parameters (the sum of local HVPs).
    auto hvp_fn = [&](const std::vector<Tensor>& v) -> std::vector<Tensor> {
      if (!hessian) hessian.emplace(*comm, local_loss(), params);
      return hessian->apply(v);
    };
    double loss = 0;
    opt->set_lr(schedule.lr(step));
    if (auto* lbfgs = dynamic_cast<optim::LBFGS*>(opt.get())) {
      loss = lbfgs->step(closure);
    } else if (ncg) {
      loss = ncg->step(closure, hvp_fn);
    } else {
      loss = closure(true);
    }
    if (!std::isfinite(loss)) {
      if (root)
        std::fprintf(stderr, "%sdfx train: the loss became %s at step %lld; stopping. Last good checkpoint: %s\n",
                     tty ? "\n" : "", std::isnan(loss) ? "NaN" : "Inf", (long long)(step + 1),
                     last_good.empty() ? "(none written yet)" : last_good.c_str());
      status = 3;
      break;
    }
    if (ada) ada->step(hvp_fn);
    else if (!dynamic_cast<optim::LBFGS*>(opt.get()) && !ncg) opt->step();
    hessian.reset();
    const double dt = seconds_since(t0), elapsed = seconds_since(t_start) - eval_seconds;
    const double sps = static_cast<double>(count) / dt;
    wait_total += reducer.last_wait_seconds();
    step_total += dt;
    if (root) {
      nlohmann::json row = {{"step", step + 1}, {"epoch", epoch}, {"loss", loss}, {"time_s", dt},
                            {"elapsed_s", elapsed}, {"samples_per_s", sps}, {"lr", opt->lr()},
                            {"comm_wait_s", reducer.last_wait_seconds()}};
      metrics << row.dump() << "\n";
      metrics.flush();
      curve_x.push_back(static_cast<double>(step + 1));
      curve_y.push_back(loss);
      const double eta = elapsed / static_cast<double>(step + 1 - start_step) * static_cast<double>(total_steps - step - 1);
      char line[200];
      std::snprintf(line, sizeof line, "step %lld/%lld  epoch %lld  loss %.5e  %.1f samples/s  ETA %s",
                    (long long)(step + 1), (long long)total_steps, (long long)epoch, loss, sps,
                    format_duration(eta).c_str());
      if (tty) {
        std::printf("\r%-90s", line);
        std::fflush(stdout);
      } else if ((step + 1) % std::max<int64_t>(o.i("log_every"), 1) == 0 || step + 1 == total_steps || step == start_step) {
        std::printf("%s\n", line);
        std::fflush(stdout);
      }
    }
    const int64_t eval_every = o.i("eval_every");
    if (root && n_eval > 0 && eval_every > 0 && (step + 1) % eval_every == 0) {
      auto te = std::chrono::steady_clock::now();
      run_eval(*model, *problem, held_out);
      eval_seconds += seconds_since(te);
      nlohmann::json row = {{"step", step + 1}, {"train_time_s", elapsed},
                            {"epochs", static_cast<double>((step + 1) * B) / static_cast<double>(samples)},
                            {"eval_rel_l2_mean", held_out.summary.mean},
                            {"eval_rel_l2_max", held_out.summary.max}};
      metrics << row.dump() << "\n";
      metrics.flush();
      if (!tty) std::printf("step %lld: held-out relative L2 error mean %.4e (after %s of training)\n",
                            (long long)(step + 1), held_out.summary.mean, format_duration(elapsed).c_str());
    }
    if (o.f("max_time") > 0) {
      // Every rank stops at the same step: rank 0's clock decides.
      Tensor stop = full({}, elapsed >= o.f("max_time") ? 1.0 : 0.0, DType::Float64);
      dist::broadcast_tensors(*comm, {stop});
      if (stop.item() > 0 && step + 1 < total_steps) {
        if (root) std::printf("%sstopping after step %lld: --max-time %.0f s of training reached\n",
                              tty ? "\n" : "", (long long)(step + 1), o.f("max_time"));
        ++step;
        break;
      }
    }
    const int64_t every = o.i("checkpoint_every");
    if (every > 0 && (step + 1) % every == 0 && step + 1 < total_steps) {
      if (root) {
        char name[64];
        std::snprintf(name, sizeof name, "/checkpoints/step_%06lld.safetensors", (long long)(step + 1));
        save_run_checkpoint(out + name, *model, opt.get(), config, step + 1, epoch);
        save_run_checkpoint(last_ckpt, *model, opt.get(), config, step + 1, epoch);
        last_good = last_ckpt;
      }
    }
  }
  if (tty) std::printf("\n");
  if (status != 0) return status;
  const int64_t steps_done = std::min(step, total_steps);
  if (root && comm->size() > 1)
    std::printf("time blocked on gradient all-reduce: %.1f%% of step time (%s overlap, %zu buckets)\n",
                100.0 * wait_total / std::max(step_total, 1e-12), o.b("overlap") ? "with" : "without",
                reducer.bucket_count());
  if (root) {
    save_run_checkpoint(last_ckpt, *model, opt.get(), config, steps_done, (steps_done - 1) / steps_per_epoch);
    std::printf("checkpoint: %s\n", last_ckpt.c_str());
    write_loss_curve(out + "/loss.png", curve_x, curve_y, o.s("problem"));
    if (n_eval > 0) {
      run_eval(*model, *problem, held_out);
      std::printf("held-out relative L2 error over %lld fields: mean %.4e, max %.4e\n",
                  (long long)n_eval, held_out.summary.mean, held_out.summary.max);
      write_eval_summary(out + "/eval.json", held_out, config);
      const int64_t n_panels = std::min(o.i("panels"), n_eval);
      write_panels(out + "/panels", held_out, *problem, n_panels);
      if (n_panels > 0)
        std::printf("pictures: %s/panels_0.png .. panels_%lld.png, %s/loss.png\n", out.c_str(),
                    (long long)(n_panels - 1), out.c_str());
    }
  }
  return 0;
}

}  // namespace dfx::app
