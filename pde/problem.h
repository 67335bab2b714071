// pde/problem.h — a workload as training sees it: the network input for a list of sample
// indices, the data-free loss (with the global count, for loss integrity), the classical
// reference, the prediction with its boundary values applied, and the loss's curvature in output
// space (what a Gauss-Newton method needs). Problems are created by name from a registry;
// poisson2d (W1), poisson3d (W2) and burgers (W3) are built in, and a user registers their own
// with register_problem (examples/train_poisson.cpp) without touching dfx.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autodiff/var.h"

namespace dfx::pde {

struct ProblemOptions {
  std::string name = "poisson2d";
  int64_t res = 64;
  uint64_t seed = 0;
  double visc = 0.01;              // burgers
  double boundary_factor = 64.0;   // burgers
  std::string advection = "central";  // burgers: "central" or "upwind" (pde/burgers_loss.h)
};

// The curvature of the loss with respect to the network output u, at one u: v -> C(u) v, with
// the loss's own scaling (1 / global count). Exact Hessian for quadratic energies (the FEM
// stiffness K(nu) between the Dirichlet masks); the Gauss-Newton matrix J_r^T W J_r for
// residual losses. Positive semi-definite either way.
using OutputCurvature = std::function<Tensor(const Tensor& v)>;

class Problem {
 public:
  virtual ~Problem() = default;
  virtual int dims() const = 0;
  virtual const char* input_name() const = 0;  // what the input channel is ("omega", "b")
  virtual Tensor input(const std::vector<uint64_t>& samples, DType dtype) const = 0;
  // sum over the local samples of their losses / global_count (global_count <= 0: local batch).
  virtual ad::Var loss(const ad::Var& u, const Tensor& input, int64_t global_count) const = 0;
  virtual Tensor prediction(const Tensor& u) const = 0;  // boundary values applied
  // The reference solution [B, 1, *S] float64 for `input`; `samples` may be empty (a field given
  // directly, as in dfx solve).
  virtual Tensor reference(const Tensor& input, const std::vector<uint64_t>& samples) const = 0;
  // C(u) at the network output u (no graph) for `input`; see OutputCurvature.
  virtual OutputCurvature curvature(const Tensor& u, const Tensor& input,
                                    int64_t global_count) const = 0;
  // A random r with E[r r^T] = C(u), the curvature above (with its 1 / count), drawn
  // independently per sample; sample b's noise is a function of keys[b] alone, so a sample
  // draws the same on whichever rank holds it. K-FAC feeds its backward with these (the
  // Gauss-Newton matrix is E[J^T r r^T J]). Poisson: C = M K M / count with
  // K = sum_c nu_c P_c^T K_e P_c, so r = M sum_c sqrt(nu_c / count) P_c^T L z_c, L L^T = K_e;
  // Burgers: r = sum_k J_k^T sqrt(2 w_k) z_k. Undefined when the problem has none.
  virtual Tensor curvature_sample(const Tensor& u, const Tensor& input, int64_t global_count,
                                  const std::vector<uint64_t>& keys) const {
    (void)u, (void)input, (void)global_count, (void)keys;
    return Tensor();
  }
  // v -> B v with B symmetric positive definite and close to the inverse of the curvature at
  // the network output u without its 1 / count (Poisson: multigrid V-cycles on K(nu), whatever
  // u; Burgers: the exact inverse of its Gauss-Newton matrix at u, two sweeps in t), or empty
  // when the problem has none. First-order training may move the parameters along J^T B dL/du
  // instead of J^T dL/du: the same minimiser, with the error's slow modes (Poisson's smooth ones,
  // whose energy is O(1 / N^2) of the rough ones') no longer nearly invisible to the optimiser.
  // `vcycles` >= 1 V-cycles per application where B is a multigrid cycle (more: B closer to the
  // inverse, for the cost of the cycles; the setup is shared); ignored where B is exact.
  virtual OutputCurvature preconditioner(const Tensor& u, const Tensor& input, int vcycles) const {
    (void)u, (void)input, (void)vcycles;
    return {};
  }

  Shape field_shape(int64_t batch) const;  // [batch, 1, res, ...]
  const ProblemOptions& options() const { return opts_; }
  const std::string& name() const { return opts_.name; }

 protected:
  explicit Problem(ProblemOptions o) : opts_(std::move(o)) {}
  ProblemOptions opts_;
};

using ProblemFactory = std::function<std::unique_ptr<Problem>(const ProblemOptions&)>;

// Adds (or replaces) a problem by name; make_problem and the command line's --problem then
// accept it.
void register_problem(const std::string& name, const std::string& summary, ProblemFactory make);
// The registered names, built-in ones first, in registration order.
std::vector<std::string> problem_names();
std::unique_ptr<Problem> make_problem(const ProblemOptions& opts);

}  // namespace dfx::pde
