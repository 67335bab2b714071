// pde/problem.cpp — Poisson 2-d/3-d (W1/W2) and Burgers (W3) behind one interface, and the
// registry that creates problems by name.
#include "pde/problem.h"

#include <map>
#include <mutex>

#include "autodiff/fem_ops.h"
#include "autodiff/ops.h"
#include "kernels/elementwise.h"
#include "pde/burgers_loss.h"
#include "pde/burgers_solver.h"
#include "pde/poisson_loss.h"
#include "pde/poisson_solver.h"
#include "pde/sampler.h"

namespace dfx::pde {

Shape Problem::field_shape(int64_t batch) const {
  Shape s = {batch, 1};
  for (int d = 0; d < dims(); ++d) s.push_back(opts_.res);
  return s;
}

namespace {

int64_t count_or_batch(int64_t global_count, const Tensor& u) {
  return global_count > 0 ? global_count : u.shape()[0];
}

class Poisson : public Problem {
 public:
  Poisson(ProblemOptions o, int dims) : Problem(std::move(o)), dims_(dims) {}
  int dims() const override { return dims_; }
  const char* input_name() const override { return "omega"; }
  Tensor input(const std::vector<uint64_t>& samples, DType dtype) const override {
    return omega_batch(dims_, opts_.res, opts_.seed, samples, dtype);
  }
  ad::Var loss(const ad::Var& u, const Tensor& omega, int64_t global_count) const override {
    return poisson_loss(u, kernels::unary(kernels::UnaryOp::Exp, omega), global_count);
  }
  Tensor prediction(const Tensor& u) const override { return apply_dirichlet_x(ad::Var(u)).data(); }
  Tensor reference(const Tensor& omega, const std::vector<uint64_t>&) const override {
    Tensor nu = kernels::unary(kernels::UnaryOp::Exp, omega.cpu().to(DType::Float64));
    return solve_poisson(nu).u;
  }
  // u_bc = M u + lift with M zeroing the two Dirichlet columns, so d^2 E / du^2 = M K(nu) M:
  // the stiffness stencil between two masks, independent of u.
  OutputCurvature curvature(const Tensor& u, const Tensor& omega,
                            int64_t global_count) const override {
    Tensor nu = kernels::unary(kernels::UnaryOp::Exp, omega);
    const double scale = 1.0 / static_cast<double>(count_or_batch(global_count, u));
    return [nu, scale](const Tensor& v) {
      ad::NoGradGuard ng;
      ad::Var masked = apply_dirichlet_x(ad::Var(v), 0.0, 0.0);
      return ad::mul(apply_dirichlet_x(ad::fem_apply(ad::Var(nu), masked), 0.0, 0.0), scale).data();
    };
  }
  OutputCurvature preconditioner(const Tensor&, const Tensor& omega, int vcycles) const override {
    Tensor nu = kernels::unary(kernels::UnaryOp::Exp, omega.cpu().to(DType::Float64));
    return [nu, vcycles](const Tensor& v) {
      return multigrid_precondition(nu, v.cpu(), vcycles).to(v.dtype()).to(v.device());
    };
  }

 private:
  int dims_;
};

class Burgers : public Problem {
 public:
  explicit Burgers(ProblemOptions o)
      : Problem(std::move(o)), advection_(burgers_advection(opts_.advection)) {}
  int dims() const override { return 2; }
  const char* input_name() const override { return "b"; }
  Tensor input(const std::vector<uint64_t>& samples, DType dtype) const override {
    return burgers_input(opts_.res, opts_.seed, samples, {}, dtype);
  }
  ad::Var loss(const ad::Var& u, const Tensor& in, int64_t global_count) const override {
    return burgers_loss(u, initial(in), opts_.visc, opts_.boundary_factor, global_count, advection_)
        .total;
  }
  Tensor prediction(const Tensor& u) const override { return u; }
  Tensor reference(const Tensor& in, const std::vector<uint64_t>& samples) const override {
    BurgersOptions bo;
    bo.visc = opts_.visc;
    if (!samples.empty()) return burgers_reference(opts_.res, opts_.seed, samples, {}, bo);
    // A given initial condition: sample b (row 0 of the input) with linear interpolation.
    Tensor b = in.cpu().to(DType::Float64).contiguous().reshape({-1}).narrow(0, 0, opts_.res).clone();
    const int64_t n = opts_.res;
    auto u0 = [b, n](double x) {
      double p = x * static_cast<double>(n - 1);
      int64_t k = std::min<int64_t>(static_cast<int64_t>(p), n - 2);
      double t = p - static_cast<double>(k);
      return (1 - t) * b.get({k}) + t * b.get({k + 1});
    };
    return solve_burgers(u0, n, bo).u.reshape({1, 1, n, n});
  }
  // Gauss-Newton: 2 sum_k w_k J_k^T J_k over the residual groups (interior, initial row, the two
  // x-boundaries), J_k v by ad::jvp on the residuals' own graph.
  OutputCurvature curvature(const Tensor& u, const Tensor& in,
                            int64_t global_count) const override {
    const double count = static_cast<double>(count_or_batch(global_count, u));
    const double visc = opts_.visc, bf = opts_.boundary_factor;
    const BurgersAdvection adv = advection_;
    Tensor b = initial(in);
    return [u, b, visc, bf, count, adv](const Tensor& v) {
      ad::EnableGradGuard eg(true);
      ad::Var uu(u, true);
      BurgersResiduals r = burgers_residuals(uu, b, visc, adv);
      std::vector<ad::Var> res = {r.interior};
      std::vector<double> w = {1.0 / (r.n_interior * count)};
      for (const ad::Var& bnd : r.boundary) {
        res.push_back(bnd);
        w.push_back(bf / (r.n_boundary * count));
      }
      std::vector<ad::Var> weighted;
      for (size_t k = 0; k < res.size(); ++k) {
        Tensor jv = ad::jvp({res[k]}, {uu}, {v})[0];
        weighted.push_back(ad::Var(ad::mul(ad::Var(jv), 2.0 * w[k]).data()));
      }
      return ad::grad(res, {uu}, weighted, false, false)[0].data();
    };
  }
  OutputCurvature preconditioner(const Tensor& u, const Tensor&, int) const override {
    const double visc = opts_.visc, bf = opts_.boundary_factor;
    DFX_CHECK(bf > 0, "burgers: the output-space preconditioner needs --boundary-factor > 0 (it "
              "inverts the boundary rows' weight), got ", bf);
    // Central differences without viscosity lose diagonal dominance at steep fronts: R' is then
    // near-singular and B g huge (at N = 128 the first step of a fresh network diverges).
    DFX_CHECK(visc > 0 || advection_ != BurgersAdvection::Central,
              "burgers: --output-precondition inverts the implicit scheme's Jacobian, which with "
              "--advection central and --visc 0 is near-singular at steep fronts (training "
              "diverges); use --advection upwind for the inviscid case, a --visc > 0, or "
              "--output-precondition false");
    const BurgersAdvection adv = advection_;
    return [u, visc, bf, adv](const Tensor& v) {
      return burgers_precondition(u, visc, bf, v, adv).to(v.dtype()).to(v.device());
    };
  }

 private:
  static Tensor initial(const Tensor& in) { return in.narrow(2, 0, 1); }  // b: row 0 of the input
  BurgersAdvection advection_;
};

struct Entry {
  std::string name, summary;
  ProblemFactory make;
};

struct Registry {
  std::mutex mu;
  std::vector<Entry> entries;
  Registry() {
    entries.push_back({"poisson2d", "W1: -div(nu grad u) = 0 on the unit square (Q1 FEM energy)",
                       [](const ProblemOptions& o) { return std::make_unique<Poisson>(o, 2); }});
    entries.push_back({"poisson3d", "W2: the same on the unit cube (trilinear FEM energy)",
                       [](const ProblemOptions& o) { return std::make_unique<Poisson>(o, 3); }});
    entries.push_back({"burgers", "W3: u_t + u u_x = visc u_xx (finite-difference residual)",
                       [](const ProblemOptions& o) { return std::make_unique<Burgers>(o); }});
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_problem(const std::string& name, const std::string& summary, ProblemFactory make) {
  DFX_CHECK(!name.empty() && make, "register_problem: need a name and a factory");
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (Entry& e : r.entries)
    if (e.name == name) {
      e = {name, summary, std::move(make)};
      return;
    }
  r.entries.push_back({name, summary, std::move(make)});
}

std::vector<std::string> problem_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const Entry& e : r.entries) names.push_back(e.name);
  return names;
}

std::unique_ptr<Problem> make_problem(const ProblemOptions& o) {
  DFX_CHECK(o.res >= 4, "problem: --res must be >= 4, got ", o.res);
  DFX_CHECK(o.visc >= 0, "--visc must be >= 0, got ", o.visc);
  ProblemFactory make;
  std::string known;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    for (const Entry& e : r.entries) {
      if (e.name == o.name) make = e.make;
      known += (known.empty() ? "" : ", ") + e.name;
    }
  }
  DFX_CHECK(make, "unknown problem '", o.name, "'; expected one of ", known);
  return make(o);
}

}  // namespace dfx::pde
