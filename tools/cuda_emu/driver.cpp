// Emulated-CUDA checks: the kernels of kernels/cuda/*.cu run on host threads over CPU tensors and
// are compared with the CPU kernels.
#include <algorithm>
#include "cuda_emu.h"
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/conv.h"
#include "kernels/conv_config.h"
#include "kernels/cuda/conv.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/fem.cuh"
#include "kernels/cuda/norm.cuh"
#include "kernels/cuda/pool.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/elementwise.h"
#include "kernels/fem.h"
#include "kernels/norm.h"
#include "kernels/pool.h"
#include "kernels/reduce.h"
#include "kernels/shape_ops.h"

using namespace dfx;
namespace k = dfx::kernels;
namespace kc = dfx::kernels::cuda;

int fails = 0, checks = 0;

void check(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  ++checks;
  if (got.shape() != want.shape() || got.dtype() != want.dtype()) {
    ++fails;
    std::cout << "FAIL shape/dtype " << what << ": " << got.describe() << " vs " << want.describe() << "\n";
    return;
  }
  auto g = got.to_vector(), w = want.to_vector();
  double scale = 0;
  for (double v : w) if (std::isfinite(v)) scale = std::max(scale, std::fabs(v));
  int bad = 0; size_t first = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    bool ok = (std::isnan(g[i]) && std::isnan(w[i])) || g[i] == w[i] ||
              std::fabs(g[i] - w[i]) <= tol * (std::fabs(w[i]) + scale);
    if (!ok && bad++ == 0) first = i;
  }
  if (bad) {
    ++fails;
    std::cout << "FAIL " << what << ": " << bad << "/" << g.size() << " first " << first << " got "
              << g[first] << " want " << w[first] << "\n";
  }
}

// bn_backward_apply's count operand: one float64 on the (emulated) device.
Tensor count_operand(int64_t count) { return full({1}, double(count), DType::Float64); }

Tensor rnd(const Shape& s, uint64_t seed, DType dt, double shift = 0.1) {
  auto v = randn(s, seed, 0, 0, DType::Float64).to_vector();
  for (double& x : v) x += shift;
  return from_vector<double>(v, s).to(dt);
}
Tensor pos(const Shape& s, uint64_t seed, DType dt) { return uniform(s, 0.5, 2.0, seed, 0, 0, dt); }
double tol(DType t) { return t == DType::Float32 ? 1e-5 : 1e-12; }
std::string nm(const std::string& op, const Shape& s, DType dt) {
  return op + " " + dtype_name(dt) + " " + ::dfx::detail::cat(s);
}

// ---- copies of kernels/pool.cpp's map builders (anonymous there) ----
k::AxisMap window_map(int64_t in, int64_t out, int64_t kk, int64_t s, int64_t p) {
  k::AxisMap m; m.rows = out; m.cols = in; m.ptr = {0}; m.col.clear(); m.w.clear();
  for (int64_t o = 0; o < out; ++o) {
    const int64_t lo = std::max<int64_t>(o * s - p, 0), hi = std::min(o * s - p + kk, in);
    for (int64_t c = lo; c < hi; ++c) { m.col.push_back(c); m.w.push_back(1.0); }
    m.ptr.push_back(static_cast<int64_t>(m.col.size()));
  }
  return m;
}
k::AxisMap upsample_map(int64_t in, int64_t s, k::UpsampleMode mode) {
  k::AxisMap m; m.rows = in * s; m.cols = in; m.ptr = {0}; m.col.clear(); m.w.clear();
  const double inv = 1.0 / static_cast<double>(s);
  for (int64_t o = 0; o < m.rows; ++o) {
    if (mode == k::UpsampleMode::Nearest) { m.col.push_back(o / s); m.w.push_back(1.0); }
    else {
      const double src = std::max(inv * (static_cast<double>(o) + 0.5) - 0.5, 0.0);
      const int64_t i0 = static_cast<int64_t>(src), i1 = i0 + (i0 < in - 1 ? 1 : 0);
      const double l1 = src - static_cast<double>(i0), l0 = 1.0 - l1;
      if (i1 == i0 || l1 == 0.0) { m.col.push_back(i0); m.w.push_back(1.0); }
      else { m.col.insert(m.col.end(), {i0, i1}); m.w.insert(m.w.end(), {l0, l1}); }
    }
    m.ptr.push_back(static_cast<int64_t>(m.col.size()));
  }
  return m;
}

void test_reduce() {
  struct C { Shape s; std::vector<std::vector<int>> dims; };
  std::vector<C> cases = {{{7}, {{0}}}, {{3, 5}, {{0}, {1}, {0, 1}}},
                          {{4, 6, 5}, {{0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1}, {0, 1, 2}}},
                          {{3, 5001}, {{1}, {0, 1}}}, {{3001, 3}, {{0}}}, {{2, 900, 7}, {{0, 1}, {1}}}};
  uint64_t seed = 1;
  for (DType dt : {DType::Float64, DType::Float32}) {
    for (auto& c : cases) {
      Tensor x = rnd(c.s, seed++, dt);
      for (auto& d : c.dims) {
        std::vector<int64_t> d64(d.begin(), d.end());
        for (k::ReduceOp op : {k::ReduceOp::Sum, k::ReduceOp::Mean, k::ReduceOp::Max, k::ReduceOp::Min}) {
          Tensor want = k::reduce(op, x, d64);
          Tensor out = Tensor::empty(want.shape(), dt);
          kc::reduce(op, x, d, out);
          check(out, want, op == k::ReduceOp::Max || op == k::ReduceOp::Min ? 0 : tol(dt),
                nm("reduce" + std::to_string(int(op)) + " dims " + ::dfx::detail::cat(Shape(d64)), c.s, dt));
        }
        Tensor want = k::var(x, d64, 1);
        Tensor out = Tensor::empty(want.shape(), dt);
        kc::var(x, d, 1, out);
        check(out, want, tol(dt), nm("var", c.s, dt));
      }
      for (int a = 0; a < x.dim(); ++a) {
        Tensor want = k::argmax(x, a);
        Tensor out = Tensor::empty(want.shape(), DType::Int64);
        kc::argmax(x, a, out);
        check(out, want, 0, nm("argmax " + std::to_string(a), c.s, dt));
      }
    }
  }
  Tensor t = from_vector<double>({1, 3, 3, 2, NAN, 5, 0, 1, NAN, 2, 2, 1, -INFINITY, -INFINITY, -5, -INFINITY}, {4, 4});
  Tensor out = Tensor::empty({4}, DType::Int64);
  kc::argmax(t, 1, out);
  check(out, k::argmax(t, 1), 0, "argmax NaN ties");
  Tensor mx = Tensor::empty({4}, DType::Float64);
  kc::reduce(k::ReduceOp::Max, t, {1}, mx);
  check(mx, k::amax(t, {1}), 0, "max NaN");
  // determinism: twice the same bits
  Tensor x = rnd({2, 70000}, 9, DType::Float32);
  Tensor a1 = Tensor::empty({2}, DType::Float32), a2 = Tensor::empty({2}, DType::Float32);
  kc::reduce(k::ReduceOp::Sum, x, {1}, a1);
  kc::reduce(k::ReduceOp::Sum, x, {1}, a2);
  check(a1, a2, 0, "reduce determinism");
  check(a1, k::sum(x, {1}), 1e-6, "sum long rows f32");
}

void test_norm() {
  uint64_t seed = 100;
  for (DType dt : {DType::Float64, DType::Float32})
    for (Shape s : {Shape{4, 3}, Shape{2, 5, 7}, Shape{3, 4, 6, 5}, Shape{2, 3, 9001}}) {
      int64_t n = s[0], c = s[1], sp = 1;
      for (size_t i = 2; i < s.size(); ++i) sp *= s[i];
      Tensor x = rnd(s, seed++, dt, 0.7), g = rnd(s, seed++, dt);
      Tensor mean = rnd({c}, seed++, DType::Float64), inv = pos({c}, seed++, DType::Float64);
      Tensor gamma = rnd({c}, seed++, DType::Float64, 1.0), beta = rnd({c}, seed++, DType::Float64);
      Tensor out = Tensor::empty({2, c}, DType::Float64);
      kc::channel_sums(x, n, c, sp, out);
      check(out, k::channel_sums(x), 1e-12, nm("channel_sums", s, dt));
      // The batch moments and the running statistics' blend, to the bit.
      {
        const Tensor packed = k::concat({full({1, c}, double(n * sp), DType::Float64), out}, 0);
        const Tensor rm0 = rnd({c}, seed++, DType::Float64), rv0 = pos({c}, seed++, DType::Float64);
        Tensor rm = rm0.clone(), rv = rv0.clone(), mom = Tensor::empty({2, c}, DType::Float64);
        kc::bn_moments(packed, c, rm, rv, 0.1, 1e-5, mom);
        Tensor rm_cpu = rm0.clone(), rv_cpu = rv0.clone();
        check(mom, k::bn_moments(packed, rm_cpu, rv_cpu, 0.1, 1e-5), 0.0, nm("bn_moments", s, dt));
        check(rm, rm_cpu, 0.0, nm("bn_moments running_mean", s, dt));
        check(rv, rv_cpu, 0.0, nm("bn_moments running_var", s, dt));
      }
      Tensor y = Tensor::empty(s, dt);
      kc::bn_apply(x, n, c, sp, mean, inv, gamma, beta, y, {});
      check(y, k::bn_apply(x, mean, inv, gamma, beta), tol(dt), nm("bn_apply", s, dt));
      const k::FusedLeakyRelu act{true, 0.2};
      kc::bn_apply(x, n, c, sp, mean, inv, gamma, beta, y, act);
      check(y, k::bn_apply(x, mean, inv, gamma, beta, act), tol(dt),
            nm("bn_apply + leaky_relu", s, dt));
      Tensor sums = Tensor::empty({2, c}, DType::Float64);
      kc::bn_backward_reduce(g, x, n, c, sp, mean, inv, sums, {});
      Tensor ws = k::bn_backward_reduce(g, x, mean, inv);
      check(sums, ws, 1e-12, nm("bn_backward_reduce", s, dt));
      Tensor gx = Tensor::empty(s, dt);
      kc::bn_backward_apply(g, x, n, c, sp, mean, inv, gamma, ws, count_operand(n * sp), gx, {});
      check(gx, k::bn_backward_apply(g, x, mean, inv, gamma, ws, double(n * sp)), tol(dt),
            nm("bn_backward_apply", s, dt));
      // The fused leaky ReLU's backward (g: the gradient of z), reading x or rebuilding it from z,
      // against the CPU's unfused pair.
      const Tensor z = k::bn_apply(x, mean, inv, gamma, beta, act);
      const Tensor gy = k::leaky_relu_backward(g, z, 0.2);
      const Tensor wsy = k::bn_backward_reduce(gy, x, mean, inv);
      const Tensor gxy = k::bn_backward_apply(gy, x, mean, inv, gamma, wsy, double(n * sp));
      for (bool rebuild : {false, true}) {
        k::BnActGrad a;
        a.on = true;
        a.z = z;
        a.slope = 0.2;
        a.rebuild_x = rebuild;
        if (rebuild) {
          a.beta = beta;
          a.inv_scale = k::div(ones({c}, DType::Float64), k::mul(gamma, inv));
        }
        const Tensor xa = rebuild ? Tensor() : x;
        const std::string what = rebuild ? " (x rebuilt)" : " (fused leaky ReLU)";
        kc::bn_backward_reduce(g, xa, n, c, sp, mean, inv, sums, a);
        // Rebuilt x carries z's rounding: float32 sums agree to about 1e-6 of their scale.
        const double rt = !rebuild ? 1e-12 : dt == DType::Float32 ? 2e-5 : 1e-9;
        check(sums, wsy, rt, nm("bn_backward_reduce" + what, s, dt));
        kc::bn_backward_apply(g, xa, n, c, sp, mean, inv, gamma, wsy, count_operand(n * sp), gx, a);
        check(gx, gxy, rebuild ? 1e-4 : tol(dt), nm("bn_backward_apply" + what, s, dt));
      }
    }
}

// Channels-last x: the kernels see [N*S, C, 1] (the rows path); the reference is the CPU's
// plane path on the NCHW tensor.
void test_norm_rows() {
  uint64_t seed = 150;
  for (DType dt : {DType::Float64, DType::Float32})
    for (Shape s : {Shape{2, 300, 30, 20}, Shape{3, 16, 40, 40}, Shape{1, 7, 5, 3}, Shape{2, 256, 3, 2, 2}}) {
      int64_t c = s[1], rows = s[0];
      for (size_t i = 2; i < s.size(); ++i) rows *= s[i];
      Tensor x = rnd(s, seed++, dt, 0.7), g = rnd(s, seed++, dt);
      Tensor xc = x.contiguous(MemoryFormat::ChannelsLast), gc = g.contiguous(MemoryFormat::ChannelsLast);
      Tensor mean = rnd({c}, seed++, DType::Float64), inv = pos({c}, seed++, DType::Float64);
      Tensor gamma = rnd({c}, seed++, DType::Float64, 1.0), beta = rnd({c}, seed++, DType::Float64);
      Tensor out = Tensor::empty({2, c}, DType::Float64);
      kc::channel_sums(xc, rows, c, 1, out);
      check(out, k::channel_sums(x), 1e-12, nm("rows channel_sums", s, dt));
      Tensor y = Tensor::empty(s, dt, Device::cpu(), MemoryFormat::ChannelsLast);
      kc::bn_apply(xc, rows, c, 1, mean, inv, gamma, beta, y, {});
      check(y, k::bn_apply(x, mean, inv, gamma, beta), tol(dt), nm("rows bn_apply", s, dt));
      kc::bn_apply(xc, rows, c, 1, mean, inv, gamma, beta, y, {true, 0.0});
      check(y, k::bn_apply(x, mean, inv, gamma, beta, {true, 0.0}), tol(dt),
            nm("rows bn_apply + relu", s, dt));
      Tensor sums = Tensor::empty({2, c}, DType::Float64);
      kc::bn_backward_reduce(gc, xc, rows, c, 1, mean, inv, sums, {});
      Tensor ws = k::bn_backward_reduce(g, x, mean, inv);
      check(sums, ws, 1e-12, nm("rows bn_backward_reduce", s, dt));
      Tensor gx = Tensor::empty(s, dt, Device::cpu(), MemoryFormat::ChannelsLast);
      kc::bn_backward_apply(gc, xc, rows, c, 1, mean, inv, gamma, ws, count_operand(rows), gx, {});
      check(gx, k::bn_backward_apply(g, x, mean, inv, gamma, ws, double(rows)), tol(dt),
            nm("rows bn_backward_apply", s, dt));
      // The fused leaky ReLU's backward with x rebuilt, channels-last, against the unfused pair.
      const k::FusedLeakyRelu act{true, 0.2};
      const Tensor z = k::bn_apply(x, mean, inv, gamma, beta, act);
      const Tensor gy = k::leaky_relu_backward(g, z, 0.2);
      const Tensor wsy = k::bn_backward_reduce(gy, x, mean, inv);
      k::BnActGrad a;
      a.on = true;
      a.z = z.contiguous(MemoryFormat::ChannelsLast);
      a.slope = 0.2;
      a.rebuild_x = true;
      a.beta = beta;
      a.inv_scale = k::div(ones({c}, DType::Float64), k::mul(gamma, inv));
      kc::bn_backward_reduce(gc, Tensor(), rows, c, 1, mean, inv, sums, a);
      check(sums, wsy, dt == DType::Float32 ? 2e-5 : 1e-9,
            nm("rows bn_backward_reduce (x rebuilt)", s, dt));
      kc::bn_backward_apply(gc, Tensor(), rows, c, 1, mean, inv, gamma, wsy, count_operand(rows), gx,
                            a);
      check(gx, k::bn_backward_apply(gy, x, mean, inv, gamma, wsy, double(rows)), 1e-4,
            nm("rows bn_backward_apply (x rebuilt)", s, dt));
    }
}

void test_fem() {
  uint64_t seed = 200;
  for (DType dt : {DType::Float64, DType::Float32})
    for (Shape s : {Shape{2, 5, 7}, Shape{1, 33, 17}, Shape{2, 5, 5, 5}, Shape{1, 70, 90}}) {
      const int d = int(s.size()) - 1;
      Tensor K = k::q1_stiffness(d, 1.0 / double(s.back() - 1));
      Tensor u = rnd(s, seed++, dt), nu = pos(s, seed++, dt), h = rnd(s, seed++, dt);
      Tensor e = Tensor::empty({s[0]}, dt);
      kc::fem_energy(u, nu, K, e);
      check(e, k::fem_energy(u, nu), tol(dt), nm("fem_energy", s, dt));
      Tensor a = Tensor::empty(s, dt);
      kc::fem_apply(nu, u, K, a);
      check(a, k::fem_apply(nu, u), tol(dt), nm("fem_apply", s, dt));
      Tensor b = Tensor::empty(s, dt);
      kc::fem_bilinear(h, u, K, b);
      check(b, k::fem_bilinear(h, u), tol(dt), nm("fem_bilinear", s, dt));
    }
}

void test_pool() {
  struct C { Shape s; int64_t kk, st, p; };
  std::vector<C> cases = {{{2, 3, 11}, 3, 2, 1}, {{2, 3, 8, 8}, 2, 2, 0}, {{1, 2, 9, 7}, 3, 2, 1},
                          {{1, 2, 5, 6, 7}, 2, 2, 0}, {{1, 1, 7, 5, 6}, 3, 2, 1}, {{1, 2, 6, 6}, 3, 1, 1}};
  uint64_t seed = 300;
  for (DType dt : {DType::Float64, DType::Float32})
    for (auto& c : cases) {
      Tensor x = rnd(c.s, seed++, dt);
      k::PoolWindow w{{c.kk}, {c.st}, {c.p}};
      auto want = k::max_pool(x, w);
      const int nsp = int(c.s.size()) - 2;
      k::PoolGeometry g;
      g.planes = {c.s[0], c.s[1], MemoryFormat::Contiguous};
      for (int d = 0; d < 3; ++d) { g.in[d] = g.out[d] = g.k[d] = g.s[d] = 1; g.p[d] = 0; }
      for (int i = 0; i < nsp; ++i) {
        int d = 3 - nsp + i;
        g.in[d] = c.s[2 + i]; g.k[d] = c.kk; g.s[d] = c.st; g.p[d] = c.p;
        g.out[d] = (g.in[d] + 2 * c.p - c.kk) / c.st + 1;
      }
      Tensor v = Tensor::empty(want.values.shape(), dt), idx = Tensor::empty(want.values.shape(), DType::Int64);
      kc::max_pool(x, g, v, idx);
      check(v, want.values, 0, nm("max_pool values", c.s, dt));
      check(idx, want.indices, 0, nm("max_pool indices", c.s, dt));
      const int64_t in_n = x.numel() / g.planes.count();
      Tensor gv = Tensor::empty(want.values.shape(), dt);
      if (!kc::pool_gather(x, want.indices, g.planes, in_n, gv)) { ++fails; std::cout << "gather bad\n"; }
      check(gv, k::pool_gather(x, want.indices), 0, nm("pool_gather", c.s, dt));
      Tensor gr = rnd(want.values.shape(), seed++, dt);
      Tensor sc = Tensor::empty(c.s, dt);
      if (!kc::pool_scatter(gr, want.indices, g.planes, in_n, false, sc)) { ++fails; std::cout << "scatter bad\n"; }
      check(sc, k::pool_scatter(gr, want.indices, c.s), tol(dt), nm("pool_scatter", c.s, dt));
      ++checks;
      if (want.disjoint != (c.st >= c.kk)) { ++fails; std::cout << "FAIL " << nm("max_pool disjoint", c.s, dt) << "\n"; }
      if (want.disjoint) {  // the direct (unsorted) scatter: bit for bit the sorted one
        Tensor sd = Tensor::empty(c.s, dt);
        if (!kc::pool_scatter(gr, want.indices, g.planes, in_n, true, sd)) { ++fails; std::cout << "direct scatter bad\n"; }
        check(sd, sc, 0, nm("pool_scatter direct vs sorted", c.s, dt));
      }
      // separable: avg pool and its adjoint
      k::AxisMap maps[3], tmaps[3];
      for (int d = 0; d < 3; ++d) maps[d] = window_map(g.in[d], g.out[d], g.k[d], g.s[d], g.p[d]);
      for (int d = 0; d < 3; ++d) tmaps[d] = maps[d].transposed();
      const double scale = 1.0 / double(g.k[0] * g.k[1] * g.k[2]);
      Tensor av = Tensor::empty(want.values.shape(), dt);
      kc::separable(x, maps, scale, g.planes, av);
      check(av, k::avg_pool(x, w), tol(dt), nm("avg_pool", c.s, dt));
      Tensor aa = Tensor::empty(c.s, dt);
      kc::separable(gr, tmaps, scale, g.planes, aa);
      check(aa, k::avg_pool_adjoint(gr, c.s, w), tol(dt), nm("avg_pool_adjoint", c.s, dt));
      // Channels-last operands (the NHWC kernels): the CPU's NCHW results, and bit for bit those
      // of the emulated NCHW kernels above.
      const MemoryFormat CL = MemoryFormat::ChannelsLast;
      k::PoolGeometry gc = g;
      gc.planes.format = CL;
      const Shape& os = want.values.shape();
      Tensor xc = x.contiguous(CL), grc = gr.contiguous(CL);
      Tensor vc = Tensor::empty(os, dt, Device::cpu(), CL);
      Tensor ic = Tensor::empty(os, DType::Int64, Device::cpu(), CL);
      kc::max_pool(xc, gc, vc, ic);
      check(vc, want.values, 0, nm("cl max_pool values", c.s, dt));
      check(ic, want.indices, 0, nm("cl max_pool indices", c.s, dt));
      Tensor gvc = Tensor::empty(os, dt, Device::cpu(), CL);
      if (!kc::pool_gather(xc, ic, gc.planes, in_n, gvc)) { ++fails; std::cout << "cl gather bad\n"; }
      check(gvc, k::pool_gather(x, want.indices), 0, nm("cl pool_gather", c.s, dt));
      Tensor scc = Tensor::empty(c.s, dt, Device::cpu(), CL);
      if (!kc::pool_scatter(grc, ic, gc.planes, in_n, false, scc)) { ++fails; std::cout << "cl scatter bad\n"; }
      check(scc, k::pool_scatter(gr, want.indices, c.s), tol(dt), nm("cl pool_scatter", c.s, dt));
      check(scc, sc, 0, nm("cl pool_scatter vs nchw", c.s, dt));
      if (want.disjoint) {
        Tensor sdc = Tensor::empty(c.s, dt, Device::cpu(), CL);
        if (!kc::pool_scatter(grc, ic, gc.planes, in_n, true, sdc)) { ++fails; std::cout << "cl direct scatter bad\n"; }
        check(sdc, sc, 0, nm("cl pool_scatter direct vs sorted", c.s, dt));
      }
      Tensor avc = Tensor::empty(os, dt, Device::cpu(), CL);
      kc::separable(xc, maps, scale, gc.planes, avc);
      check(avc, k::avg_pool(x, w), tol(dt), nm("cl avg_pool", c.s, dt));
      check(avc, av, 0, nm("cl avg_pool vs nchw", c.s, dt));
      Tensor aac = Tensor::empty(c.s, dt, Device::cpu(), CL);
      kc::separable(grc, tmaps, scale, gc.planes, aac);
      check(aac, k::avg_pool_adjoint(gr, c.s, w), tol(dt), nm("cl avg_pool_adjoint", c.s, dt));
      check(aac, aa, 0, nm("cl avg_pool_adjoint vs nchw", c.s, dt));
    }
  // Upsampling and its adjoint through the separable kernel, both layouts, against the CPU.
  for (DType dt : {DType::Float64, DType::Float32})
    for (Shape s : {Shape{2, 3, 7}, Shape{1, 2, 5, 6}, Shape{2, 5, 4, 3}, Shape{1, 2, 3, 4, 5}})
      for (k::UpsampleMode mode : {k::UpsampleMode::Nearest, k::UpsampleMode::Linear})
        for (int64_t f : {2, 3}) {
          const int nsp = int(s.size()) - 2;
          k::AxisMap maps[3], tmaps[3];
          Shape us{s[0], s[1]};
          for (int i = 0; i < nsp; ++i) {
            maps[3 - nsp + i] = upsample_map(s[2 + i], f, mode);
            us.push_back(s[2 + i] * f);
          }
          for (int d = 0; d < 3; ++d) tmaps[d] = maps[d].transposed();
          const std::string name = std::string(mode == k::UpsampleMode::Linear ? "linear" : "nearest") +
                                   " x" + std::to_string(f);
          Tensor x = rnd(s, seed++, dt), gr = rnd(us, seed++, dt);
          Tensor want = k::upsample(x, {f}, mode), wadj = k::upsample_adjoint(gr, {f}, mode);
          for (MemoryFormat fmt : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
            const k::PoolPlanes pl{s[0], s[1], fmt};
            const std::string tag = fmt == MemoryFormat::ChannelsLast ? "cl " : "";
            Tensor up = Tensor::empty(us, dt, Device::cpu(), fmt);
            kc::separable(x.contiguous(fmt), maps, 1.0, pl, up);
            check(up, want, tol(dt), nm(tag + "upsample " + name, s, dt));
            Tensor ad = Tensor::empty(s, dt, Device::cpu(), fmt);
            kc::separable(gr.contiguous(fmt), tmaps, 1.0, pl, ad);
            check(ad, wadj, tol(dt), nm(tag + "upsample_adjoint " + name, s, dt));
          }
        }
  Tensor bad = from_vector<int64_t>({0, 99}, {1, 1, 2});
  Tensor o = Tensor::empty({1, 1, 4}, DType::Float32);
  ++checks;
  if (kc::pool_scatter(ones({1, 1, 2}), bad, k::PoolPlanes{1, 1}, 4, false, o)) { ++fails; std::cout << "FAIL scatter bad index accepted\n"; }
  if (kc::pool_scatter(ones({1, 1, 2}), bad, k::PoolPlanes{1, 1}, 4, true, o)) { ++fails; std::cout << "FAIL direct scatter bad index accepted\n"; }
  ++checks;
  Tensor o2 = Tensor::empty({1, 1, 2}, DType::Float32);
  if (kc::pool_gather(ones({1, 1, 4}), bad, k::PoolPlanes{1, 1}, 4, o2)) { ++fails; std::cout << "FAIL gather bad index accepted\n"; }
  // The same in channels-last: 2 channels, one bad index in the second.
  const k::PoolPlanes cl2{1, 2, MemoryFormat::ChannelsLast};
  Tensor bad2 = from_vector<int64_t>({0, 1, 3, 99}, {1, 2, 2}).contiguous(MemoryFormat::ChannelsLast);
  Tensor o3 = Tensor::empty({1, 2, 4}, DType::Float32, Device::cpu(), MemoryFormat::ChannelsLast);
  ++checks;
  if (kc::pool_scatter(ones({1, 2, 2}).contiguous(MemoryFormat::ChannelsLast), bad2, cl2, 4, false, o3)) { ++fails; std::cout << "FAIL cl scatter bad index accepted\n"; }
  Tensor o4 = Tensor::empty({1, 2, 2}, DType::Float32, Device::cpu(), MemoryFormat::ChannelsLast);
  ++checks;
  if (kc::pool_gather(ones({1, 2, 4}).contiguous(MemoryFormat::ChannelsLast), bad2, cl2, 4, o4)) { ++fails; std::cout << "FAIL cl gather bad index accepted\n"; }
}

void test_conv() {
  struct C { Shape x, w; std::vector<int64_t> st, pd, dl; bool bias; };
  std::vector<C> cases = {
      {{2, 3, 17}, {4, 3, 3}, {1}, {1}, {1}, true},
      {{2, 3, 18}, {5, 3, 4}, {2}, {2}, {2}, false},
      {{2, 3, 9, 11}, {5, 3, 3, 3}, {1}, {1}, {1}, true},
      {{1, 4, 16, 15}, {6, 4, 3, 3}, {2}, {1}, {1}, true},
      {{2, 2, 13, 12}, {3, 2, 3, 2}, {2, 1}, {2, 0}, {2, 3}, false},
      {{3, 5, 8, 8}, {7, 5, 1, 1}, {1}, {0}, {1}, true},
      {{1, 3, 7, 8, 9}, {4, 3, 3, 3, 3}, {1}, {1}, {1}, true},
      {{2, 2, 9, 8, 7}, {3, 2, 2, 3, 2}, {2}, {1}, {1, 2, 1}, false},
      {{2, 4, 48, 48}, {3, 4, 3, 3}, {1}, {1}, {1}, true},  // split-K
      // Channel counts divisible by 4: the 16-byte gathers of float32 channels-last.
      {{2, 8, 11, 9}, {12, 8, 3, 3}, {1}, {1}, {1}, true},
      {{2, 4, 13, 12}, {8, 4, 3, 2}, {2, 1}, {2, 0}, {2, 3}, false},
      {{1, 4, 5, 6, 7}, {8, 4, 3, 3, 3}, {1}, {1}, {1}, true},
      {{2, 8, 40, 40}, {4, 8, 3, 3}, {1}, {1}, {1}, false},  // split-K
  };
  uint64_t seed = 400;
  for (DType dt : {DType::Float64, DType::Float32})
    for (auto& c : cases) {
      int nd = int(c.x.size()) - 2;
      auto g = k::ConvGeometry::make(nd, c.st, c.pd, c.dl);
      Tensor x = rnd(c.x, seed++, dt), w = rnd(c.w, seed++, dt);
      Tensor b = c.bias ? rnd({c.w[0]}, seed++, dt) : Tensor();
      Tensor y = k::conv(x, w, b, g);
      Tensor gy = rnd(y.shape(), seed++, dt);
      Tensor bt = c.bias ? rnd({c.x[1]}, seed++, dt) : Tensor();
      const Tensor dx = k::conv_transpose(gy, w, bt, c.x, g);
      const Tensor dw = k::conv_weight_grad(gy, x, c.w, g);
      // Both memory formats, each read and written in place, against the CPU in NCHW.
      for (MemoryFormat f : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
        const std::string fs = f == MemoryFormat::ChannelsLast ? " channels-last" : "";
        const Tensor xf = x.contiguous(f), wf = w.contiguous(f), gyf = gy.contiguous(f);
        const Tensor yk = kc::conv(xf, wf, b, y.shape(), g, f);
        const Tensor dxk = kc::conv_transpose(gyf, wf, bt, c.x, g, f);
        const Tensor dwk = kc::conv_weight_grad(gyf, xf, c.w, g, f);
        check(yk, y, tol(dt), nm("conv " + g.str() + fs, c.x, dt));
        check(dxk, dx, tol(dt), nm("conv_transpose " + g.str() + fs, c.x, dt));
        check(dwk, dw, tol(dt), nm("conv_weight_grad " + g.str() + fs, c.x, dt));
        for (const Tensor* t : {&yk, &dxk, &dwk}) {
          ++checks;
          if (!t->is_contiguous(f)) { ++fails; std::cout << "FAIL layout" << fs << "\n"; }
        }
      }
      check(kc::conv_bias_grad(gy), k::conv_bias_grad(gy), tol(dt), nm("conv_bias_grad", c.x, dt));
    }
  auto g2 = k::ConvGeometry::make(2, {2}, {1}, {1});
  Tensor w = rnd({4, 3, 3, 3}, 1, DType::Float64), y = rnd({2, 4, 5, 6}, 2, DType::Float64);
  Shape xs{2, 3, 10, 12};
  check(kc::conv_transpose(y, w, Tensor(), xs, g2, MemoryFormat::Contiguous),
        k::conv_transpose(y, w, Tensor(), xs, g2), 1e-12, "output padding");
  check(kc::conv_transpose(y.contiguous(MemoryFormat::ChannelsLast),
                           w.contiguous(MemoryFormat::ChannelsLast), Tensor(), xs, g2,
                           MemoryFormat::ChannelsLast),
        k::conv_transpose(y, w, Tensor(), xs, g2), 1e-12, "output padding, channels-last");
}

// The TF32 WMMA path of kernels/cuda/conv.cu (kernels::allow_tf32) against float64 on the CPU.
void test_conv_tf32() {
  struct C { Shape x, w; std::vector<int64_t> st, pd; };
  std::vector<C> cases = {
      {{2, 16, 33, 31}, {24, 16, 3, 3}, {1}, {1}},
      {{1, 8, 20, 20}, {4, 8, 3, 3}, {2}, {1}},
      {{1, 3, 6, 7, 8}, {5, 3, 3, 3, 3}, {1}, {1}},
      {{2, 4, 48, 48}, {3, 4, 3, 3}, {1}, {1}},  // split-K
  };
  uint64_t seed = 900;
  for (auto& c : cases) {
    int nd = int(c.x.size()) - 2;
    auto g = k::ConvGeometry::make(nd, c.st, c.pd, {1});
    Tensor x = rnd(c.x, seed++, DType::Float32), w = rnd(c.w, seed++, DType::Float32);
    Tensor b = rnd({c.w[0]}, seed++, DType::Float32);
    Tensor x64 = x.to(DType::Float64), w64 = w.to(DType::Float64);
    Tensor y64 = k::conv(x64, w64, b.to(DType::Float64), g);
    Tensor gy = rnd(y64.shape(), seed++, DType::Float32);
    const Tensor dx64 = k::conv_transpose(gy.to(DType::Float64), w64, Tensor(), c.x, g);
    const Tensor dw64 = k::conv_weight_grad(gy.to(DType::Float64), x64, c.w, g);
    for (MemoryFormat f : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
      const std::string fs = f == MemoryFormat::ChannelsLast ? " channels-last" : "";
      const Tensor xf = x.contiguous(f), wf = w.contiguous(f), gyf = gy.contiguous(f);
      k::set_allow_tf32(false);
      Tensor y32 = kc::conv(xf, wf, b, y64.shape(), g, f);
      k::set_allow_tf32(true);
      Tensor yt = kc::conv(xf, wf, b, y64.shape(), g, f);
      check(yt.to(DType::Float64), y64, 5e-3, nm("tf32 conv " + g.str() + fs, c.x, DType::Float32));
      ++checks;
      if (yt.to_vector() == y32.to_vector()) { ++fails; std::cout << "FAIL tf32 equals fp32\n"; }
      check(kc::conv_transpose(gyf, wf, Tensor(), c.x, g, f).to(DType::Float64), dx64, 5e-3,
            nm("tf32 conv_transpose " + g.str() + fs, c.x, DType::Float32));
      check(kc::conv_weight_grad(gyf, xf, c.w, g, f).to(DType::Float64), dw64, 5e-3,
            nm("tf32 conv_weight_grad " + g.str() + fs, c.x, DType::Float32));
    }
    // TF32 rounding bound: |err| <= sum |a||b| * 2^-10 (two operands rounded to 10 bits).
    k::set_allow_tf32(false);
  }
}

void test_adam() {
  uint64_t seed = 960;
  for (DType dt : {DType::Float64, DType::Float32}) {
    Shape shape{3, 7, 5, 9};
    Tensor p = rnd(shape, seed++, dt), m = rnd(shape, seed++, dt), v = pos(shape, seed++, dt);
    Tensor g = rnd(shape, seed++, dt);
    k::AdamUpdate u;
    u.step = 0.02; u.inv_sqrt_bc2 = 3.0; u.weight_decay = 0.01;
    Tensor pc = p.clone(), mc = m.clone(), vc = v.clone();
    k::adam_update_(pc, g, mc, vc, u);
    kc::adam_update_(p, g, m, v, u);
    check(p, pc, dt == DType::Float32 ? 1e-6 : 1e-13, nm("adam p", shape, dt));
    check(m, mc, dt == DType::Float32 ? 1e-6 : 1e-13, nm("adam m", shape, dt));
    check(v, vc, dt == DType::Float32 ? 1e-6 : 1e-13, nm("adam v", shape, dt));
  }
}

void test_leaky_relu_backward() {
  uint64_t seed = 970;
  for (DType dt : {DType::Float64, DType::Float32}) {
    Shape shape{3, 6, 5, 7};
    Tensor y = rnd(shape, seed++, dt), g = rnd(shape, seed++, dt);
    Tensor out = Tensor::empty(shape, dt, y.device());
    kc::leaky_relu_backward(g, y, 0.2, out);
    check(out, k::leaky_relu_backward(g, y, 0.2), 0, nm("leaky_relu_backward", shape, dt));
  }
}

void test_elementwise() {
  uint64_t seed = 600;
  for (DType dt : {DType::Float64, DType::Float32, DType::Int64}) {
    Tensor a = rnd({4, 5, 3}, seed++, DType::Float64), b = rnd({5, 1}, seed++, DType::Float64);
    if (dt == DType::Int64) {
      std::vector<int64_t> av, bv;
      for (double v : a.to_vector()) av.push_back(std::lround(v * 2));
      for (double v : b.to_vector()) bv.push_back(std::lround(v * 2));
      a = from_vector<int64_t>(av, a.shape()); b = from_vector<int64_t>(bv, b.shape());
    } else { a = a.to(dt); b = b.to(dt); }
    Tensor at = a.transpose(0, 2);
    for (k::CompareOp op : {k::CompareOp::Eq, k::CompareOp::Ne, k::CompareOp::Lt, k::CompareOp::Le,
                            k::CompareOp::Gt, k::CompareOp::Ge}) {
      check(kc::compare(op, a, b), k::compare(op, a, b), 0, nm("compare", a.shape(), dt));
      check(kc::compare(op, at, b), k::compare(op, at, b), 0, nm("compare strided", at.shape(), dt));
    }
    Tensor cond = k::compare(k::CompareOp::Gt, a, b);
    check(kc::where(cond, a, b), k::where(cond, a, b), 0, nm("where", a.shape(), dt));
    check(kc::clamp(at, -0.5, 0.75, false), k::clamp(at, -0.5, 0.75), 0, nm("clamp", at.shape(), dt));
    check(kc::clamp(at, -0.5, 0.75, true), k::clamp_mask(at, -0.5, 0.75), 0, nm("clamp_mask", at.shape(), dt));
    if (dt == DType::Int64) {  // integer arithmetic (BatchNorm's counter): vector, scalar and strided paths
      Tensor a2 = k::binary(k::BinaryOp::Add, a, scalar_tensor(3.0, DType::Int64));
      for (k::BinaryOp op : {k::BinaryOp::Add, k::BinaryOp::Sub, k::BinaryOp::Mul,
                             k::BinaryOp::Maximum, k::BinaryOp::Minimum}) {
        check(kc::binary(op, a, a2), k::binary(op, a, a2), 0, nm("int64 binary", a.shape(), dt));
        check(kc::binary(op, a, b), k::binary(op, a, b), 0, nm("int64 binary broadcast", a.shape(), dt));
        Tensor one = scalar_tensor(1.0, DType::Int64);
        check(kc::binary(op, a, one), k::binary(op, a, one), 0, nm("int64 binary scalar", a.shape(), dt));
      }
    }
  }
}

int main(int argc, char** argv) {
  std::string only = argc > 1 ? argv[1] : "";
  auto run = [&](const char* n, void (*f)()) {
    if (!only.empty() && only != n) return;
    try { f(); } catch (const std::exception& e) { ++fails; std::cout << "EXCEPTION in " << n << ": " << e.what() << "\n"; }
    std::cout << n << " done: " << checks << " checks, " << fails << " failures, launches " << emu::launches << std::endl;
  };
  run("elementwise", test_elementwise);
  run("adam", test_adam);
  run("leaky_relu_backward", test_leaky_relu_backward);
  run("reduce", test_reduce);
  run("norm", test_norm);
  run("norm_rows", test_norm_rows);
  run("fem", test_fem);
  run("pool", test_pool);
  run("conv", test_conv);
  run("conv_tf32", test_conv_tf32);
  return fails ? 1 : 0;
}
