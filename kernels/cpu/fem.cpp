// kernels/cpu/fem.cpp — Q1 stencils on the CPU. Node-centric gathers (each output node sums over
// its 2^d neighbouring cells) so threads never write the same node; energies are summed per
// (sample, row) and then in a fixed order, so every result is independent of the thread count.
#include "kernels/cpu/fem.h"

#include <array>
#include <vector>

#include "kernels/cpu/dispatch.h"

namespace dfx::kernels::cpu {
namespace {

template <int D>
struct Grid {
  static constexpr int kNodes = 1 << D;
  int64_t B = 0;
  std::array<int64_t, 3> n{1, 1, 1};       // sizes along x, y, z (x = last tensor axis)
  std::array<int64_t, 3> stride{0, 0, 0};  // element strides along x, y, z
  int64_t plane = 0;                       // nodes per sample
  std::array<int64_t, 8> local{};          // offset of cell-local node k from the cell origin
  double K[8][8] = {};

  Grid(const Tensor& t, const Tensor& k) {
    B = t.shape()[0];
    for (int a = 0; a < D; ++a) n[a] = t.shape()[t.dim() - 1 - a];
    int64_t s = 1;
    for (int a = 0; a < D; ++a) {
      stride[a] = s;
      s *= n[a];
    }
    plane = s;
    for (int kk = 0; kk < kNodes; ++kk) {
      local[kk] = 0;
      for (int a = 0; a < D; ++a) local[kk] += ((kk >> a) & 1) * stride[a];
    }
    const double* kp = k.data<double>();
    for (int i = 0; i < kNodes; ++i)
      for (int j = 0; j < kNodes; ++j) K[i][j] = kp[i * kNodes + j];
  }
  // Node coordinates (x, y, z) of flat node index p within a sample.
  void coords(int64_t p, int64_t c[3]) const {
    for (int a = 0; a < D; ++a) {
      c[a] = p % n[a];
      p /= n[a];
    }
  }
  // Calls f(cell_origin_flat, local_index_of_node) for every cell touching node c.
  template <class F>
  void for_cells_of(const int64_t c[3], F&& f) const {
    for (int kk = 0; kk < kNodes; ++kk) {
      int64_t origin = 0;
      bool ok = true;
      for (int a = 0; a < D; ++a) {
        int64_t o = c[a] - ((kk >> a) & 1);  // cell origin along a, node has local offset bit
        if (o < 0 || o >= n[a] - 1) {
          ok = false;
          break;
        }
        origin += o * stride[a];
      }
      if (ok) f(origin, kk);
    }
  }
};

template <int D, class T>
inline double cell_mean(const Grid<D>& g, const T* f, int64_t origin) {
  double s = 0;
  for (int k = 0; k < Grid<D>::kNodes; ++k) s += f[origin + g.local[k]];
  return s / Grid<D>::kNodes;
}

template <int D, class T>
void energy_impl(const Tensor& u, const Tensor& nu, const Tensor& K, const Tensor& out) {
  Grid<D> g(u, K);
  const T* pu = u.data<T>();
  const T* pn = nu.data<T>();
  // One partial sum per (sample, outermost cell row).
  const int64_t rows = g.n[D - 1] - 1;
  const int64_t row_cells = g.plane / g.n[D - 1];  // nodes per outermost slab, cells use n-1
  std::vector<double> partial(g.B * std::max<int64_t>(rows, 0), 0.0);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < g.B; ++b) {
    for (int64_t r = 0; r < rows; ++r) {
      const T* ub = pu + b * g.plane;
      const T* nb = pn + b * g.plane;
      double acc = 0;
      for (int64_t q = 0; q < row_cells; ++q) {
        int64_t c[3] = {0, 0, 0};
        int64_t p = q;
        bool interior = true;
        for (int a = 0; a < D - 1; ++a) {
          c[a] = p % g.n[a];
          p /= g.n[a];
          if (c[a] >= g.n[a] - 1) interior = false;
        }
        if (!interior) continue;
        c[D - 1] = r;
        int64_t origin = 0;
        for (int a = 0; a < D; ++a) origin += c[a] * g.stride[a];
        double uc[8];
        for (int k = 0; k < Grid<D>::kNodes; ++k) uc[k] = ub[origin + g.local[k]];
        double quad = 0;
        for (int i = 0; i < Grid<D>::kNodes; ++i) {
          double ki = 0;
          for (int j = 0; j < Grid<D>::kNodes; ++j) ki += g.K[i][j] * uc[j];
          quad += uc[i] * ki;
        }
        acc += cell_mean<D>(g, nb, origin) * quad;
      }
      partial[b * rows + r] = 0.5 * acc;
    }
  }
  T* po = out.data<T>();
  for (int64_t b = 0; b < g.B; ++b) {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) s += partial[b * rows + r];
    po[b] = static_cast<T>(s);
  }
}

template <int D, class T>
void apply_impl(const Tensor& nu, const Tensor& u, const Tensor& K, const Tensor& out) {
  Grid<D> g(u, K);
  const T* pu = u.data<T>();
  const T* pn = nu.data<T>();
  T* po = out.data<T>();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < g.B; ++b) {
    for (int64_t p = 0; p < g.plane; ++p) {
      const T* ub = pu + b * g.plane;
      const T* nb = pn + b * g.plane;
      int64_t c[3] = {0, 0, 0};
      g.coords(p, c);
      double acc = 0;
      g.for_cells_of(c, [&](int64_t origin, int k) {
        double ku = 0;
        for (int j = 0; j < Grid<D>::kNodes; ++j) ku += g.K[k][j] * ub[origin + g.local[j]];
        acc += cell_mean<D>(g, nb, origin) * ku;
      });
      po[b * g.plane + p] = static_cast<T>(acc);
    }
  }
}

template <int D, class T>
void bilinear_impl(const Tensor& a, const Tensor& bt, const Tensor& K, const Tensor& out) {
  Grid<D> g(a, K);
  const T* pa = a.data<T>();
  const T* pb = bt.data<T>();
  T* po = out.data<T>();
  const double w = 1.0 / Grid<D>::kNodes;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < g.B; ++b) {
    for (int64_t p = 0; p < g.plane; ++p) {
      const T* ab = pa + b * g.plane;
      const T* bb = pb + b * g.plane;
      int64_t c[3] = {0, 0, 0};
      g.coords(p, c);
      double acc = 0;
      g.for_cells_of(c, [&](int64_t origin, int) {
        double ac[8], bc[8];
        for (int k = 0; k < Grid<D>::kNodes; ++k) {
          ac[k] = ab[origin + g.local[k]];
          bc[k] = bb[origin + g.local[k]];
        }
        double q = 0;
        for (int i = 0; i < Grid<D>::kNodes; ++i) {
          double ki = 0;
          for (int j = 0; j < Grid<D>::kNodes; ++j) ki += g.K[i][j] * bc[j];
          q += ac[i] * ki;
        }
        acc += q;
      });
      po[b * g.plane + p] = static_cast<T>(w * acc);
    }
  }
}

int spatial_dims(const Tensor& K) { return K.shape()[0] == 4 ? 2 : 3; }

}  // namespace

void fem_energy(const Tensor& u, const Tensor& nu, const Tensor& K, const Tensor& out) {
  const int d = spatial_dims(K);
  dispatch_float(u.dtype(), "fem_energy", [&](auto z) {
    using T = decltype(z);
    if (d == 2) energy_impl<2, T>(u, nu, K, out);
    else energy_impl<3, T>(u, nu, K, out);
  });
}

void fem_apply(const Tensor& nu, const Tensor& u, const Tensor& K, const Tensor& out) {
  const int d = spatial_dims(K);
  dispatch_float(u.dtype(), "fem_apply", [&](auto z) {
    using T = decltype(z);
    if (d == 2) apply_impl<2, T>(nu, u, K, out);
    else apply_impl<3, T>(nu, u, K, out);
  });
}

void fem_bilinear(const Tensor& a, const Tensor& b, const Tensor& K, const Tensor& out) {
  const int d = spatial_dims(K);
  dispatch_float(a.dtype(), "fem_bilinear", [&](auto z) {
    using T = decltype(z);
    if (d == 2) bilinear_impl<2, T>(a, b, K, out);
    else bilinear_impl<3, T>(a, b, K, out);
  });
}

}  // namespace dfx::kernels::cpu
