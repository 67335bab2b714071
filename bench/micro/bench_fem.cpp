// bench/micro/bench_fem.cpp — the Q1 stencils behind W1's loss, fem_energy and fem_apply, on
// [8, 1, N, N] at N = 1024 (large, memory-bound) and N = 128 (W1's training grid). Each is first
// checked against calculus (a linear field's exact energy) and WORKLOADS.md's stencil written out.
// Also the output-space preconditioner of training (--output-precondition): one multigrid V-cycle
// per sample with its hierarchy built from nu, what a preconditioned step pays on the host.
#include <cmath>

#include "bench/micro/bench_util.h"
#include "core/rng.h"
#include "kernels/fem.h"
#include "pde/multigrid.h"
#include "pde/poisson_solver.h"

namespace dfx::bench {
namespace {

constexpr int64_t kBatch = 8;

struct FemCase {
  int64_t hw, plane;
  Tensor u, nu;  // random: u in [-1, 1], nu in [0.5, 2]

  explicit FemCase(const benchmark::State& s) : hw(s.range(0)), plane(hw * hw) {
    u = uniform({kBatch, 1, hw, hw}, -1, 1, 5, 0);
    nu = uniform({kBatch, 1, hw, hw}, 0.5, 2, 5, 1);
  }
  double nodes() const { return static_cast<double>(u.numel()); }

  // (A(nu) u) at node (i, j) of sample b from WORKLOADS.md's cell energy: counter-clockwise
  // nodes, K = 1/6 [[4,-1,-2,-1], ...], nu_c the mean of the 4 nodes. *mag: sum of |terms|.
  double apply_at(int64_t b, int64_t i, int64_t j, double* mag) const {
    static const double K[4][4] = {{4, -1, -2, -1}, {-1, 4, -1, -2}, {-2, -1, 4, -1},
                                   {-1, -2, -1, 4}};
    const float *pu = u.data<float>() + b * plane, *pn = nu.data<float>() + b * plane;
    double s = 0;
    *mag = 0;
    for (int64_t ci = i - 1; ci <= i; ++ci)
      for (int64_t cj = j - 1; cj <= j; ++cj) {
        if (ci < 0 || cj < 0 || ci + 1 >= hw || cj + 1 >= hw) continue;
        const int64_t yi[4] = {ci, ci, ci + 1, ci + 1}, xj[4] = {cj, cj + 1, cj + 1, cj};
        int local = 0;
        double nc = 0;
        for (int k = 0; k < 4; ++k) {
          nc += pn[yi[k] * hw + xj[k]] / 4.0;
          if (yi[k] == i && xj[k] == j) local = k;
        }
        for (int k = 0; k < 4; ++k) {
          const double t = nc * K[local][k] / 6.0 * pu[yi[k] * hw + xj[k]];
          s += t;
          *mag += std::abs(t);
        }
      }
    return s;
  }
};

// A linear field u = x with nu = 1 + b/4 has energy nu/2 exactly; on random fields the energy is
// 1/2 <u, A(nu) u> with A from fem_apply (itself checked below).
bool check_energy(const FemCase& c) {
  Tensor lin = empty_like(c.u), cst = empty_like(c.nu);
  float *pl = lin.data<float>(), *pc = cst.data<float>();
  for (int64_t b = 0; b < kBatch; ++b)
    for (int64_t q = 0; q < c.plane; ++q) {
      pl[b * c.plane + q] = static_cast<float>(q % c.hw) / static_cast<float>(c.hw - 1);
      pc[b * c.plane + q] = 1.0f + 0.25f * b;
    }
  Tensor e_lin = kernels::fem_energy(lin, cst);
  for (int64_t b = 0; b < kBatch; ++b)
    if (!near(e_lin.get({b}), (1.0 + 0.25 * b) / 2, 1.0 + 0.25 * b)) return false;
  Tensor e = kernels::fem_energy(c.u, c.nu), au = kernels::fem_apply(c.nu, c.u);
  const float *pu = c.u.data<float>(), *pa = au.data<float>();
  for (int64_t b = 0; b < kBatch; ++b) {
    double s = 0, mag = 0;
    for (int64_t q = b * c.plane; q < (b + 1) * c.plane; ++q) {
      s += 0.5 * pu[q] * pa[q];
      mag += 0.5 * std::abs(pu[q] * pa[q]);
    }
    if (!(e.get({b}) > 0) || !near(e.get({b}), s, mag)) return false;
  }
  return true;
}

// Sampled nodes (corners, edges, interior) against the stencil written out, and <1, A u> = 0 per
// sample (constants are in A's null space, and A is symmetric).
bool check_apply(const FemCase& c, const Tensor& au) {
  if (!all_finite(au)) return false;
  const float* pa = au.data<float>();
  const int64_t pos[4] = {0, 1, c.hw / 2 + 1, c.hw - 1};
  for (int q = 0; q < 16; ++q) {
    const int64_t b = q % kBatch, i = pos[q % 4], j = pos[q / 4];
    double mag;
    const double want = c.apply_at(b, i, j, &mag);
    if (!near(pa[b * c.plane + i * c.hw + j], want, mag)) return false;
  }
  for (int64_t b = 0; b < kBatch; ++b) {
    double s = 0, mag = 0;
    for (int64_t q = b * c.plane; q < (b + 1) * c.plane; ++q) {
      s += pa[q];
      mag += std::abs(pa[q]);
    }
    if (!near(s, 0, mag)) return false;
  }
  return true;
}

void BM_fem_energy(benchmark::State& state) {
  FemCase c(state);
  if (!validate(state, check_energy(c), "fem_energy")) return;
  for (auto _ : state) {
    Tensor e = kernels::fem_energy(c.u, c.nu);
    benchmark::DoNotOptimize(e.raw_data());
  }
  set_rates(state, 0, nbytes(c.u) + nbytes(c.nu) + kBatch * 4.0, c.nodes());
}

void BM_fem_apply(benchmark::State& state) {
  FemCase c(state);
  Tensor au = kernels::fem_apply(c.nu, c.u);
  if (!validate(state, check_apply(c, au), "fem_apply")) return;
  for (auto _ : state) {
    Tensor out = kernels::fem_apply(c.nu, c.u);
    benchmark::DoNotOptimize(out.raw_data());
  }
  set_rates(state, 0, nbytes(c.u) + nbytes(c.nu) + nbytes(au), c.nodes());
}

// One V-cycle must contract the residual of r = A e, e random and zero at the Dirichlet nodes:
// ||r - A z|| <= 0.5 ||r|| per sample (a broken hierarchy or smoother does not).
bool check_vcycle(const FemCase& c, const Tensor& nu64, const Tensor& r, const Tensor& z) {
  const Tensor az = kernels::fem_apply(nu64, z);
  const double *pr = r.data<double>(), *pz = az.data<double>();
  for (int64_t b = 0; b < kBatch; ++b) {
    double rr = 0, dd = 0;
    for (int64_t q = b * c.plane; q < (b + 1) * c.plane; ++q) {
      const int64_t x = q % c.hw;
      if (x == 0 || x == c.hw - 1) continue;
      rr += pr[q] * pr[q];
      dd += (pr[q] - pz[q]) * (pr[q] - pz[q]);
    }
    if (!(rr > 0) || !std::isfinite(dd) || dd > 0.25 * rr) return false;
  }
  return true;
}

// What --output-precondition adds to a step: pde::multigrid_precondition on the batch (float64,
// the hierarchy assembled from nu each call, as each step has a new batch).
void BM_multigrid_precondition(benchmark::State& state) {
  FemCase c(state);
  const Tensor nu64 = c.nu.to(DType::Float64);
  Tensor e = c.u.to(DType::Float64).contiguous();
  double* pe = e.data<double>();
  for (int64_t q = 0; q < e.numel(); ++q)
    if (q % c.hw == 0 || q % c.hw == c.hw - 1) pe[q] = 0;
  const Tensor r = kernels::fem_apply(nu64, e);
  const Tensor z = pde::multigrid_precondition(nu64, r);
  if (!validate(state, check_vcycle(c, nu64, r, z), "multigrid_precondition")) return;
  for (auto _ : state) {
    Tensor out = pde::multigrid_precondition(nu64, r);
    benchmark::DoNotOptimize(out.raw_data());
  }
  set_rates(state, 0, 0, c.nodes());
}

// The hierarchy alone (assembly, Galerkin coarse operators, the coarse Cholesky) for one sample.
void BM_multigrid_setup(benchmark::State& state) {
  FemCase c(state);
  const Tensor nu64 = c.nu.to(DType::Float64).contiguous();
  for (auto _ : state) {
    pde::Multigrid mg(2, {c.hw, c.hw, 1}, nu64.data<double>());
    benchmark::DoNotOptimize(mg.num_levels());
  }
  set_rates(state, 0, 0, static_cast<double>(c.plane));
}

void fem_shapes(benchmark::internal::Benchmark* b) {
  b->ArgName("n")->Arg(1024)->Arg(128);
  b->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_fem_energy)->Apply(fem_shapes);
BENCHMARK(BM_fem_apply)->Apply(fem_shapes);
BENCHMARK(BM_multigrid_precondition)->Apply(fem_shapes)->Arg(256)->Arg(512);
BENCHMARK(BM_multigrid_setup)->Apply(fem_shapes);

}  // namespace
}  // namespace dfx::bench
