// autodiff/nn_pool.cpp — max/avg pooling and upsampling on Vars. Each op is paired with its
// adjoint (max_pool -> pool_scatter <-> pool_gather, avg_pool <-> avg_pool_adjoint, upsample <->
// upsample_adjoint); max pooling is linear given its indices, so every rule is one recorded op.
#include "autodiff/nn_pool.h"

#include "kernels/pool.h"

namespace dfx::ad {
namespace k = dfx::kernels;
using VarList = std::vector<Var>;

namespace {
k::UpsampleMode kmode(UpsampleMode m) {
  return m == UpsampleMode::Nearest ? k::UpsampleMode::Nearest : k::UpsampleMode::Linear;
}
}  // namespace

Var max_pool(const Var& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
             const std::vector<int64_t>& padding) {
  k::MaxPoolResult r = k::max_pool(x.data(), {kernel, stride, padding});
  Tensor idx = r.indices;
  Shape xs = x.shape();
  const bool disjoint = r.disjoint;
  return record("max_pool", r.values, {x}, [idx, xs, disjoint](const Var&, const Var& g) {
    return VarList{pool_scatter(g, idx, xs, disjoint)};
  });
}

Var pool_gather(const Var& x, const Tensor& indices, bool disjoint) {
  Shape xs = x.shape();
  return record("pool_gather", k::pool_gather(x.data(), indices), {x},
                [indices, xs, disjoint](const Var&, const Var& g) {
                  return VarList{pool_scatter(g, indices, xs, disjoint)};
                });
}

Var pool_scatter(const Var& g, const Tensor& indices, const Shape& in_shape, bool disjoint) {
  return record("pool_scatter", k::pool_scatter(g.data(), indices, in_shape, disjoint), {g},
                [indices, disjoint](const Var&, const Var& gg) {
                  return VarList{pool_gather(gg, indices, disjoint)};
                });
}

Var avg_pool(const Var& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
             const std::vector<int64_t>& padding) {
  Shape xs = x.shape();
  return record("avg_pool", k::avg_pool(x.data(), {kernel, stride, padding}), {x},
                [=](const Var&, const Var& g) {
                  return VarList{avg_pool_adjoint(g, xs, kernel, stride, padding)};
                });
}

Var avg_pool_adjoint(const Var& g, const Shape& in_shape, const std::vector<int64_t>& kernel,
                     const std::vector<int64_t>& stride, const std::vector<int64_t>& padding) {
  return record("avg_pool_adjoint",
                k::avg_pool_adjoint(g.data(), in_shape, {kernel, stride, padding}), {g},
                [=](const Var&, const Var& gg) {
                  return VarList{avg_pool(gg, kernel, stride, padding)};
                });
}

Var upsample(const Var& x, const std::vector<int64_t>& scale, UpsampleMode mode) {
  return record("upsample", k::upsample(x.data(), scale, kmode(mode)), {x},
                [=](const Var&, const Var& g) {
                  return VarList{upsample_adjoint(g, scale, mode)};
                });
}

Var upsample_adjoint(const Var& g, const std::vector<int64_t>& scale, UpsampleMode mode) {
  return record("upsample_adjoint", k::upsample_adjoint(g.data(), scale, kmode(mode)), {g},
                [=](const Var&, const Var& gg) { return VarList{upsample(gg, scale, mode)}; });
}

}  // namespace dfx::ad
