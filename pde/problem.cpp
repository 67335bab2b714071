// pde/problem.cpp — Poisson 2-d/3-d (W1/W2) and Burgers (W3) behind one interface, and the
// registry that creates problems by name.
#include "pde/problem.h"

#include <cmath>
#include <map>
#include <mutex>

#include "autodiff/fem_ops.h"
#include "autodiff/ops.h"
#include "core/rng.h"
#include "kernels/elementwise.h"
#include "kernels/fem.h"
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

// The noise of curvature_sample: one stream per sample key, under the problem's seed.
uint64_t noise_seed(uint64_t problem_seed) { return problem_seed ^ 0xc0a7a75eull; }

void check_keys(const Tensor& u, const std::vector<uint64_t>& keys) {
  DFX_CHECK(static_cast<int64_t>(keys.size()) == u.shape()[0], "curvature_sample: ", keys.size(),
            " keys for a batch of ", u.shape()[0], "; expected one key per sample");
}

// L with L L^T = S for a small symmetric positive semi-definite S (n x n, row-major), by
// cyclic Jacobi rotations: S = V diag(l) V^T, L = V diag(sqrt(max(l, 0))).
std::vector<double> psd_factor(std::vector<double> s, int n) {
  std::vector<double> v(static_cast<size_t>(n * n), 0.0);
  for (int i = 0; i < n; ++i) v[i * n + i] = 1;
  for (int sweep = 0; sweep < 60; ++sweep) {
    double off = 0;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) off += s[p * n + q] * s[p * n + q];
    if (off < 1e-30) break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        if (std::abs(s[p * n + q]) < 1e-300) continue;
        const double theta = (s[q * n + q] - s[p * n + p]) / (2 * s[p * n + q]);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), sn = t * c;
        for (int k = 0; k < n; ++k) {  // S <- S J (columns p, q)
          const double a = s[k * n + p], b = s[k * n + q];
          s[k * n + p] = c * a - sn * b, s[k * n + q] = sn * a + c * b;
        }
        for (int k = 0; k < n; ++k) {  // S <- J^T S (rows p, q)
          const double a = s[p * n + k], b = s[q * n + k];
          s[p * n + k] = c * a - sn * b, s[q * n + k] = sn * a + c * b;
        }
        for (int k = 0; k < n; ++k) {  // V <- V J
          const double a = v[k * n + p], b = v[k * n + q];
          v[k * n + p] = c * a - sn * b, v[k * n + q] = sn * a + c * b;
        }
      }
  }
  for (int j = 0; j < n; ++j) {
    const double r = std::sqrt(std::max(s[j * n + j], 0.0));
    for (int k = 0; k < n; ++k) v[k * n + j] *= r;
  }
  return v;
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
  Tensor curvature_sample(const Tensor& u, const Tensor& omega, int64_t global_count,
                          const std::vector<uint64_t>& keys) const override {
    check_keys(u, keys);
    const Tensor nu = kernels::unary(kernels::UnaryOp::Exp, omega.cpu().to(DType::Float64)).contiguous();
    const Shape& sh = nu.shape();
    DFX_CHECK(sh.size() == static_cast<size_t>(dims_ + 2), "curvature_sample: omega ", sh,
              "; expected [B, 1, *S] with ", dims_, " spatial dims");
    const int d = dims_, nodes = 1 << d;
    const int64_t nx = sh.back(), ny = sh[sh.size() - 2], nz = d == 3 ? sh[2] : 1;
    const std::vector<double> L =
        psd_factor(kernels::q1_stiffness(d, 1.0 / static_cast<double>(nx - 1)).contiguous().to_vector(), nodes);
    const double scale = 1.0 / static_cast<double>(count_or_batch(global_count, u));
    Tensor out = zeros(sh, DType::Float64);
    const double* pn = nu.data<double>();
    double* po = out.data<double>();
    const int64_t field = nx * ny * nz;
    const int64_t cz = d == 3 ? nz - 1 : 1;
    const uint64_t seed = noise_seed(opts_.seed);
    for (int64_t b = 0; b < sh[0]; ++b) {
      const double* nb = pn + b * field;
      double* ob = po + b * field;
      for (int64_t k = 0; k < cz; ++k)
        for (int64_t j = 0; j + 1 < ny; ++j)
          for (int64_t i = 0; i + 1 < nx; ++i) {
            int64_t at[8];
            double nu_c = 0;
            for (int l = 0; l < nodes; ++l) {
              at[l] = ((k + ((l >> 2) & 1)) * ny + j + ((l >> 1) & 1)) * nx + i + (l & 1);
              nu_c += nb[at[l]];
            }
            const double s = std::sqrt(nu_c / nodes * scale);
            const uint64_t cell = static_cast<uint64_t>((k * (ny - 1) + j) * (nx - 1) + i);
            double z[8];
            for (int l = 0; l < nodes; ++l) z[l] = philox_normal(seed, keys[b], cell * nodes + l);
            for (int r = 0; r < nodes; ++r) {
              double w = 0;
              for (int l = 0; l < nodes; ++l) w += L[r * nodes + l] * z[l];
              ob[at[r]] += s * w;
            }
          }
    }
    // The Dirichlet masks on both sides: M r has covariance M K M.
    return apply_dirichlet_x(ad::Var(out), 0.0, 0.0).data().to(u.dtype()).to(u.device());
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
  Tensor curvature_sample(const Tensor& u, const Tensor& in, int64_t global_count,
                          const std::vector<uint64_t>& keys) const override {
    check_keys(u, keys);
    const double count = static_cast<double>(count_or_batch(global_count, u));
    ad::EnableGradGuard eg(true);
    ad::Var uu(u, true);
    BurgersResiduals r = burgers_residuals(uu, initial(in), opts_.visc, advection_);
    std::vector<ad::Var> res = {r.interior};
    std::vector<double> w = {1.0 / (r.n_interior * count)};
    for (const ad::Var& bnd : r.boundary) {
      res.push_back(bnd);
      w.push_back(opts_.boundary_factor / (r.n_boundary * count));
    }
    // C = sum_k 2 w_k J_k^T J_k, so r = sum_k J_k^T sqrt(2 w_k) z_k with z_k ~ N(0, I).
    const uint64_t seed = noise_seed(opts_.seed);
    std::vector<ad::Var> noise;
    for (size_t k = 0; k < res.size(); ++k) {
      const Shape& sh = res[k].shape();
      const int64_t per = res[k].numel() / sh[0];
      std::vector<double> z(static_cast<size_t>(res[k].numel()));
      for (int64_t b = 0; b < sh[0]; ++b)
        for (int64_t i = 0; i < per; ++i)
          z[b * per + i] = std::sqrt(2 * w[k]) * philox_normal(seed, keys[b], (k << 40) + i);
      noise.push_back(ad::Var(from_vector<double>(z, sh).to(res[k].dtype()).to(res[k].device())));
    }
    return ad::grad(res, {uu}, noise, false, false)[0].data();
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
