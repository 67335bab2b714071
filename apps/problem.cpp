// apps/problem.cpp — Poisson 2-d/3-d (W1/W2) and Burgers (W3) behind one interface.
#include "apps/problem.h"

#include "kernels/elementwise.h"
#include "pde/burgers_loss.h"
#include "pde/burgers_solver.h"
#include "pde/poisson_loss.h"
#include "pde/poisson_solver.h"
#include "pde/sampler.h"

namespace dfx::app {

Shape Problem::field_shape(int64_t batch) const {
  Shape s = {batch, 1};
  for (int d = 0; d < dims(); ++d) s.push_back(opts_.res);
  return s;
}

namespace {

class Poisson : public Problem {
 public:
  Poisson(ProblemOptions o, int dims) : Problem(std::move(o)), dims_(dims) {}
  int dims() const override { return dims_; }
  const char* input_name() const override { return "omega"; }
  Tensor input(const std::vector<uint64_t>& samples, DType dtype) const override {
    return pde::omega_batch(dims_, opts_.res, opts_.seed, samples, dtype);
  }
  ad::Var loss(const ad::Var& u, const Tensor& omega, int64_t global_count) const override {
    return pde::poisson_loss(u, kernels::unary(kernels::UnaryOp::Exp, omega), global_count);
  }
  Tensor prediction(const Tensor& u) const override {
    return pde::apply_dirichlet_x(ad::Var(u)).data();
  }
  Tensor reference(const Tensor& omega, const std::vector<uint64_t>&) const override {
    Tensor nu = kernels::unary(kernels::UnaryOp::Exp, omega.cpu().to(DType::Float64));
    return pde::solve_poisson(nu).u;
  }

 private:
  int dims_;
};

class Burgers : public Problem {
 public:
  explicit Burgers(ProblemOptions o) : Problem(std::move(o)) {}
  int dims() const override { return 2; }
  const char* input_name() const override { return "b"; }
  Tensor input(const std::vector<uint64_t>& samples, DType dtype) const override {
    return pde::burgers_input(opts_.res, opts_.seed, samples, {}, dtype);
  }
  ad::Var loss(const ad::Var& u, const Tensor& in, int64_t global_count) const override {
    Tensor b = in.narrow(2, 0, 1);  // the input is b broadcast along t: row 0 is b itself
    return pde::burgers_loss(u, b, opts_.visc, opts_.boundary_factor, global_count).total;
  }
  Tensor prediction(const Tensor& u) const override { return u; }
  Tensor reference(const Tensor& in, const std::vector<uint64_t>& samples) const override {
    pde::BurgersOptions bo;
    bo.visc = opts_.visc;
    if (!samples.empty()) return pde::burgers_reference(opts_.res, opts_.seed, samples, {}, bo);
    // A given initial condition: sample b (row 0 of the input) with linear interpolation.
    Tensor b = in.cpu().to(DType::Float64).contiguous().reshape({-1}).narrow(0, 0, opts_.res).clone();
    const int64_t n = opts_.res;
    auto u0 = [b, n](double x) {
      double p = x * static_cast<double>(n - 1);
      int64_t k = std::min<int64_t>(static_cast<int64_t>(p), n - 2);
      double t = p - static_cast<double>(k);
      return (1 - t) * b.get({k}) + t * b.get({k + 1});
    };
    return pde::solve_burgers(u0, n, bo).u.reshape({1, 1, n, n});
  }
};

}  // namespace

std::unique_ptr<Problem> make_problem(const ProblemOptions& o) {
  DFX_CHECK(o.res >= 4, "problem: --res must be >= 4, got ", o.res);
  if (o.name == "poisson2d") return std::make_unique<Poisson>(o, 2);
  if (o.name == "poisson3d") return std::make_unique<Poisson>(o, 3);
  if (o.name == "burgers") return std::make_unique<Burgers>(o);
  DFX_FAIL("unknown problem '", o.name, "'; expected poisson2d, poisson3d or burgers");
}

}  // namespace dfx::app
