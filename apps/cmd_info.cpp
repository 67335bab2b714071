// apps/cmd_info.cpp — `dfx info`: what this build of dfx contains and which devices it sees.
#include <cstdio>

#include "apps/commands.h"
#include "config.h"
#include "core/cuda_runtime.h"
#include "core/error.h"
#include "dist/threads.h"
#include "kernels/conv_config.h"
#include "kernels/profile.h"

extern "C" char* openblas_get_corename(void);
extern "C" char* openblas_get_config(void);

namespace dfx::app {

int cmd_info(const Args& args) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::printf("usage: dfx info\n  prints the version, the optional parts built in, and devices\n");
      return 0;
    }
    DFX_FAIL("unknown option '", a, "'; dfx info takes none");
  }
  std::printf("dfx %s\n", DFX_VERSION);
  std::printf("parts: CUDA %s, cuDNN %s, NCCL %s, MPI %s\n", DFX_HAVE_CUDA ? "on" : "off",
              DFX_HAVE_CUDNN ? "on" : "off", DFX_HAVE_NCCL ? "on" : "off",
              DFX_HAVE_MPI ? "on" : "off");
  std::printf("BLAS: %s, kernels for %s\n", openblas_get_config(), openblas_get_corename());
  const int n = cuda::device_count();
  std::printf("CUDA devices: %d%s\n", n, cuda::is_built() ? "" : " (built without CUDA)");
  for (int i = 0; i < n; ++i) std::printf("  cuda:%d %s\n", i, cuda::device_name(i).c_str());
  // The process-wide switches as the environment sets them (docs/cuda.md).
  std::printf("CUDA convolutions: backend %s, TF32 %s, deterministic %s (DFX_CONV_BACKEND, "
              "DFX_TF32, DFX_CONV_DETERMINISTIC)\n",
              kernels::conv_backend_name(kernels::conv_backend()),
              kernels::allow_tf32() ? "on" : "off", kernels::conv_deterministic() ? "on" : "off");
  std::printf("CPU convolutions: AMX bf16 %s (DFX_AMX_BF16; this CPU %s usable AMX tiles)\n",
              kernels::allow_amx_bf16() ? "on" : "off",
              kernels::amx_bf16_available() ? "has" : "has no");
  std::printf("per-kernel timings: %s (DFX_KERNEL_PROFILE)\n",
              kernels::kernel_profiling() ? "on" : "off");
  // As one process sees it; under mpiexec each rank of `dfx train` divides these cores among the
  // ranks of its host that share them (dist/threads.h).
  const dist::ThreadChoice threads = dist::configure_threads(*dist::make_local(), 0);
  std::printf("CPU threads: %s (--threads, OMP_NUM_THREADS)\n", dist::describe(threads).c_str());
  return 0;
}

}  // namespace dfx::app
