// autodiff/fem_ops.cpp — rules for the Q1 stencils; see kernels/fem.h for the identities used.
#include "autodiff/fem_ops.h"

#include "autodiff/ops.h"
#include "kernels/fem.h"

namespace dfx::ad {
using VarList = std::vector<Var>;

namespace {
// [B] -> [B, 1, ..., 1] matching a field of `like`'s rank, for per-sample scaling.
Var per_sample(const Var& g, const Shape& like) {
  Shape s(like.size(), 1);
  s[0] = like[0];
  return reshape(g, s);
}
}  // namespace

Var fem_energy(const Var& u, const Var& nu) {
  bool nu_u = u.requires_grad(), nn = nu.requires_grad();
  return record("fem_energy", kernels::fem_energy(u.data(), nu.data()), {u, nu},
                [=](const Var&, const Var& g) {
                  Var gs = per_sample(g, u.shape());
                  Var gu = nu_u ? mul(gs, fem_apply(nu, u)) : Var();
                  Var gn = nn ? mul(gs, mul(fem_bilinear(u, u), 0.5)) : Var();
                  return VarList{gu, gn};
                });
}

Var fem_apply(const Var& nu, const Var& u) {
  bool nn = nu.requires_grad(), nu_u = u.requires_grad();
  Var cu = nn ? u : Var(), cn = nu_u ? nu : Var();
  return record("fem_apply", kernels::fem_apply(nu.data(), u.data()), {nu, u},
                [=](const Var&, const Var& g) {
                  return VarList{nn ? fem_bilinear(g, cu) : Var(), nu_u ? fem_apply(cn, g) : Var()};
                });
}

Var fem_bilinear(const Var& a, const Var& b) {
  bool na = a.requires_grad(), nb = b.requires_grad();
  return record("fem_bilinear", kernels::fem_bilinear(a.data(), b.data()), {a, b},
                [=](const Var&, const Var& g) {
                  return VarList{na ? fem_apply(g, b) : Var(), nb ? fem_apply(g, a) : Var()};
                });
}

}  // namespace dfx::ad
