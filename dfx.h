// dfx.h — everything a user program needs: #include <dfx/dfx.h>.
#pragma once
#include "config.h"
#include "core/copy.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/reduce.h"
#include "kernels/shape_ops.h"
#include "autodiff/ops.h"
#include "autodiff/var.h"
#include "models/checkpoint.h"
#include "models/layers.h"
#include "models/module.h"
#include "models/unet.h"

namespace dfx {
using ad::Var;
}  // namespace dfx
