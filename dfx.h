// dfx.h — everything a user program needs: #include <dfx/dfx.h>.
// (dist/mpi_communicator.h, which needs <mpi.h>, is included separately by MPI programs.)
#pragma once
#include "config.h"
#include "core/copy.h"
#include "core/npy.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/reduce.h"
#include "kernels/shape_ops.h"
#include "autodiff/checkpoint.h"
#include "autodiff/fem_ops.h"
#include "autodiff/nn_ops.h"
#include "autodiff/ops.h"
#include "autodiff/var.h"
#include "dist/communicator.h"
#include "dist/data_parallel.h"
#include "models/checkpoint.h"
#include "models/layers.h"
#include "models/module.h"
#include "models/unet.h"
#include "pde/burgers_loss.h"
#include "pde/burgers_solver.h"
#include "pde/metrics.h"
#include "pde/poisson_loss.h"
#include "pde/poisson_solver.h"
#include "pde/sampler.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"

namespace dfx {
using ad::Var;
}  // namespace dfx
