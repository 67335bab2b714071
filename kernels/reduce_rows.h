// kernels/reduce_rows.h — the layout both reduction backends work on: the kept dims first, the
// reduced dims last, so a reduction is M independent rows of R elements.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace dfx::kernels {

// x permuted as [kept..., reduced...] and made contiguous: M rows of R elements.
inline Tensor rows_view(const Tensor& x, const std::vector<int>& dims, int64_t& M, int64_t& R) {
  std::vector<int> perm;
  std::vector<bool> red(x.dim(), false);
  for (int d : dims) red[d] = true;
  M = 1;
  R = 1;
  for (int d = 0; d < x.dim(); ++d)
    if (!red[d]) {
      perm.push_back(d);
      M *= x.shape()[d];
    }
  for (int d : dims) {
    perm.push_back(d);
    R *= x.shape()[d];
  }
  return x.permute(perm).contiguous();
}

// True when x is contiguous and the reduced dims are exactly its leading ones (not all of them):
// then the rows are strided columns and no permuted copy is needed.
inline bool leading_dims(const Tensor& x, const std::vector<int>& dims) {
  if (!x.is_contiguous()) return false;
  for (size_t i = 0; i < dims.size(); ++i)
    if (dims[i] != static_cast<int>(i)) return false;
  return static_cast<int>(dims.size()) < x.dim();
}

}  // namespace dfx::kernels
