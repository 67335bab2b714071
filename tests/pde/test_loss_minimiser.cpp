// tests/pde/test_loss_minimiser.cpp — the training losses against the classical references:
// minimising the W1 loss over u itself (a few hundred gradient steps with the tape's gradient)
// approaches the multigrid solver's solution, the Burgers residual of the finite-volume
// reference is small compared with that of a wrong field, and the inviscid Burgers loss's own
// minimiser is near the reference with upwind advection and far from it with central.
#include <doctest/doctest.h>

#include <cmath>

#include "dfx.h"

using namespace dfx;

TEST_SUITE("pde") {
TEST_CASE("minimising the Poisson energy loss over u approaches the reference solution") {
  const int64_t n = 17;
  Tensor nu = pde::nu_batch(2, n, 4, {3}, DType::Float64);
  Tensor ref = pde::solve_poisson(nu).u.reshape({1, 1, n, n});
  // Start from zeros (far from the answer); the hard boundary values come from the loss.
  Var u(zeros({1, 1, n, n}, DType::Float64), true);
  optim::AdamOptions ao;
  ao.lr = 0.05;
  optim::Adam opt({u}, ao);
  auto error = [&] {
    Tensor bc = pde::apply_dirichlet_x(Var(u.data())).data();
    return pde::relative_l2(bc, ref);
  };
  const double e0 = error();
  double loss0 = 0, loss = 0;
  for (int it = 0; it < 600; ++it) {
    opt.zero_grad();
    Var l = pde::poisson_loss(u, nu);
    l.backward();
    if (it == 0) loss0 = l.item();
    loss = l.item();
    opt.set_lr(it < 400 ? 0.05 : 0.01);
    opt.apply();
  }
  const double e1 = error();
  CAPTURE(e0);
  CAPTURE(e1);
  CHECK(loss < loss0);
  CHECK(e0 > 0.3);
  CHECK(e1 < 0.01);
  // The reference has the smallest energy: perturbing it raises the loss.
  Var at_ref(ref.clone(), false);
  const double e_ref = pde::poisson_loss(at_ref, nu).item();
  Tensor bumped = ref.clone();
  bumped.set({0, 0, n / 2, n / 2}, bumped.get({0, 0, n / 2, n / 2}) + 0.05);
  CHECK(pde::poisson_loss(Var(bumped), nu).item() > e_ref);
  CHECK(loss >= e_ref - 1e-12);
}

TEST_CASE("the Burgers residual loss is small at the finite-volume reference") {
  const int64_t n = 33;
  pde::BurgersOptions bo;
  bo.visc = 0.05;
  Tensor ref = pde::burgers_reference(n, 2, {1}, {}, bo);  // [1, 1, n, n]
  Tensor b = pde::burgers_initial(n, 2, {1}, {}, DType::Float64);
  auto parts = pde::burgers_loss(Var(ref), b, 0.05);
  // A wrong field: the initial condition frozen in time.
  Tensor frozen = pde::burgers_input(n, 2, {1}, {}, DType::Float64);
  auto wrong = pde::burgers_loss(Var(frozen), b, 0.05);
  CAPTURE(parts.residual.item());
  CAPTURE(wrong.residual.item());
  CHECK(parts.residual.item() < 0.05 * wrong.residual.item());
  // The reference imposes u = 0 at x = 1 from t = 0 on, where b(1) != 0 for non-integer c: its only
  // boundary mismatch is that corner node, far below the frozen field's whole right column.
  CHECK(parts.boundary.item() < 0.1 * wrong.boundary.item());
}

// Newton on R(u) = 0 with the exact preconditioner (B (count dL/du) = R'^-1 R), started at the
// reference: it converges to the scheme's own solution, whose distance from the Godunov FV
// reference is the loss's discretisation error. At a shock central differences have no
// dissipation and their solution oscillates (BENCHMARKS.md: 245 % at N = 128; from the reference
// Newton does not even converge, it ends non-finite): no central solution lies near the
// reference, while the upwind one stays within first-order smearing.
TEST_CASE("inviscid Burgers: the upwind loss's minimiser is near the FV reference, central's is not") {
  const int64_t n = 65;
  pde::BurgersOptions bo;
  bo.visc = 0.0;
  Tensor ref = pde::burgers_reference(n, 2, {1}, {}, bo);
  Tensor b = pde::burgers_initial(n, 2, {1}, {}, DType::Float64);
  auto minimiser = [&](pde::BurgersAdvection adv, double* loss) {
    Tensor u = ref.clone();
    for (int it = 0; it < 40; ++it) {
      Var uu(u, true);
      pde::burgers_loss(uu, b, 0.0, 64.0, 1, adv).total.backward();
      Tensor step = pde::burgers_precondition(u, 0.0, 64.0, uu.grad().data(), adv);
      u = kernels::sub(u, step);
    }
    *loss = pde::burgers_loss(Var(u), b, 0.0, 64.0, 1, adv).total.item();
    return u;
  };
  double loss_up = 0, loss_c = 0;
  const double e_up = pde::relative_l2(minimiser(pde::BurgersAdvection::Upwind, &loss_up), ref);
  const double e_c = pde::relative_l2(minimiser(pde::BurgersAdvection::Central, &loss_c), ref);
  const double at_ref = pde::burgers_loss(Var(ref), b, 0.0, 64.0, 1,
                                          pde::BurgersAdvection::Upwind).total.item();
  CAPTURE(e_up);
  CAPTURE(e_c);
  CAPTURE(loss_up);
  CAPTURE(at_ref);
  MESSAGE("inviscid N = 65: minimiser vs FV reference, upwind ", e_up, ", central ", e_c);
  CHECK(loss_up < 1e-16 * at_ref);  // Newton converged: the scheme's own solution
  CHECK(e_up < 0.2);
  CHECK_FALSE(e_c < 3 * e_up);  // non-finite (diverged) or far
}
}
