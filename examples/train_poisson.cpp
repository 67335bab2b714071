// examples/train_poisson.cpp — a complete experiment against the installed library: W1 (Poisson
// on the unit square) with a term of the user's own added to the PDE loss, registered as a
// problem of its own and trained by dfx's Trainer, alone or under `mpiexec -n P`.
//
//   g++ -std=c++20 train_poisson.cpp $(pkg-config --cflags --libs dfx) -o train_poisson
//   mpiexec -n 3 ./train_poisson [steps] [penalty]      # penalty 0: exactly `dfx train`'s W1
#include <dfx/dfx.h>

#include <cstdio>
#include <cstdlib>

using namespace dfx;

// W1's energy plus penalty * mean(u^2) per sample: a user term, divided by the global count like
// the energy, so the loss stays the same on any number of ranks.
class PenalisedPoisson : public pde::Problem {
 public:
  PenalisedPoisson(const pde::ProblemOptions& o, double penalty)
      : Problem(o), w1_(pde::make_problem({"poisson2d", o.res, o.seed})), penalty_(penalty) {}
  int dims() const override { return 2; }
  const char* input_name() const override { return "omega"; }
  Tensor input(const std::vector<uint64_t>& s, DType dt) const override { return w1_->input(s, dt); }
  ad::Var loss(const ad::Var& u, const Tensor& omega, int64_t count) const override {
    ad::Var energy = w1_->loss(u, omega, count);
    if (penalty_ == 0) return energy;
    const double per_node = 1.0 / static_cast<double>(u.numel() / u.shape()[0]);
    return energy + ad::sum(ad::square(u)) * (penalty_ * per_node / static_cast<double>(count));
  }
  Tensor prediction(const Tensor& u) const override { return w1_->prediction(u); }
  Tensor reference(const Tensor& in, const std::vector<uint64_t>& s) const override {
    return w1_->reference(in, s);
  }
  pde::OutputCurvature curvature(const Tensor& u, const Tensor& in, int64_t count) const override {
    return w1_->curvature(u, in, count);  // (without the penalty's 2 * penalty * I / nodes)
  }

 private:
  std::unique_ptr<pde::Problem> w1_;
  double penalty_;
};

int main(int argc, char** argv) {
  const int64_t steps = argc > 1 ? std::atoll(argv[1]) : 20;
  const double penalty = argc > 2 ? std::atof(argv[2]) : 0.1;
  pde::register_problem("poisson2d-penalised", "W1 + penalty * mean(u^2)",
                        [penalty](const pde::ProblemOptions& o) {
                          return std::make_unique<PenalisedPoisson>(o, penalty);
                        });
  auto comm = dist::make_default();  // MPI under mpiexec, else this process alone
  std::shared_ptr<pde::Problem> problem =
      pde::make_problem({.name = "poisson2d-penalised", .res = 16, .seed = 9});

  train::TrainConfig cfg;
  cfg.model.depth = 2;
  cfg.model.width = 4;
  cfg.model.dtype = DType::Float64;
  cfg.model.seed = 9;
  cfg.seed = 9;
  cfg.batch = 7;
  cfg.samples = 14;
  cfg.steps = steps;
  cfg.eval_samples = 4;
  cfg.optimizer.name = "adam";
  cfg.schedule.kind = optim::Schedule::Kind::Cosine;
  auto model = train::build_unet(cfg.model, problem->dims(), Device::cpu(), cfg.optimizer.name);
  train::Trainer trainer(cfg, model, problem, comm);
  if (comm->is_root())
    trainer.callbacks().on_step = [](const train::StepInfo& s) {
      std::printf("step %lld loss %.17g\n", (long long)s.step, s.loss);
    };
  train::TrainResult r = trainer.fit();
  if (comm->is_root())
    std::printf("%d rank(s): %lld steps (%s), held-out relative L2 error mean %.4e\n", comm->size(),
                (long long)r.steps_done, train::stop_reason_name(r.reason),
                trainer.held_out().summary.mean);
  return r.reason == train::StopReason::Done ? 0 : 1;
}
