// tests/kernels/test_conv.cpp — the convolution kernels against one naive definition (every
// (sample, out channel, in channel, output position, kernel offset) term visited directly), the
// adjoint identities that tie conv, conv_transpose and conv_weight_grad together, and thread-count
// independence. Inputs are random float64 in 1-3 spatial dims with stride, padding and dilation.
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/conv.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"

using namespace dfx;
namespace k = dfx::kernels;

namespace {

struct Config {
  std::string name;
  Shape x, w;  // x [N, Cin, *S], w [Cout, Cin, *K]
  std::vector<int64_t> stride{1}, padding{0}, dilation{1};
};

const std::vector<Config>& configs() {
  static const std::vector<Config> cs = {
      {"1d stride 2 pad 1 dilation 2", {3, 2, 11}, {4, 2, 3}, {2}, {1}, {2}},
      {"1d 1x1", {3, 3, 8}, {2, 3, 1}},
      {"2d 3x3 pad 1", {3, 2, 6, 5}, {3, 2, 3, 3}, {1}, {1}},
      {"2d non-square", {3, 3, 7, 9}, {4, 3, 3, 2}, {2, 1}, {1, 0}, {1, 2}},
      {"2d 1x1 fast path", {3, 5, 4, 6}, {2, 5, 1, 1}},
      {"2d 1x1 stride 2", {3, 2, 5, 5}, {3, 2, 1, 1}, {2}},
      {"2d 1x1 pad 1", {3, 2, 3, 4}, {2, 2, 1, 1}, {1}, {1}},
      {"2d 2x2 stride 2 (W1 up/down)", {3, 4, 6, 6}, {5, 4, 2, 2}, {2}},
      {"2d stride 3 pad 2", {3, 2, 5, 7}, {2, 2, 3, 3}, {3}, {2}},
      {"3d stride 2 pad 1 dilation", {3, 2, 5, 6, 4}, {3, 2, 3, 2, 3}, {2}, {1}, {1, 2, 1}},
      {"3d 1x1x1", {3, 4, 3, 4, 5}, {2, 4, 1, 1, 1}},
      {"3d 3x3x3 pad 1", {3, 2, 4, 3, 5}, {2, 2, 3, 3, 3}, {1}, {1}},
      // Enough channels that the kernels cut S' into several column blocks, some mid-row.
      {"2d column blocks", {3, 64, 20, 20}, {4, 64, 3, 3}, {1}, {1}},
      {"1d column blocks stride 2", {3, 40, 1400}, {2, 40, 5}, {2}, {2}},
      {"3d column blocks", {3, 32, 6, 7, 8}, {2, 32, 3, 3, 3}, {1}, {1}},
  };
  return cs;
}

k::ConvGeometry geometry(const Config& c) {
  return k::ConvGeometry::make(static_cast<int>(c.x.size()) - 2, c.stride, c.padding,
                               c.dilation, "test");
}

// Output shape from the formula, computed here so the kernel's shape rule is checked too.
Shape expected_output(const Shape& x, const Shape& w, const k::ConvGeometry& g) {
  Shape y{x[0], w[0]};
  for (int d = 0; d < g.nd; ++d)
    y.push_back((x[2 + d] + 2 * g.padding[d] - g.dilation[d] * (w[2 + d] - 1) - 1) / g.stride[d] +
                1);
  return y;
}

// Calls f(x index, w index, y index) for every product term of the convolution (row-major flat
// indices). conv, its transpose and its weight gradient are all sums over these same terms.
template <class F>
void visit_terms(const Shape& xs, const Shape& ws, const Shape& ys, const k::ConvGeometry& g,
                 F&& f) {
  int64_t in[3] = {1, 1, 1}, kk[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t s[3] = {1, 1, 1}, p[3] = {0, 0, 0}, dl[3] = {1, 1, 1};
  const int off = 3 - g.nd;
  for (int d = 0; d < g.nd; ++d) {
    in[off + d] = xs[2 + d];
    kk[off + d] = ws[2 + d];
    out[off + d] = ys[2 + d];
    s[off + d] = g.stride[d];
    p[off + d] = g.padding[d];
    dl[off + d] = g.dilation[d];
  }
  const int64_t N = xs[0], C = xs[1], O = ws[0];
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t a = 0; a < out[0]; ++a)
          for (int64_t b = 0; b < out[1]; ++b)
            for (int64_t e = 0; e < out[2]; ++e)
              for (int64_t i = 0; i < kk[0]; ++i)
                for (int64_t j = 0; j < kk[1]; ++j)
                  for (int64_t l = 0; l < kk[2]; ++l) {
                    const int64_t u = a * s[0] - p[0] + i * dl[0];
                    const int64_t v = b * s[1] - p[1] + j * dl[1];
                    const int64_t t = e * s[2] - p[2] + l * dl[2];
                    if (u < 0 || u >= in[0] || v < 0 || v >= in[1] || t < 0 || t >= in[2])
                      continue;
                    const int64_t xi = (((n * C + c) * in[0] + u) * in[1] + v) * in[2] + t;
                    const int64_t wi = (((o * C + c) * kk[0] + i) * kk[1] + j) * kk[2] + l;
                    const int64_t yi = (((n * O + o) * out[0] + a) * out[1] + b) * out[2] + e;
                    f(xi, wi, yi);
                  }
}

Tensor from(const std::vector<double>& v, const Shape& s) { return from_vector<double>(v, s); }

Tensor naive_conv(const Tensor& x, const Tensor& w, const k::ConvGeometry& g) {
  Shape ys = expected_output(x.shape(), w.shape(), g);
  std::vector<double> xv = x.to_vector(), wv = w.to_vector(), yv(shape_numel(ys), 0.0);
  visit_terms(x.shape(), w.shape(), ys, g,
              [&](int64_t xi, int64_t wi, int64_t yi) { yv[yi] += xv[xi] * wv[wi]; });
  return from(yv, ys);
}

Tensor naive_conv_transpose(const Tensor& y, const Tensor& w, const Shape& xs,
                            const k::ConvGeometry& g) {
  std::vector<double> yv = y.to_vector(), wv = w.to_vector(), xv(shape_numel(xs), 0.0);
  visit_terms(xs, w.shape(), y.shape(), g,
              [&](int64_t xi, int64_t wi, int64_t yi) { xv[xi] += yv[yi] * wv[wi]; });
  return from(xv, xs);
}

Tensor naive_weight_grad(const Tensor& y, const Tensor& x, const Shape& ws,
                         const k::ConvGeometry& g) {
  std::vector<double> yv = y.to_vector(), xv = x.to_vector(), wv(shape_numel(ws), 0.0);
  visit_terms(x.shape(), ws, y.shape(), g,
              [&](int64_t xi, int64_t wi, int64_t yi) { wv[wi] += yv[yi] * xv[xi]; });
  return from(wv, ws);
}

double inner(const Tensor& a, const Tensor& b) {
  std::vector<double> av = a.to_vector(), bv = b.to_vector();
  REQUIRE(av.size() == bv.size());
  double s = 0;
  for (size_t i = 0; i < av.size(); ++i) s += av[i] * bv[i];
  return s;
}

// max |a - b| / (1 + max |b|): a relative error that does not blow up on single small entries.
double rel_err(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  std::vector<double> av = a.to_vector(), bv = b.to_vector();
  double m = 0, scale = 0;
  for (size_t i = 0; i < av.size(); ++i) {
    m = std::max(m, std::abs(av[i] - bv[i]));
    scale = std::max(scale, std::abs(bv[i]));
  }
  return m / (1.0 + scale);
}

Tensor rnd(const Shape& s, uint64_t stream, DType dt = DType::Float64) {
  return uniform(s, -1.0, 1.0, 42, stream, 0, dt);
}

// Largest x shape that still convolves to y's spatial sizes: the minimum plus stride - 1 (what
// ConvTranspose's maximal output_padding produces).
Shape widest_input(const Shape& xs, const Shape& ys, const Shape& ws, const k::ConvGeometry& g) {
  Shape out = xs;
  for (int d = 0; d < g.nd; ++d)
    out[2 + d] = (ys[2 + d] - 1) * g.stride[d] + g.dilation[d] * (ws[2 + d] - 1) + 1 -
                 2 * g.padding[d] + g.stride[d] - 1;
  return out;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.contiguous().raw_data(), b.contiguous().raw_data(), a.nbytes()) == 0;
}

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_SUITE("kernels") {
TEST_CASE("conv matches the naive direct convolution (float64, 1-3 spatial dims)") {
  for (const Config& c : configs()) {
    CAPTURE(c.name);
    k::ConvGeometry g = geometry(c);
    Tensor x = rnd(c.x, 0), w = rnd(c.w, 1), b = rnd({c.w[0]}, 2);
    Tensor ref = naive_conv(x, w, g);
    CHECK(k::conv_output_shape(c.x, c.w, g) == ref.shape());
    Tensor y = k::conv(x, w, Tensor(), g);
    CHECK(y.shape() == ref.shape());
    CHECK(rel_err(y, ref) < 1e-13);
    // The bias is added per output channel.
    Tensor yb = k::conv(x, w, b, g);
    Shape bs(c.x.size(), 1);
    bs[1] = c.w[0];
    Tensor refb = k::add(ref, b.view(bs));
    CHECK(rel_err(yb, refb) < 1e-13);
  }
}

TEST_CASE("conv_transpose is the adjoint of conv in x and matches the naive transposed conv") {
  for (const Config& c : configs()) {
    CAPTURE(c.name);
    k::ConvGeometry g = geometry(c);
    Tensor x = rnd(c.x, 0), w = rnd(c.w, 1);
    Shape ys = expected_output(c.x, c.w, g);
    Tensor gy = rnd(ys, 3);
    Tensor z = k::conv_transpose(gy, w, Tensor(), c.x, g);
    CHECK(z.shape() == c.x);
    CHECK(rel_err(z, naive_conv_transpose(gy, w, c.x, g)) < 1e-13);
    const double lhs = inner(k::conv(x, w, Tensor(), g), gy), rhs = inner(x, z);
    CHECK(std::abs(lhs - rhs) <= 1e-12 * (1 + std::abs(lhs)));
    // The widest output (ConvTranspose's output_padding = stride - 1) gets zeros at the far edge.
    Shape wide = widest_input(c.x, ys, c.w, g);
    Tensor zw = k::conv_transpose(gy, w, Tensor(), wide, g);
    CHECK(zw.shape() == wide);
    CHECK(rel_err(zw, naive_conv_transpose(gy, w, wide, g)) < 1e-13);
    // With a bias [Cin], every output element gets its channel's value.
    Tensor b = rnd({c.x[1]}, 4);
    Tensor zb = k::conv_transpose(gy, w, b, c.x, g);
    Shape bs(c.x.size(), 1);
    bs[1] = c.x[1];
    CHECK(rel_err(zb, k::add(z, b.view(bs))) < 1e-13);
  }
}

TEST_CASE("conv_weight_grad is the adjoint of conv in w and matches the naive sum") {
  for (const Config& c : configs()) {
    CAPTURE(c.name);
    k::ConvGeometry g = geometry(c);
    Tensor x = rnd(c.x, 0), w = rnd(c.w, 1);
    Tensor gy = rnd(expected_output(c.x, c.w, g), 3);
    Tensor dw = k::conv_weight_grad(gy, x, c.w, g);
    CHECK(dw.shape() == c.w);
    CHECK(rel_err(dw, naive_weight_grad(gy, x, c.w, g)) < 1e-13);
    const double lhs = inner(k::conv(x, w, Tensor(), g), gy), rhs = inner(w, dw);
    CHECK(std::abs(lhs - rhs) <= 1e-12 * (1 + std::abs(lhs)));
  }
}

TEST_CASE("conv_bias_grad sums over every dim but 1") {
  Tensor y = rnd({3, 4, 5, 6}, 5);
  Tensor ref = k::sum(y, {0, 2, 3});
  CHECK(rel_err(k::conv_bias_grad(y), ref) < 1e-13);
  Tensor y32 = y.to(DType::Float32);
  CHECK(rel_err(k::conv_bias_grad(y32).to(DType::Float64), ref) < 1e-6);
  // Strided input (a transposed view) is handled.
  Tensor yt = rnd({4, 3, 6, 5}, 6).transpose(0, 1);
  CHECK(rel_err(k::conv_bias_grad(yt), k::sum(yt, {0, 2, 3})) < 1e-13);
}

TEST_CASE("float32 agrees with float64; strided inputs are accepted") {
  for (const Config& c : configs()) {
    CAPTURE(c.name);
    k::ConvGeometry g = geometry(c);
    Tensor x = rnd(c.x, 0), w = rnd(c.w, 1);
    Tensor gy = rnd(expected_output(c.x, c.w, g), 3);
    Tensor x32 = x.to(DType::Float32), w32 = w.to(DType::Float32), g32 = gy.to(DType::Float32);
    CHECK(rel_err(k::conv(x32, w32, Tensor(), g).to(DType::Float64), k::conv(x, w, Tensor(), g)) <
          1e-5);
    CHECK(rel_err(k::conv_transpose(g32, w32, Tensor(), c.x, g).to(DType::Float64),
                  k::conv_transpose(gy, w, Tensor(), c.x, g)) < 1e-5);
    CHECK(rel_err(k::conv_weight_grad(g32, x32, c.w, g).to(DType::Float64),
                  k::conv_weight_grad(gy, x, c.w, g)) < 1e-5);
  }
  // A non-contiguous x (batch and channel swapped back from a transposed buffer).
  Shape xs{3, 2, 6, 5};
  Tensor xt = rnd({2, 3, 6, 5}, 7).transpose(0, 1);
  Tensor w = rnd({3, 2, 3, 3}, 8);
  k::ConvGeometry g = k::ConvGeometry::make(2, {1}, {1}, {1});
  CHECK(rel_err(k::conv(xt, w, Tensor(), g), naive_conv(xt.contiguous(), w, g)) < 1e-13);
}

TEST_CASE("results are bitwise identical with 1 and 2 OpenMP threads") {
  const int saved = omp_get_max_threads();
  struct Big {
    Shape x, w;
    std::vector<int64_t> stride, padding;
  };
  // Large enough that im2col, col2im, the bias fill and the bias reduction run in parallel.
  // Odd batches make 2 threads split samples unevenly (the transpose then runs its last sample
  // on all threads); many channels give several column blocks per sample.
  const std::vector<Big> bigs = {{{4, 8, 40, 36}, {6, 8, 3, 3}, {1}, {1}},
                                 {{3, 64, 20, 20}, {8, 64, 3, 3}, {1}, {1}},
                                 {{1, 32, 30, 30}, {4, 32, 3, 3}, {2}, {1}},
                                 {{3, 16, 24, 24}, {8, 16, 1, 1}, {1}, {0}},
                                 {{3, 4, 12, 14, 10}, {4, 4, 3, 3, 3}, {2}, {1}}};
  for (const Big& c : bigs) {
    CAPTURE(c.x);
    k::ConvGeometry g = k::ConvGeometry::make(static_cast<int>(c.x.size()) - 2, c.stride,
                                              c.padding, {1});
    Tensor x = rnd(c.x, 0, DType::Float32), w = rnd(c.w, 1, DType::Float32);
    Tensor b = rnd({c.w[0]}, 2, DType::Float32), bx = rnd({c.x[1]}, 9, DType::Float32);
    Tensor gy = rnd(expected_output(c.x, c.w, g), 3, DType::Float32);
    std::vector<Tensor> runs[2];
    for (int t = 1; t <= 2; ++t) {
      omp_set_num_threads(t);
      runs[t - 1] = {k::conv(x, w, b, g), k::conv_transpose(gy, w, bx, c.x, g),
                     k::conv_weight_grad(gy, x, c.w, g), k::conv_bias_grad(gy)};
    }
    omp_set_num_threads(saved);
    for (size_t i = 0; i < runs[0].size(); ++i) {
      CAPTURE(i);
      CHECK(bitwise_equal(runs[0][i], runs[1][i]));
    }
  }
}

TEST_CASE("convs called from inside a user's parallel region give the same bits") {
  // Each call then runs on its own thread; OpenBLAS's thread setting is shared between them.
  k::ConvGeometry g = k::ConvGeometry::make(2, {1}, {1}, {1});
  Tensor x = rnd({3, 64, 20, 20}, 0, DType::Float32), w = rnd({8, 64, 3, 3}, 1, DType::Float32);
  Tensor gy = rnd({3, 8, 20, 20}, 2, DType::Float32);
  const Tensor ref[3] = {k::conv(x, w, Tensor(), g),
                         k::conv_transpose(gy, w, Tensor(), x.shape(), g),
                         k::conv_weight_grad(gy, x, w.shape(), g)};
  Tensor out[2][3];
#pragma omp parallel for num_threads(2)
  for (int t = 0; t < 2; ++t) {
    out[t][0] = k::conv(x, w, Tensor(), g);
    out[t][1] = k::conv_transpose(gy, w, Tensor(), x.shape(), g);
    out[t][2] = k::conv_weight_grad(gy, x, w.shape(), g);
  }
  for (int t = 0; t < 2; ++t)
    for (int i = 0; i < 3; ++i) {
      CAPTURE(i);
      CHECK(bitwise_equal(out[t][i], ref[i]));
    }
}

TEST_CASE("conv errors name the op, the shapes and what was expected") {
  k::ConvGeometry g2 = k::ConvGeometry::make(2, {1}, {1}, {1});
  Tensor x = rnd({2, 3, 5, 5}, 0);
  std::string e = error_of([&] { k::conv(x, rnd({4, 2, 3, 3}, 1), Tensor(), g2); });
  CHECK(contains(e, "conv: input [2, 3, 5, 5] has 3 channels but weight [4, 2, 3, 3] expects 2"));
  e = error_of([&] { k::conv(x, rnd({1, 3, 9, 3}, 1), Tensor(), g2); });
  CHECK(contains(e, "conv: kernel [9, 3]"));
  CHECK(contains(e, "larger than the padded input [5, 5]"));
  e = error_of([&] { k::conv(x, rnd({4, 3, 3}, 1), Tensor(), g2); });
  CHECK(contains(e, "conv: weight [4, 3, 3] has rank 3; expected 4 dims"));
  e = error_of([&] { k::conv(rnd({3, 5, 5}, 0), rnd({4, 3, 3, 3}, 1), Tensor(), g2); });
  CHECK(contains(e, "conv: input [3, 5, 5] has rank 3; expected 4 dims"));
  e = error_of([&] { k::conv(x, rnd({4, 3, 3, 3}, 1, DType::Float32), Tensor(), g2); });
  CHECK(contains(e, "conv: dtypes differ"));
  e = error_of([&] { k::conv(x, rnd({4, 3, 3, 3}, 1), rnd({3}, 2), g2); });
  CHECK(contains(e, "conv: bias float64[3] on cpu does not match the 4 output channels"));
  e = error_of([&] { k::ConvGeometry::make(2, {1, 2, 3}, {0}, {1}, "conv"); });
  CHECK(contains(e, "conv: stride [1, 2, 3] has 3 values; expected 1 or 2"));
  e = error_of([&] { k::ConvGeometry::make(2, {0}, {0}, {1}, "conv"); });
  CHECK(contains(e, "expected every value >= 1"));
  // An output shape whose convolution is not the input size (output_padding >= stride).
  k::ConvGeometry s2 = k::ConvGeometry::make(2, {2}, {0}, {1});
  e = error_of([&] {
    k::conv_transpose(rnd({1, 2, 3, 3}, 0), rnd({2, 4, 2, 2}, 1), Tensor(), {1, 4, 8, 6}, s2);
  });
  CHECK(contains(e, "conv_transpose: output shape [1, 4, 8, 6]"));
  CHECK(contains(e, "output_padding must be < stride"));
  e = error_of([&] {
    k::conv_weight_grad(rnd({1, 2, 4, 4}, 0), rnd({1, 3, 5, 5}, 1), {2, 3, 3, 3}, s2);
  });
  CHECK(contains(e, "conv_weight_grad: output gradient float64[1, 2, 4, 4]"));
}
}  // TEST_SUITE
