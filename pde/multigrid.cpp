// pde/multigrid.cpp — the V-cycle behind pde/multigrid.h: per-axis linear transfers, forward-half
// stencils (symmetric by construction: A[i][i+o] and A[i+o][i] are one stored number), the fine
// Q1 stencil assembled from nu, Galerkin coarse operators by colour probing, scaled
// l1-Jacobi smoothing, banded Cholesky on the coarsest level.
#include "pde/multigrid.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "kernels/fem.h"

namespace dfx::pde {
namespace {

struct Offset {
  int z, y, x;
};

// The centre and the offsets lexicographically after it in (z, y, x): each off-diagonal pair of
// the symmetric stencil is stored once, at the node with the smaller flat index.
std::vector<Offset> forward_offsets(int dim) {
  std::vector<Offset> f = {{0, 0, 0}};
  const int zr = dim == 3 ? 1 : 0;
  for (int z = -zr; z <= zr; ++z)
    for (int y = -1; y <= 1; ++y)
      for (int x = -1; x <= 1; ++x)
        if (z > 0 || (z == 0 && (y > 0 || (y == 0 && x > 0)))) f.push_back({z, y, x});
  return f;
}

// 1-d linear interpolation from nc coarse nodes to nf fine nodes, coarse node I at fine node
// min(2 I, nf - 1), stored both per fine node (prolongation) and per coarse node (restriction)
// from the same weights, so restriction is exactly the transpose.
struct AxisMap {
  int64_t nf = 1, nc = 1;
  std::vector<int64_t> lo, hi;  // per fine node: the (at most) two coarse nodes
  std::vector<double> wlo, whi;
  std::vector<int64_t> start;   // per coarse node: CSR rows into node / w
  std::vector<int64_t> node;
  std::vector<double> w;
};

AxisMap make_axis(int64_t nf, bool coarsen) {
  AxisMap m;
  m.nf = nf;
  m.nc = coarsen && nf >= 3 ? nf / 2 + 1 : nf;
  const bool halve = m.nc < nf;
  auto pos = [&](int64_t I) { return halve ? std::min(2 * I, nf - 1) : I; };
  m.lo.assign(nf, 0);
  m.hi.assign(nf, 0);
  m.wlo.assign(nf, 0.0);
  m.whi.assign(nf, 0.0);
  for (int64_t I = 0; I < m.nc; ++I) {
    const int64_t a = pos(I);
    m.lo[a] = m.hi[a] = I;
    m.wlo[a] = 1.0;
    if (I + 1 == m.nc) continue;
    const int64_t b = pos(I + 1);
    for (int64_t k = a + 1; k < b; ++k) {
      const double t = static_cast<double>(k - a) / static_cast<double>(b - a);
      m.lo[k] = I;
      m.hi[k] = I + 1;
      m.wlo[k] = 1.0 - t;
      m.whi[k] = t;
    }
  }
  std::vector<std::vector<std::pair<int64_t, double>>> rows(m.nc);
  for (int64_t k = 0; k < nf; ++k) {
    rows[m.lo[k]].push_back({k, m.wlo[k]});
    if (m.whi[k] != 0.0) rows[m.hi[k]].push_back({k, m.whi[k]});
  }
  m.start.push_back(0);
  for (const auto& r : rows) {
    for (const auto& [k, w] : r) {
      m.node.push_back(k);
      m.w.push_back(w);
    }
    m.start.push_back(static_cast<int64_t>(m.node.size()));
  }
  return m;
}

struct Level {
  int64_t nx = 1, ny = 1, nz = 1, size = 1;
  std::vector<double> st;        // [forward offset][node], zero at Dirichlet rows
  std::vector<double> inv_diag;  // c / l1_i at free nodes (l1-Jacobi), 0 at Dirichlet nodes
  std::vector<double> b, x, r;   // right-hand side, iterate, scratch
  AxisMap ax, ay, az;            // transfers to the next coarser level
  std::vector<int64_t> free_nodes;  // coarsest level: Cholesky of A on the free nodes,
  std::vector<double> chol;         // held dense [m, m], nonzero within `band` of the diagonal
  int64_t band = 0;
};

inline bool is_free(const Level& L, int64_t i) {
  const int64_t x = i % L.nx;
  return x != 0 && x != L.nx - 1;
}

}  // namespace

struct Multigrid::Impl {
  int dim = 2;
  MultigridOptions opts;
  std::vector<Offset> fwd;
  int fwd_index[27];  // (z+1)*9 + (y+1)*3 + (x+1) -> index into fwd, or -1
  std::vector<Level> levels;

  // out = A' v over the forward-half stencil and its mirror, A'_ij = coef(A_ij): the identity
  // for the operator, |.| for the smoother's l1 row sums (with v = 1). One traversal, so both
  // sum each row in the same order.
  template <class Coef>
  void stencil_rows(const Level& L, const double* v, double* out, Coef coef) const {
    const int64_t nx = L.nx, ny = L.ny, nz = L.nz, S = L.size;
    const int nf = static_cast<int>(fwd.size());
    const double* st = L.st.data();
#pragma omp parallel for schedule(static) if (S >= 16384)
    for (int64_t row = 0; row < ny * nz; ++row) {
      const int64_t y = row % ny, z = row / ny, base = row * nx;
      double* o = out + base;
      o[0] = 0.0;
      o[nx - 1] = 0.0;
      for (int64_t x = 1; x < nx - 1; ++x) o[x] = coef(st[base + x]) * v[base + x];
      for (int k = 1; k < nf; ++k) {
        const Offset f = fwd[k];
        const int64_t off = (f.z * ny + f.y) * nx + f.x;
        const double* sk = st + k * S;
        // Upper part A[i][i+o] x[i+o] and its mirror A[i-o][i] x[i-o]; x +- 1 stays in range
        // because only x in [1, nx - 2] is written.
        if (z + f.z >= 0 && z + f.z < nz && y + f.y >= 0 && y + f.y < ny)
          for (int64_t x = 1; x < nx - 1; ++x) o[x] += coef(sk[base + x]) * v[base + x + off];
        if (z - f.z >= 0 && z - f.z < nz && y - f.y >= 0 && y - f.y < ny)
          for (int64_t x = 1; x < nx - 1; ++x) o[x] += coef(sk[base + x - off]) * v[base + x - off];
      }
    }
  }

  void stencil_apply(const Level& L, const double* v, double* out) const {
    stencil_rows(L, v, out, [](double a) { return a; });
  }

  // xf += P xc.
  void prolong_add(const Level& F, const Level& C, const double* xc, double* xf) const {
#pragma omp parallel for schedule(static) if (F.size >= 16384)
    for (int64_t row = 0; row < F.ny * F.nz; ++row) {
      const int64_t y = row % F.ny, z = row / F.ny;
      double* o = xf + row * F.nx;
      const int64_t zc[2] = {F.az.lo[z], F.az.hi[z]}, yc[2] = {F.ay.lo[y], F.ay.hi[y]};
      const double wz[2] = {F.az.wlo[z], F.az.whi[z]}, wy[2] = {F.ay.wlo[y], F.ay.whi[y]};
      for (int a = 0; a < 2; ++a)
        for (int c = 0; c < 2; ++c) {
          const double w = wz[a] * wy[c];
          if (w == 0.0) continue;
          const double* src = xc + (zc[a] * C.ny + yc[c]) * C.nx;
          for (int64_t x = 0; x < F.nx; ++x)
            o[x] += w * (F.ax.wlo[x] * src[F.ax.lo[x]] + F.ax.whi[x] * src[F.ax.hi[x]]);
        }
    }
  }

  // rc = P^T rf, zero at the coarse Dirichlet nodes.
  void restrict_to(const Level& F, const Level& C, const double* rf, double* rc) const {
#pragma omp parallel for schedule(static) if (F.size >= 16384)
    for (int64_t row = 0; row < C.ny * C.nz; ++row) {
      const int64_t Y = row % C.ny, Z = row / C.ny;
      double* o = rc + row * C.nx;
      for (int64_t X = 0; X < C.nx; ++X) o[X] = 0.0;
      for (int64_t a = F.az.start[Z]; a < F.az.start[Z + 1]; ++a)
        for (int64_t c = F.ay.start[Y]; c < F.ay.start[Y + 1]; ++c) {
          const double w = F.az.w[a] * F.ay.w[c];
          const double* src = rf + (F.az.node[a] * F.ny + F.ay.node[c]) * F.nx;
          for (int64_t X = 1; X < C.nx - 1; ++X) {
            double s = 0.0;
            for (int64_t e = F.ax.start[X]; e < F.ax.start[X + 1]; ++e)
              s += F.ax.w[e] * src[F.ax.node[e]];
            o[X] += w * s;
          }
        }
    }
  }

  // Fills L.st with the Q1 FEM matrix on the free nodes: A[i][i+o] = sum over the cells c that
  // hold both nodes of nu_c K_e[a][b] (a, b their local indices in c, x-bit | y-bit << 1 |
  // z-bit << 2 as in kernels::q1_stiffness), zero where either node is a Dirichlet node. Gathered
  // per node, so rows can be filled in parallel.
  void assemble(Level& L, const double* nu) const {
    const int64_t nx = L.nx, ny = L.ny, nz = L.nz, S = L.size;
    const int64_t cx = nx - 1, cy = ny - 1, cz = dim == 3 ? nz - 1 : 1;
    const int nloc = 1 << dim;
    // 2-d K_e is independent of h; in 3-d it scales with h (cubic grids, h = 1 / (nx - 1)).
    const Tensor K = kernels::q1_stiffness(dim, 1.0 / static_cast<double>(nx - 1));
    const double* ke = K.data<double>();
    std::vector<double> nuc(cx * cy * cz);
#pragma omp parallel for schedule(static) if (S >= 16384)
    for (int64_t row = 0; row < cy * cz; ++row) {
      const int64_t y = row % cy, z = row / cy;
      for (int64_t x = 0; x < cx; ++x) {
        double s = 0.0;
        for (int k = 0; k < nloc; ++k)
          s += nu[((z + ((k >> 2) & 1)) * ny + y + ((k >> 1) & 1)) * nx + x + (k & 1)];
        nuc[row * cx + x] = s / nloc;
      }
    }
    // The cells that hold both p and p + f have origins p + d, d in {-1, 0} and in {f - 1, f}
    // per axis (z only in 3-d); each contributes nu_c K_e[a][b] with a, b the two nodes' local
    // indices, the same for every node. Listed once per offset, in ascending (z, y, x) order,
    // and skipped per node where the cell falls outside the grid.
    struct Term {
      int dz, dy, dx;
      double k;
    };
    const int nf = static_cast<int>(fwd.size());
    std::vector<std::vector<Term>> terms(nf);
    const int zr = dim == 3 ? 1 : 0;
    for (int k = 0; k < nf; ++k) {
      const Offset f = fwd[k];
      for (int dz = -zr; dz <= 0; ++dz)
        for (int dy = -1; dy <= 0; ++dy)
          for (int dx = -1; dx <= 0; ++dx) {
            const int bz = f.z - dz, by = f.y - dy, bx = f.x - dx;  // p + f's offset in the cell
            if (bz < 0 || bz > zr || by < 0 || by > 1 || bx < 0 || bx > 1) continue;
            const int a = ((-dz) << 2) | ((-dy) << 1) | (-dx);
            const int b = (bz << 2) | (by << 1) | bx;
            terms[k].push_back({dz, dy, dx, ke[a * nloc + b]});
          }
    }
    L.st.assign(fwd.size() * S, 0.0);
#pragma omp parallel for schedule(static) if (S >= 16384)
    for (int64_t row = 0; row < ny * nz; ++row) {
      const int64_t y = row % ny, z = row / ny;
      for (int k = 0; k < nf; ++k) {
        const Offset f = fwd[k];
        if (y + f.y < 0 || y + f.y >= ny || z + f.z < 0 || z + f.z >= nz) continue;
        double* out = L.st.data() + k * S + row * nx;
        // x + f.x must be a free node: 1 <= x + f.x <= nx - 2.
        const int64_t x0 = std::max<int64_t>(1, 1 - f.x), x1 = std::min<int64_t>(nx - 2, nx - 2 - f.x);
        for (const Term& t : terms[k]) {
          const int64_t oz = z + t.dz, oy = y + t.dy;
          if (oz < 0 || oz >= cz || oy < 0 || oy >= cy) continue;
          const double* nr = nuc.data() + (oz * cy + oy) * cx;
          // Cell origin x + dx in [0, cx - 1].
          const int64_t lo = std::max<int64_t>(x0, -t.dx), hi = std::min<int64_t>(x1, cx - 1 - t.dx);
          for (int64_t x = lo; x <= hi; ++x) out[x] += nr[x + t.dx] * t.k;
        }
      }
    }
  }

  // Coarse operators P^T A P from 3^dim probes: colour class c = the free nodes whose coordinates are congruent
  // to c mod 3. Every node has exactly one node of class c in its 3^dim neighbourhood, so
  // (A e_c)_i is the single coefficient linking i to that node.
  template <class Op>
  void probe(Level& L, const Op& op) const {
    const int64_t S = L.size, nx = L.nx, ny = L.ny, nz = L.nz;
    L.st.assign(fwd.size() * S, 0.0);
    std::vector<double> v(S), g(S);
    std::vector<int> kx(nx, 0);
    // (c - coordinate) mod 3 -> offset to the class-c node: 0 -> 0, 1 -> +1, 2 -> -1.
    auto off = [](int c, int64_t p) {
      const int r = static_cast<int>(((c - p) % 3 + 3) % 3);
      return r == 0 ? 0 : (r == 1 ? 1 : -1);
    };
    const int cz_max = dim == 3 ? 3 : 1;
    for (int cz = 0; cz < cz_max; ++cz)
      for (int cy = 0; cy < 3; ++cy)
        for (int cx = 0; cx < 3; ++cx) {
          std::fill(v.begin(), v.end(), 0.0);
          for (int64_t z = cz; z < nz; z += 3)
            for (int64_t y = cy; y < ny; y += 3)
              for (int64_t x = cx == 0 ? 3 : cx; x < nx - 1; x += 3)  // free: 1 <= x <= nx - 2
                v[(z * ny + y) * nx + x] = 1.0;
          op(v.data(), g.data());
          for (int64_t x = 1; x < nx - 1; ++x) kx[x] = off(cx, x) + 1;
#pragma omp parallel for schedule(static) if (S >= 16384)
          for (int64_t row = 0; row < ny * nz; ++row) {
            const int64_t y = row % ny, z = row / ny;
            const int kzy = (off(cz, z) + 1) * 9 + (off(cy, y) + 1) * 3;
            const int64_t base = row * nx;
            for (int64_t x = 1; x < nx - 1; ++x) {
              const int k = fwd_index[kzy + kx[x]];
              if (k >= 0) L.st[k * S + base + x] = g[base + x];
            }
          }
        }
  }

  // Scaled l1-Jacobi (Baker, Falgout, Kolev and Yang 2011): x += c (b - A x) / l1_i with
  // l1_i = sum_j |A_ij| >= A_ii. D_l1 - A is diagonally dominant, so A <= D_l1 and any c < 2
  // gives a convergent sweep, hence an SPD cycle, without estimating a spectral radius; the
  // weight is local, so a node of a high-contrast field is not held to the worst node's. For a
  // constant coefficient (l1 = 2 A_ii for Q1, rho(D^-1 A) = 1.5) c = 1.733 is the damped Jacobi
  // weight 1.3 / rho this replaced.
  static constexpr double kL1Weight = 1.733;

  void setup_smoother(Level& L, int index) const {
    const int64_t nx = L.nx, rows = L.ny * L.nz;
    const double* st = L.st.data();
    L.inv_diag.assign(L.size, 0.0);
    const std::vector<double> ones(L.size, 1.0);
    stencil_rows(L, ones.data(), L.inv_diag.data(), [](double a) { return std::abs(a); });
    for (int64_t row = 0; row < rows; ++row)
      for (int64_t x = 1; x < nx - 1; ++x) {
        const int64_t i = row * nx + x;
        DFX_CHECK(st[i] > 0.0 && std::isfinite(st[i]) && std::isfinite(L.inv_diag[i]),
                  "multigrid: level ", index, " has a non-positive or non-finite diagonal ",
                  st[i], " at node ", i, "; the operator must be symmetric positive definite");
        L.inv_diag[i] = kL1Weight / L.inv_diag[i];
      }
  }

  void factor_coarsest(Level& L) const {
    L.free_nodes.clear();
    L.band = 0;
    std::vector<int64_t> row_of(L.size, -1);
    for (int64_t i = 0; i < L.size; ++i)
      if (is_free(L, i)) {
        row_of[i] = static_cast<int64_t>(L.free_nodes.size());
        L.free_nodes.push_back(i);
      }
    const int64_t m = static_cast<int64_t>(L.free_nodes.size());
    std::vector<double>& A = L.chol;
    A.assign(m * m, 0.0);
    for (int64_t i : L.free_nodes) {
      const int64_t y = (i / L.nx) % L.ny, z = i / (L.nx * L.ny);  // x +- 1 stays in range
      for (size_t k = 0; k < fwd.size(); ++k) {
        const Offset f = fwd[k];
        if (z + f.z < 0 || z + f.z >= L.nz || y + f.y < 0 || y + f.y >= L.ny) continue;
        const int64_t j = i + (f.z * L.ny + f.y) * L.nx + f.x;
        if (row_of[j] < 0) continue;
        const double a = L.st[k * L.size + i];
        A[row_of[i] * m + row_of[j]] = a;
        A[row_of[j] * m + row_of[i]] = a;
        L.band = std::max(L.band, std::abs(row_of[j] - row_of[i]));
      }
    }
    // Cholesky A = L L^T, lower triangle in place, by rows of the band only: a stencil matrix in
    // node order is banded (2-d: band nx - 1 of m ~ nx^2), Cholesky fills nothing outside the
    // band, and the terms a dense loop adds beyond it are exact zeros, so the factor is the dense
    // one to the bit at a band^2 / m^2 share of its cost. Serial: m <= coarse_max_nodes.
    const int64_t w = L.band;
    for (int64_t j = 0; j < m; ++j) {
      double d = A[j * m + j];
      for (int64_t k = std::max<int64_t>(0, j - w); k < j; ++k) d -= A[j * m + k] * A[j * m + k];
      DFX_CHECK(d > 0.0, "multigrid: the coarsest operator (", m,
                " free nodes) is not positive definite (pivot ", d, " at row ", j, ")");
      d = std::sqrt(d);
      A[j * m + j] = d;
      for (int64_t i = j + 1; i <= std::min(m - 1, j + w); ++i) {
        double s = A[i * m + j];
        for (int64_t k = std::max<int64_t>(0, i - w); k < j; ++k) s -= A[i * m + k] * A[j * m + k];
        A[i * m + j] = s / d;
      }
    }
  }

  void solve_coarsest(Level& L) const {
    const int64_t m = static_cast<int64_t>(L.free_nodes.size());
    const double* A = L.chol.data();
    std::vector<double>& y = L.r;
    const int64_t w = L.band;
    for (int64_t i = 0; i < m; ++i) {
      double s = L.b[L.free_nodes[i]];
      for (int64_t k = std::max<int64_t>(0, i - w); k < i; ++k) s -= A[i * m + k] * y[k];
      y[i] = s / A[i * m + i];
    }
    for (int64_t i = m - 1; i >= 0; --i) {
      double s = y[i];
      for (int64_t k = i + 1; k <= std::min(m - 1, i + w); ++k) s -= A[k * m + i] * y[k];
      y[i] = s / A[i * m + i];
    }
    std::fill(L.x.begin(), L.x.end(), 0.0);
    for (int64_t i = 0; i < m; ++i) L.x[L.free_nodes[i]] = y[i];
  }

  // x += inv_diag (b - A x)
  void smooth(Level& L) const {
    stencil_apply(L, L.x.data(), L.r.data());
    const int64_t S = L.size;
#pragma omp parallel for schedule(static) if (S >= 16384)
    for (int64_t i = 0; i < S; ++i) L.x[i] += L.inv_diag[i] * (L.b[i] - L.r[i]);
  }

  void vcycle(size_t l) {
    Level& L = levels[l];
    if (l + 1 == levels.size()) {
      solve_coarsest(L);
      return;
    }
    Level& C = levels[l + 1];
    const int64_t S = L.size;
    // The first sweep from x = 0 needs no operator application.
#pragma omp parallel for schedule(static) if (S >= 16384)
    for (int64_t i = 0; i < S; ++i) L.x[i] = L.inv_diag[i] * L.b[i];
    for (int s = 1; s < opts.smoothing_steps; ++s) smooth(L);
    stencil_apply(L, L.x.data(), L.r.data());
#pragma omp parallel for schedule(static) if (S >= 16384)
    for (int64_t i = 0; i < S; ++i) L.r[i] = L.b[i] - L.r[i];
    restrict_to(L, C, L.r.data(), C.b.data());
    vcycle(l + 1);
    prolong_add(L, C, C.x.data(), L.x.data());
    for (int s = 0; s < opts.smoothing_steps; ++s) smooth(L);
  }
};

Multigrid::Multigrid(int dim, std::array<int64_t, 3> n, const double* nu, MultigridOptions opts)
    : impl_(std::make_unique<Impl>()) {
  DFX_CHECK(dim == 2 || dim == 3, "Multigrid: dim = ", dim, "; expected 2 or 3");
  DFX_CHECK(n[0] >= 2 && n[1] >= 2 && (dim == 3 ? n[2] >= 2 : n[2] == 1), "Multigrid: grid ",
            n[0], " x ", n[1], " x ", n[2], " does not fit dim ", dim,
            " (every axis needs >= 2 nodes, nz = 1 in 2-d)");
  DFX_CHECK(dim == 2 || (n[0] == n[1] && n[0] == n[2]), "Multigrid: 3-d grid ", n[0], " x ", n[1],
            " x ", n[2], " must be cubic (the Q1 stencil assumes one spacing h)");
  DFX_CHECK(opts.smoothing_steps >= 1, "Multigrid: smoothing_steps = ", opts.smoothing_steps,
            " must be at least 1");
  Impl& m = *impl_;
  m.dim = dim;
  m.opts = opts;
  m.fwd = forward_offsets(dim);
  std::fill(std::begin(m.fwd_index), std::end(m.fwd_index), -1);
  for (size_t k = 0; k < m.fwd.size(); ++k)
    m.fwd_index[(m.fwd[k].z + 1) * 9 + (m.fwd[k].y + 1) * 3 + m.fwd[k].x + 1] = static_cast<int>(k);

  auto make_level = [](int64_t nx, int64_t ny, int64_t nz) {
    Level L;
    L.nx = nx;
    L.ny = ny;
    L.nz = nz;
    L.size = nx * ny * nz;
    L.b.assign(L.size, 0.0);
    L.x.assign(L.size, 0.0);
    L.r.assign(L.size, 0.0);
    return L;
  };
  m.levels.push_back(make_level(n[0], n[1], n[2]));
  m.assemble(m.levels[0], nu);
  while (m.levels.back().size > opts.coarse_max_nodes) {
    Level& F = m.levels.back();
    F.ax = make_axis(F.nx, true);
    F.ay = make_axis(F.ny, true);
    F.az = make_axis(F.nz, dim == 3);
    if (F.ax.nc * F.ay.nc * F.az.nc == F.size) break;  // nothing left to coarsen
    Level C = make_level(F.ax.nc, F.ay.nc, F.az.nc);
    const size_t fi = m.levels.size() - 1;
    std::vector<double> vf(F.size), gf(F.size);
    // A_c = P^T A_f P, seen through the same probing as the finest operator.
    m.probe(C, [&](const double* vc, double* out) {
      const Level& Fl = m.levels[fi];
      std::fill(vf.begin(), vf.end(), 0.0);
      m.prolong_add(Fl, C, vc, vf.data());
      m.stencil_apply(Fl, vf.data(), gf.data());
      m.restrict_to(Fl, C, gf.data(), out);
    });
    m.levels.push_back(std::move(C));
  }
  for (size_t l = 0; l + 1 < m.levels.size(); ++l)
    m.setup_smoother(m.levels[l], static_cast<int>(l));
  m.factor_coarsest(m.levels.back());
}

Multigrid::~Multigrid() = default;
Multigrid::Multigrid(Multigrid&&) noexcept = default;
Multigrid& Multigrid::operator=(Multigrid&&) noexcept = default;

void Multigrid::apply(const double* r, double* z) {
  Level& L = impl_->levels[0];
  for (int64_t i = 0; i < L.size; ++i) L.b[i] = is_free(L, i) ? r[i] : 0.0;
  impl_->vcycle(0);
  std::copy(L.x.begin(), L.x.end(), z);
}

void Multigrid::apply_fine_stencil(const double* v, double* out) const {
  impl_->stencil_apply(impl_->levels[0], v, out);
}

void Multigrid::apply_level_stencil(int l, const double* v, double* out) const {
  DFX_CHECK(l >= 0 && l < num_levels(), "Multigrid: level ", l, " out of range [0, ",
            num_levels(), ")");
  impl_->stencil_apply(impl_->levels[l], v, out);
}

std::array<int64_t, 3> Multigrid::level_shape(int l) const {
  DFX_CHECK(l >= 0 && l < num_levels(), "Multigrid: level ", l, " out of range [0, ",
            num_levels(), ")");
  const Level& L = impl_->levels[l];
  return {L.nx, L.ny, L.nz};
}

int Multigrid::num_levels() const { return static_cast<int>(impl_->levels.size()); }

std::string Multigrid::describe() const {
  std::ostringstream os;
  for (size_t l = 0; l < impl_->levels.size(); ++l) {
    const Level& L = impl_->levels[l];
    os << (l ? " -> " : "") << L.nx << "x" << L.ny;
    if (impl_->dim == 3) os << "x" << L.nz;
  }
  os << " (Cholesky of " << impl_->levels.back().free_nodes.size() << " free, band "
     << impl_->levels.back().band << ")";
  return os.str();
}

}  // namespace dfx::pde
