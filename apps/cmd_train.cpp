// apps/cmd_train.cpp — `dfx train`: the options become a train::TrainConfig, the library's
// Trainer runs (exact sharding, bucketed all-reduce, SyncBatchNorm, checkpoints; train/trainer.h),
// and this file adds what a person sees: the progress line, metrics.jsonl, the held-out
// evaluation's summary, PNG panels and the loss curve (only rank 0 prints and writes).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <set>

#include "apps/commands.h"
#include "apps/report.h"
#include "apps/run_common.h"
#include "train/signals.h"
#include "train/trainer.h"

namespace dfx::app {

namespace {

std::string value_text(const nlohmann::json& v) {
  if (v.is_null()) return "(unset)";
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// --resume: every setting that shapes the trajectory (problem, resolution, network, batch,
// samples, seed, optimiser and its hyper-parameters, schedule, levels...) comes from the
// checkpoint's stored configuration; one given explicitly with another value is refused, naming
// both, so a resumed run is the run it continues.
void resume_settings(const train::Schema<TrainOptions>& schema, TrainOptions& o,
                     const LoadedCheckpoint& meta) {
  const nlohmann::json now = schema.to_json(o);
  nlohmann::json inherit = nlohmann::json::object();
  std::string conflicts;
  for (auto it = meta.config.begin(); it != meta.config.end(); ++it) {
    const std::string& k = it.key();
    // ranks, backend: records only; how to run (--out, --device, ...): never from the checkpoint.
    if (!schema.known(k)) continue;
    const train::ResumePolicy policy = schema.info(k, "the checkpoint").resume;
    if (policy == train::ResumePolicy::PerInvocation) continue;
    if (!o.was_given(k)) {
      if (!it.value().is_null()) inherit[k] = it.value();
      continue;
    }
    if (policy == train::ResumePolicy::Overridable || now[k] == it.value()) continue;
    conflicts += "\n  " + train::flag_of(k) + " " + value_text(now[k]) +
                 ", but the checkpoint's run has " + value_text(it.value());
  }
  DFX_CHECK(conflicts.empty(), "--resume ", o.resume, ": these settings contradict the run "
            "the checkpoint continues:", conflicts, "\na resumed run takes every setting that shapes "
            "its trajectory from its checkpoint: drop these flags, or start a new run without "
            "--resume (--steps, --epochs, --cycles may extend a run; see README, Checkpoints)");
  schema.apply_json(o, inherit, "the checkpoint");
}

}  // namespace

int cmd_train(const Args& args) {
  const train::Schema<TrainOptions> schema = command_schema("train", train::train_options());
  TrainOptions o;
  if (!parse_options(schema, "train", "trains a U-Net on a PDE loss, data-free", args, o)) return 0;

  const RunComm run_comm = make_run_comm(o);
  const auto& comm = run_comm.comm;
  const dist::ThreadChoice threads = apply_threads(o.threads, comm.get());
  const bool root = comm->rank() == 0;
  const std::string out = o.out;
  DFX_CHECK(o.panels >= 0, "--panels must be >= 0 (held-out fields drawn; 0: none), got ", o.panels);
  DFX_CHECK(o.log_every >= 1, "--log-every must be >= 1 step, got ", o.log_every);
  if (!o.resume.empty()) resume_settings(schema, o, read_checkpoint_metadata(o.resume));
  apply_optimizer_defaults(o);  // after the checkpoint's, which include its resolved --lr
  std::shared_ptr<Problem> problem = make_problem(problem_options(o));
  auto model = build_model(o, problem->dims(), run_comm.device);

  train::TrainConfig cfg = train::train_config(o);
  cfg.record = schema.to_json(o);
  cfg.stop_on_signal = true;  // Ctrl-C / SIGTERM: finish the step, checkpoint, say how to resume
  train::Trainer trainer(cfg, model, problem, comm);
  const int64_t total_steps = trainer.total_steps();

  std::ofstream metrics;
  std::vector<double> curve_x, curve_y;
  if (root) {
    // A run resumed into its own directory: its records are cut back to the checkpoint's step
    // (later rows belong to the lost continuation), and the loss curve keeps the whole history.
    const std::string path = out + "/metrics.jsonl";
    if (trainer.step() > 0) {
      std::ifstream old(path);
      std::string kept, line;
      while (std::getline(old, line)) {
        nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
        if (row.is_discarded() || !row.contains("step") || row["step"].get<int64_t>() > trainer.step()) continue;
        kept += line + "\n";
        if (row.contains("loss")) {
          curve_x.push_back(row["step"].get<double>());
          curve_y.push_back(row["loss"].get<double>());
        }
      }
      write_text_atomic(path, kept);
    }
    metrics.open(path, trainer.step() > 0 ? std::ios::app : std::ios::trunc);
    DFX_CHECK(metrics.good(), "cannot write '", out, "/metrics.jsonl'");
    std::printf("dfx train: %s N=%lld, U-Net depth %lld width %lld (%s parameters), batch %lld on %d rank%s (%s, %s), %lld steps\n",
                o.problem.c_str(), (long long)o.res, (long long)o.depth, (long long)o.width,
                nn::format_count(model->num_parameters()).c_str(),
                (long long)cfg.batch, comm->size(), comm->size() > 1 ? "s" : "", comm->backend().c_str(),
                run_comm.device.str().c_str(), (long long)total_steps);
    std::printf("threads per rank: %s\n", dist::describe(threads).c_str());
    if (!cfg.levels.empty()) {
      std::string seq;
      for (const train::Phase& p : trainer.phases())
        seq += (seq.empty() ? "" : " -> ") + std::to_string(p.res) + " x " + std::to_string(p.steps) +
               (cfg.grow_depth ? " (depth " + std::to_string(p.depth) + ")" : "");
      std::printf("multigrid %s-cycle x %d: %s steps\n", train::cycle_name(cfg.cycle), cfg.cycles, seq.c_str());
    }
  }
  const bool tty = root && ::isatty(STDOUT_FILENO);
  const int64_t log_every = std::max<int64_t>(o.log_every, 1);
  // The progress line and metrics.jsonl are callbacks of the library's trainer (rank 0).
  if (root) {
    trainer.callbacks().on_step = [&](const train::StepInfo& s) {
      nlohmann::json row = {{"step", s.step}, {"epoch", s.epoch}, {"loss", s.loss}, {"time_s", s.time_s},
                            {"elapsed_s", s.elapsed_s}, {"samples_per_s", s.samples_per_s}, {"lr", s.lr},
                            {"comm_wait_s", s.comm_wait_s}};
      if (!cfg.levels.empty()) row["res"] = s.res;
      metrics << row.dump() << "\n";
      metrics.flush();
      curve_x.push_back(static_cast<double>(s.step));
      curve_y.push_back(s.loss);
      const double eta = s.elapsed_s / static_cast<double>(s.step - s.start_step) * static_cast<double>(s.total_steps - s.step);
      char line[200];
      std::snprintf(line, sizeof line, "step %lld/%lld  epoch %lld  loss %.5e  %.1f samples/s  ETA %s",
                    (long long)s.step, (long long)s.total_steps, (long long)s.epoch, s.loss, s.samples_per_s,
                    format_duration(eta).c_str());
      if (tty) {
        std::printf("\r%-90s", line);
        std::fflush(stdout);
      } else if (s.step % log_every == 0 || s.step == s.total_steps || s.step - 1 == s.start_step) {
        std::printf("%s\n", line);
        std::fflush(stdout);
      }
    };
    trainer.callbacks().on_eval = [&](const train::EvalInfo& e) {
      nlohmann::json row = {{"step", e.step}, {"train_time_s", e.train_time_s}, {"epochs", e.epochs},
                            {"eval_rel_l2_mean", e.result.summary.mean},
                            {"eval_rel_l2_max", e.result.summary.max},
                            {"eval_rel_l2_mean_batch_bn", e.result.summary_batch_bn.mean},
                            {"eval_loss_gap_mean", e.result.loss_gap.mean},
                            {"eval_loss_gap_max", e.result.loss_gap.max}};
      if (e.train) {
        row["train_rel_l2_mean"] = e.train->summary.mean;
        row["train_rel_l2_max"] = e.train->summary.max;
        row["train_loss_gap_mean"] = e.train->loss_gap.mean;
      }
      metrics << row.dump() << "\n";
      metrics.flush();
      if (!tty) std::printf("step %lld: held-out relative L2 error mean %.4e (after %s of training)\n",
                            (long long)e.step, e.result.summary.mean, format_duration(e.train_time_s).c_str());
    };
  }
  const train::TrainResult r = trainer.train(total_steps);
  if (tty) std::printf("\n");
  if (r.reason == train::StopReason::NonFinite) {
    if (root)
      std::fprintf(stderr, "dfx train: the loss became %s at step %lld; stopping. Last good checkpoint: %s\n",
                   std::isnan(r.last_loss) ? "NaN" : "Inf", (long long)(r.steps_done + 1),
                   r.last_good_checkpoint.empty() ? "none (no checkpoint was followed by a finite loss)"
                                                   : r.last_good_checkpoint.c_str());
    return 3;
  }
  if (r.reason == train::StopReason::Interrupted) {
    if (root) {
      std::fprintf(stderr, "dfx train: %s: stopped after step %lld of %lld.\n",
                   train::signal_name(r.signal), (long long)r.steps_done, (long long)total_steps);
      if (!r.checkpoint.empty()) {
        write_loss_curve(out + "/loss.png", curve_x, curve_y, o.problem);
        const std::string launcher =
            comm->size() > 1 ? "mpiexec -n " + std::to_string(comm->size()) + " " : "";
        std::fprintf(stderr, "checkpoint: %s\nresume with: %sdfx train --resume %s --out %s\n",
                     r.checkpoint.c_str(), launcher.c_str(), r.checkpoint.c_str(), out.c_str());
      }
    }
    return 128 + r.signal;  // 130 for SIGINT, 143 for SIGTERM, as a shell reports them
  }
  if (r.reason == train::StopReason::TimeBudget && root)
    std::printf("stopping after step %lld: --max-time %.0f s of training reached\n",
                (long long)r.steps_done, cfg.max_time);
  if (root && comm->size() > 1)
    std::printf("time blocked on gradient all-reduce: %.1f%% of step time (%s overlap, %zu buckets)\n",
                100.0 * trainer.comm_wait_fraction(), cfg.overlap ? "with" : "without",
                trainer.bucket_count());
  trainer.finish();
  if (root && cfg.precise_bn_batches > 0) {
    const auto& pb = trainer.precise_bn_result();
    std::printf("precise BN over %lld batches: evaluation-mode loss %.6e -> %.6e, %s\n",
                (long long)cfg.precise_bn_batches, pb.loss_before, pb.loss_after,
                pb.kept ? "kept" : "not lower: the training averages stay");
  }
  if (root) {
    const std::string last_ckpt = out + "/checkpoints/last.safetensors";
    std::printf("checkpoint: %s\n", last_ckpt.c_str());
    write_loss_curve(out + "/loss.png", curve_x, curve_y, o.problem);
    const int64_t n_eval = cfg.eval_samples;
    if (n_eval > 0) {
      const EvalResult& held_out = trainer.held_out();
      std::printf("held-out relative L2 error over %lld fields: mean %.4e, max %.4e\n",
                  (long long)n_eval, held_out.summary.mean, held_out.summary.max);
      std::printf("  with batch-norm by these fields' own moments: mean %.4e; loss gap to the "
                  "reference: mean %.4e, max %.4e\n", held_out.summary_batch_bn.mean,
                  held_out.loss_gap.mean, held_out.loss_gap.max);
      if (cfg.eval_train_samples > 0)
        std::printf("  training fields 0..%lld: relative L2 error mean %.4e, max %.4e\n",
                    (long long)(trainer.train_fields().samples.size() - 1),
                    trainer.train_fields().summary.mean, trainer.train_fields().summary.max);
      write_eval_summary(out + "/eval.json", held_out, trainer.config().record);
      const int64_t n_panels = std::min(o.panels, n_eval);
      write_panels(out + "/panels", held_out, *problem, n_panels);
      if (n_panels > 0)
        std::printf("pictures: %s/panels_0.png .. panels_%lld.png, %s/loss.png\n", out.c_str(),
                    (long long)(n_panels - 1), out.c_str());
    }
  }
  return 0;
}

}  // namespace dfx::app
