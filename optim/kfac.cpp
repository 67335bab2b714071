// optim/kfac.cpp — K-FAC: im2col rows, running Kronecker factors, damped inverses (LAPACK
// Cholesky from OpenBLAS), the clipped momentum step.
#include "optim/kfac.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <exception>
#include <set>

#include "core/copy.h"
#include "kernels/gemm.h"

extern "C" {
// LAPACK (OpenBLAS): Cholesky factorisation and the inverse from it.
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t);
}

namespace dfx::optim {

namespace {

Tensor host64(const Tensor& t) { return t.cpu().to(DType::Float64).contiguous(); }

// On the host in t's own floating precision (float32 rows make float32 factor products: half
// the bytes and twice the BLAS rate of float64; the running factors stay float64).
Tensor host_rows(const Tensor& t) {
  return t.dtype() == DType::Float32 ? t.cpu().contiguous() : host64(t);
}

int64_t per_dim(const std::vector<int64_t>& v, int d, const char* what) {
  DFX_CHECK(!v.empty(), "im2col: empty ", what, " list");
  return v.size() == 1 ? v[0] : v.at(static_cast<size_t>(d));
}

// [N, C, *S] -> [N * prod(S), C]: each position's channel vector as a row.
Tensor channel_rows(const Tensor& t) {
  std::vector<int> perm = {0};
  for (int d = 2; d < t.dim(); ++d) perm.push_back(d);
  perm.push_back(1);
  return host_rows(t.permute(perm)).reshape({-1, t.size(1)});
}

double trace(const Tensor& m) {
  const double* p = m.data<double>();
  double s = 0;
  for (int64_t i = 0; i < m.size(0); ++i) s += p[i * m.size(0) + i];
  return s;
}

// (m + gamma I)^-1 for symmetric positive semi-definite m; gamma grows tenfold until the
// Cholesky factorisation succeeds (rounding can leave m slightly indefinite).
Tensor damped_inverse(const Tensor& m, double gamma) {
  const int n = static_cast<int>(m.size(0));
  const std::vector<double> base = host64(m).to_vector();
  double scale = 0;
  for (int i = 0; i < n; ++i) scale = std::max(scale, std::abs(base[i * n + i]));
  gamma = std::max(gamma, 1e-12 * std::max(scale, 1e-300));
  for (int attempt = 0; attempt < 20; ++attempt, gamma *= 10) {
    std::vector<double> a = base;
    for (int i = 0; i < n; ++i) a[i * n + i] += gamma;
    int info = 0;
    dpotrf_("L", &n, a.data(), &n, &info, 1);
    if (info != 0) continue;
    dpotri_("L", &n, a.data(), &n, &info, 1);
    DFX_CHECK(info == 0, "kfac: inverting a damped factor failed (LAPACK dpotri info ", info, ")");
    // Column-major lower = row-major upper: mirror it.
    for (int j = 0; j < n; ++j)
      for (int i = j + 1; i < n; ++i) a[static_cast<size_t>(i) * n + j] = a[static_cast<size_t>(j) * n + i];
    return from_vector<double>(a, {n, n});
  }
  DFX_FAIL("kfac: a factor of size ", n, " stayed indefinite after damping up to ", gamma);
}

}  // namespace

Tensor im2col(const Tensor& x, const std::vector<int64_t>& out, const std::vector<int64_t>& kernel,
              const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
              const std::vector<int64_t>& dilation) {
  const int nd = x.dim() - 2;
  DFX_CHECK(nd >= 1 && nd <= 3 && static_cast<int>(out.size()) == nd, "im2col: x ", x.shape(),
            " with output grid of ", out.size(), " dims; expected [N, C, *S] with 1-3 spatial "
            "dims and a grid of as many");
  std::array<int64_t, 3> S{1, 1, 1}, O{1, 1, 1}, K{1, 1, 1}, st{1, 1, 1}, pd{0, 0, 0}, dl{1, 1, 1};
  for (int d = 0; d < nd; ++d) {
    const int e = 3 - nd + d;
    S[e] = x.size(2 + d), O[e] = out[d];
    K[e] = per_dim(kernel, d, "kernel"), st[e] = per_dim(stride, d, "stride");
    pd[e] = per_dim(padding, d, "padding"), dl[e] = per_dim(dilation, d, "dilation");
  }
  const int64_t N = x.size(0), C = x.size(1), Kn = K[0] * K[1] * K[2], On = O[0] * O[1] * O[2];
  const int64_t Sn = S[0] * S[1] * S[2], cols = C * Kn;
  const Tensor xc = host_rows(x);
  Tensor P = zeros({N * On, cols}, xc.dtype());
  auto fill = [&](auto zero) {
    using T = decltype(zero);
    const T* px = xc.data<T>();
    T* pp = P.data<T>();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < On; ++o) {
        const int64_t o0 = o / (O[1] * O[2]), o1 = (o / O[2]) % O[1], o2 = o % O[2];
        T* row = pp + (n * On + o) * cols;
        for (int64_t k = 0; k < Kn; ++k) {
          const int64_t k0 = k / (K[1] * K[2]), k1 = (k / K[2]) % K[1], k2 = k % K[2];
          const int64_t i0 = o0 * st[0] - pd[0] + k0 * dl[0],
                        i1 = o1 * st[1] - pd[1] + k1 * dl[1], i2 = o2 * st[2] - pd[2] + k2 * dl[2];
          if (i0 < 0 || i0 >= S[0] || i1 < 0 || i1 >= S[1] || i2 < 0 || i2 >= S[2]) continue;
          const T* src = px + n * C * Sn + (i0 * S[1] + i1) * S[2] + i2;
          for (int64_t c = 0; c < C; ++c) row[c * Kn + k] = src[c * Sn];
        }
      }
  };
  if (xc.dtype() == DType::Float32)
    fill(0.0f);
  else
    fill(0.0);
  return P;
}

ConvRows conv_rows(const Tensor& x, const Tensor& gy, bool transposed, bool fold_bias,
                   const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                   const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation) {
  DFX_CHECK(x.dim() == gy.dim() && x.size(0) == gy.size(0), "conv_rows: input ", x.shape(),
            " and output gradient ", gy.shape(), " do not belong to one convolution");
  std::vector<int64_t> grid;
  ConvRows r;
  if (!transposed) {
    for (int d = 2; d < gy.dim(); ++d) grid.push_back(gy.size(d));
    Tensor patches = im2col(x, grid, kernel, stride, padding, dilation);
    if (fold_bias) {
      const int64_t rows = patches.size(0), cols = patches.size(1);
      Tensor with = full({rows, cols + 1}, 1.0, patches.dtype());
      copy_(with.narrow(1, 0, cols), patches);
      patches = with;
    }
    r.left_rows = channel_rows(gy);
    r.right_rows = patches;
    r.activation_left = false;
  } else {
    DFX_CHECK(!fold_bias, "conv_rows: a transposed convolution's bias cannot be folded in");
    for (int d = 2; d < x.dim(); ++d) grid.push_back(x.size(d));
    r.left_rows = channel_rows(x);
    r.right_rows = im2col(gy, grid, kernel, stride, padding, dilation);
    r.activation_left = true;
  }
  return r;
}

KFAC::KFAC(std::vector<ad::Var> params, KFACOptions opt)
    : Optimizer(std::move(params), opt.lr), opt_(opt) {
  DFX_CHECK(opt.damping > 0, "kfac: --damping must be > 0, got ", opt.damping);
  DFX_CHECK(opt.ema >= 0 && opt.ema < 1, "kfac: the factors' running-average weight must be in "
            "[0, 1), got ", opt.ema);
  DFX_CHECK(opt.inverse_every >= 1, "kfac: --hessian-every (steps between inversions) must be "
            ">= 1, got ", opt.inverse_every);
  DFX_CHECK(opt.momentum >= 0 && opt.momentum < 1, "kfac: momentum must be in [0, 1), got ",
            opt.momentum);
  DFX_CHECK(opt.kl_clip >= 0, "kfac: the KL clip must be >= 0, got ", opt.kl_clip);
}

void KFAC::accumulate(const KroneckerStatistics& s) {
  DFX_CHECK(s.sampled_gradient.size() == params_.size(), "kfac: the objective's sampled gradient "
            "has ", s.sampled_gradient.size(), " tensors for ", params_.size(), " parameters");
  // Blocks in parameter order, the order load_state restores them in.
  std::vector<KroneckerBlock> now = s.blocks;
  std::sort(now.begin(), now.end(),
            [](const KroneckerBlock& x, const KroneckerBlock& y) { return x.weight < y.weight; });
  const bool first = blocks_.empty() && steps_ == 0;
  const double a = first ? 0.0 : opt_.ema, b = 1 - a;
  if (blocks_.empty()) {
    for (const KroneckerBlock& k : now)
      blocks_.push_back({k.weight, k.bias, zeros_like(host64(k.left)), zeros_like(host64(k.right))});
    diag_.assign(params_.size(), Tensor());
    std::set<size_t> covered;
    for (const KroneckerBlock& k : now) {
      covered.insert(k.weight);
      if (k.bias >= 0) covered.insert(static_cast<size_t>(k.bias));
    }
    for (size_t i = 0; i < params_.size(); ++i)
      if (!covered.count(i)) diag_[i] = zeros(params_[i].shape(), DType::Float64);
  }
  DFX_CHECK(now.size() == blocks_.size(), "kfac: ", now.size(), " Kronecker blocks this "
            "step, ", blocks_.size(), " before; the network changed (grow it before the optimiser)");
  auto blend = [a, b](Tensor& run, const Tensor& now) {
    const Tensor n = host64(now);
    DFX_CHECK(n.shape() == run.shape(), "kfac: a factor of shape ", n.shape(), " for a running "
              "factor of shape ", run.shape());
    double* pr = run.data<double>();
    const double* pn = n.data<double>();
    for (int64_t i = 0; i < run.numel(); ++i) pr[i] = a * pr[i] + b * pn[i];
  };
  for (size_t j = 0; j < blocks_.size(); ++j) {
    DFX_CHECK(now[j].weight == blocks_[j].weight, "kfac: block ", j, " is for parameter ",
              now[j].weight, " this step, ", blocks_[j].weight, " before");
    blend(blocks_[j].left, now[j].left);
    blend(blocks_[j].right, now[j].right);
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!diag_[i].defined()) continue;
    const Tensor g = host64(s.sampled_gradient[i]);
    Tensor sq = zeros_like(g);
    const double* pg = g.data<double>();
    double* ps = sq.data<double>();
    for (int64_t e = 0; e < g.numel(); ++e) ps[e] = pg[e] * pg[e];
    blend(diag_[i], sq);
  }
}

void KFAC::invert() {
  left_inv_.clear(), right_inv_.clear();
  const double root = std::sqrt(opt_.damping);
  for (const KroneckerBlock& k : blocks_) {
    const double tl = trace(k.left) / static_cast<double>(k.left.size(0));
    const double tr = trace(k.right) / static_cast<double>(k.right.size(0));
    // Factored Tikhonov damping: pi balances the two factors' average eigenvalues.
    const double pi = tl > 0 && tr > 0 ? std::sqrt(tl / tr) : 1.0;
    left_inv_.push_back(damped_inverse(k.left, pi * root));
    right_inv_.push_back(damped_inverse(k.right, root / pi));
  }
}

std::vector<Tensor> KFAC::precondition(const std::vector<Tensor>& g) const {
  DFX_CHECK(left_inv_.size() == blocks_.size(), "kfac: precondition before the first inversion");
  std::vector<Tensor> d(params_.size());
  // The blocks side by side, each solve's two GEMMs on its own thread: one small GEMM after
  // another on OpenBLAS's pool cost more in hand-offs than in products (BENCHMARKS.md).
  const kernels::SerialBlasScope serial;
  std::vector<std::exception_ptr> errors(blocks_.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t j = 0; j < blocks_.size(); ++j) try {
    const KroneckerBlock& k = blocks_[j];
    const Tensor gw = host64(g[k.weight]);
    const int64_t rows = gw.size(0), cols = gw.numel() / rows;
    const int64_t total = k.right.size(0);
    DFX_CHECK(total == cols + (k.bias >= 0 ? 1 : 0) && k.left.size(0) == rows, "kfac: block ", j,
              " has factors ", k.left.shape(), " and ", k.right.shape(), " for a weight ",
              gw.shape(), k.bias >= 0 ? " with a bias" : "");
    Tensor m = gw.reshape({rows, cols});
    if (k.bias >= 0) {
      Tensor with = zeros({rows, total}, DType::Float64);
      copy_(with.narrow(1, 0, cols), m);
      copy_(with.narrow(1, cols, 1), host64(g[static_cast<size_t>(k.bias)]).reshape({rows, 1}));
      m = with;
    }
    Tensor p = kernels::matmul(kernels::matmul(left_inv_[j], m), right_inv_[j]).contiguous();
    d[k.weight] = host64(p.narrow(1, 0, cols)).reshape(gw.shape());
    if (k.bias >= 0) d[static_cast<size_t>(k.bias)] = host64(p.narrow(1, cols, 1)).reshape({rows});
  } catch (...) {  // an exception may not leave an OpenMP region
    errors[j] = std::current_exception();
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!diag_[i].defined()) continue;
    const Tensor gi = host64(g[i]);
    Tensor di = zeros_like(gi);
    const double* pg = gi.data<double>();
    const double* pd = diag_[i].data<double>();
    double* po = di.data<double>();
    for (int64_t e = 0; e < gi.numel(); ++e) po[e] = pg[e] / (pd[e] + opt_.damping);
    d[i] = di;
  }
  return d;
}

double KFAC::step(Objective& objective) {
  const double loss = objective.evaluate(true);
  std::vector<Tensor> g(params_.size());
  for (size_t i = 0; i < params_.size(); ++i)
    g[i] = has_grad(i) ? host64(params_[i].grad().data()) : zeros(params_[i].shape(), DType::Float64);
  // The statistics cost a forward, a backward and the factors' products (several gradients'
  // worth at N = 64): refreshed with the inverses, every inverse_every steps.
  if (steps_ % opt_.inverse_every == 0 || left_inv_.size() != blocks_.size() || blocks_.empty()) {
    accumulate(objective.kronecker_factors(static_cast<uint64_t>(steps_)));
    invert();
  }
  std::vector<Tensor> d = precondition(g);
  // The quadratic model's predicted change of the step lr * d is lr^2 <d, g> / 2 in the
  // curvature's metric; capping it keeps early steps (small factors) from overshooting.
  double dg = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const double* pd = d[i].data<double>();
    const double* pg = g[i].data<double>();
    for (int64_t e = 0; e < d[i].numel(); ++e) dg += pd[e] * pg[e];
  }
  clip_ = 1;
  if (opt_.kl_clip > 0 && dg > 0 && lr_ > 0) clip_ = std::min(1.0, std::sqrt(opt_.kl_clip / (lr_ * lr_ * dg)));
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!has_grad(i)) continue;
    Tensor p = params_[i].mutable_data();
    const Tensor p64 = host64(p);
    Tensor& buf = slot("momentum", i);
    const Tensor b64 = host64(buf);
    Tensor nb = zeros_like(b64), np = zeros_like(p64);
    const double* pd = d[i].data<double>();
    const double* pb = b64.data<double>();
    const double* pp = p64.data<double>();
    double* pnb = nb.data<double>();
    double* pnp = np.data<double>();
    for (int64_t e = 0; e < p64.numel(); ++e) {
      const double step = clip_ * pd[e] + opt_.weight_decay * pp[e];
      pnb[e] = opt_.momentum * pb[e] + step;
      pnp[e] = pp[e] - lr_ * pnb[e];
    }
    copy_(buf, nb.to(buf.dtype()).to(buf.device()).reshape(buf.shape()));
    copy_(p, np.to(p.dtype()).to(p.device()).reshape(p.shape()));
  }
  ++steps_;
  return loss;
}

std::map<std::string, Tensor> KFAC::state() const {
  std::map<std::string, Tensor> s = Optimizer::state();
  for (size_t j = 0; j < blocks_.size(); ++j) {
    const std::string w = std::to_string(blocks_[j].weight);
    s["kfac_left." + w] = blocks_[j].left;
    s["kfac_right." + w] = blocks_[j].right;
    s["kfac_bias." + w] = from_vector<int64_t>({blocks_[j].bias}, {1});
    if (j < left_inv_.size()) {
      s["kfac_left_inv." + w] = left_inv_[j];
      s["kfac_right_inv." + w] = right_inv_[j];
    }
  }
  for (size_t i = 0; i < diag_.size(); ++i)
    if (diag_[i].defined()) s["kfac_diag." + std::to_string(i)] = diag_[i];
  return s;
}

void KFAC::load_state(const std::map<std::string, Tensor>& st) {
  std::map<std::string, Tensor> base;
  std::map<size_t, std::map<std::string, Tensor>> per_weight;
  std::map<size_t, Tensor> diag;
  for (const auto& [key, t] : st) {
    if (key.rfind("kfac_", 0) != 0) {
      base[key] = t;
      continue;
    }
    const auto dot = key.rfind('.');
    DFX_CHECK(dot != std::string::npos, "kfac load_state: unexpected entry '", key, "'");
    const std::string what = key.substr(5, dot - 5);
    const size_t i = std::stoul(key.substr(dot + 1));
    DFX_CHECK(i < params_.size(), "kfac load_state: '", key, "' names parameter ", i, " of ",
              params_.size());
    if (what == "diag") {
      DFX_CHECK(t.shape() == params_[i].shape(), "kfac load_state: '", key, "' has shape ",
                t.shape(), ", parameter ", i, " has ", params_[i].shape());
      diag[i] = host64(t).clone();
    } else {
      DFX_CHECK(what == "left" || what == "right" || what == "bias" || what == "left_inv" ||
                    what == "right_inv", "kfac load_state: unexpected entry '", key, "'");
      per_weight[i][what] = t;
    }
  }
  Optimizer::load_state(base);
  blocks_.clear(), left_inv_.clear(), right_inv_.clear();
  bool inverses = true;
  for (auto& [w, m] : per_weight) {
    DFX_CHECK(m.count("left") && m.count("right") && m.count("bias"), "kfac load_state: block of "
              "parameter ", w, " lacks its left, right or bias entry");
    blocks_.push_back({w, static_cast<int64_t>(m["bias"].get({0})), host64(m["left"]).clone(),
                       host64(m["right"]).clone()});
    inverses = inverses && m.count("left_inv") && m.count("right_inv");
  }
  if (inverses)
    for (auto& [w, m] : per_weight) {
      left_inv_.push_back(host64(m["left_inv"]).clone());
      right_inv_.push_back(host64(m["right_inv"]).clone());
    }
  diag_.assign(params_.size(), Tensor());
  for (auto& [i, t] : diag) diag_[i] = t;
}

}  // namespace dfx::optim
