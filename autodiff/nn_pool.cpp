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

namespace {

// pool_gather and pool_scatter as recorded ops; `trusted` indices (made by max_pool, or checked
// by the forward op that recorded this backward) are not range-checked again on a GPU, which
// would make the host wait (kernels/pool.h).
Var gather_op(const Var& x, const Tensor& indices, bool disjoint, bool trusted);
Var scatter_op(const Var& g, const Tensor& indices, const Shape& in_shape, bool disjoint,
               bool trusted) {
  return record("pool_scatter", k::pool_scatter(g.data(), indices, in_shape, disjoint, trusted),
                {g}, [indices, disjoint](const Var&, const Var& gg) {
                  return VarList{gather_op(gg, indices, disjoint, true)};
                });
}
Var gather_op(const Var& x, const Tensor& indices, bool disjoint, bool trusted) {
  Shape xs = x.shape();
  return record("pool_gather", k::pool_gather(x.data(), indices, trusted), {x},
                [indices, xs, disjoint](const Var&, const Var& g) {
                  return VarList{scatter_op(g, indices, xs, disjoint, true)};
                });
}

}  // namespace

Var max_pool(const Var& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
             const std::vector<int64_t>& padding) {
  k::MaxPoolResult r = k::max_pool(x.data(), {kernel, stride, padding});
  Tensor idx = r.indices;
  Shape xs = x.shape();
  const bool disjoint = r.disjoint;
  return record("max_pool", r.values, {x}, [idx, xs, disjoint](const Var&, const Var& g) {
    return VarList{scatter_op(g, idx, xs, disjoint, true)};
  });
}

Var pool_gather(const Var& x, const Tensor& indices, bool disjoint) {
  return gather_op(x, indices, disjoint, false);
}

Var pool_scatter(const Var& g, const Tensor& indices, const Shape& in_shape, bool disjoint) {
  return scatter_op(g, indices, in_shape, disjoint, false);
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
