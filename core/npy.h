// core/npy.h — NumPy .npy files for fields: read (format 1.0/2.0) and atomic write (1.0).
// Little-endian '<f4', '<f8', '<i8' and '|b1', C order; anything else is refused with a dfx::Error
// naming the file, what was found and what was expected.
#pragma once
#include <string>

#include "core/tensor.h"

namespace dfx {

// A contiguous CPU tensor with the file's dtype and shape (0 to kMaxDims dims).
Tensor load_npy(const std::string& path);
// Any layout and device; writes path + ".tmp.<pid>" and renames it over `path`.
void save_npy(const std::string& path, const Tensor& t);

}  // namespace dfx
