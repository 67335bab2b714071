// apps/run_common.cpp — shared pieces of the run commands (see run_common.h).
#include "apps/run_common.h"

#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/cuda_runtime.h"
#include "kernels/conv_config.h"

namespace dfx::app {

Device run_device(const RunOptions& o, int local_rank) {
  const std::string name = o.device;
  Device d = Device::parse(name);
  if (d.is_cuda()) {
    DFX_CHECK(cuda::is_built(), "--device ", d.str(), ": dfx was built without CUDA (nvcc was not "
              "found at configure time); use --device cpu or rebuild with -Dcuda=enabled");
    const int n = cuda::device_count();
    DFX_CHECK(n > 0, "--device ", d.str(), ": no CUDA device is visible (no GPU or no driver on "
              "this machine); use --device cpu");
    DFX_CHECK(d.index < n, "--device ", d.str(), ": only ", n, " CUDA device", n == 1 ? "" : "s",
              " visible; expected cuda:0 .. cuda:", n - 1, ", or --device cpu");
    if (name == "cuda") d.index = local_rank % n;
  }
  // The process-wide convolution switches (kernels/conv_config.h); without the flags,
  // DFX_TF32 / DFX_CONV_BACKEND or the defaults stay in force.
  if (o.tf32) kernels::set_allow_tf32(true);
  if (o.amx_bf16) kernels::set_allow_amx_bf16(true);
  if (!o.conv_backend.empty()) {
    const kernels::ConvBackend b = kernels::parse_conv_backend(o.conv_backend, "--conv-backend");
    DFX_CHECK(b != kernels::ConvBackend::Cudnn || kernels::cudnn_available(),
              "--conv-backend cudnn: dfx was built without cuDNN; use auto or native, or rebuild "
              "with -Dcudnn=enabled (and -Dcudnn_root=PREFIX)");
    kernels::set_conv_backend(b);
  } else if (d.is_cuda() && kernels::cudnn_available() && !std::getenv("DFX_CONV_BACKEND")) {
    // On the H100, cuDNN's TF32 kernels beat dfx's own by a median 7x per W1 shape
    // (BENCHMARKS.md), so the command line times both per shape, as cudnn.benchmark does.
    kernels::set_conv_backend(kernels::ConvBackend::Auto);
  }
  return d;
}

RunComm make_run_comm(const TrainOptions& o) {
  const std::string kind = o.comm;
  const bool want_cuda = Device::parse(o.device).is_cuda();
  if (kind == "nccl") {
    DFX_CHECK(want_cuda, "--comm nccl needs --device cuda (NCCL moves GPU buffers), got --device ",
              o.device, "; use --comm mpi or --comm auto for CPU training");
    DFX_CHECK(dist::nccl_available(), "--comm nccl: dfx was built without NCCL (reconfigure with "
              "-Dnccl=enabled, -Dnccl_root=PREFIX); --comm mpi also runs on device tensors, staged "
              "through host memory");
  }
  std::shared_ptr<dist::Communicator> host;
  if (kind == "local") host = dist::make_local();
  else if (kind == "mpi") host = dist::make_mpi();
  else host = dist::make_default();  // auto, and the bootstrap of nccl
  const dist::NodeRank node = dist::node_rank(*host);
  const Device device = run_device(o, node.local_rank);
  bool nccl = kind == "nccl";
  if (kind == "auto" && want_cuda && host->size() > 1 && dist::nccl_available()) {
    // NCCL refuses two ranks on one GPU, so only when every host has a GPU per rank; all ranks
    // must agree, since creating the NCCL communicator is collective.
    const bool ok = o.device == "cuda" && node.local_size <= cuda::device_count();
    Tensor veto = from_vector<int64_t>({ok ? 0 : 1}, {1});
    host->all_reduce(veto, dist::ReduceOp::Max);
    nccl = veto.data<int64_t>()[0] == 0;
  }
  if (nccl) return {dist::make_nccl(host, device.index), device};
  return {host, device};
}

dist::ThreadChoice apply_threads(int64_t threads, dist::Communicator* comm) {
  DFX_CHECK(threads >= 0, "--threads must be >= 0, got ", threads);
  if (comm) return dist::configure_threads(*comm, threads);
  return dist::configure_threads(*dist::make_local(), threads);
}

std::shared_ptr<nn::UNet> build_model(const RunOptions& o, int dims) {
  return build_model(o, dims, run_device(o));
}

std::shared_ptr<nn::UNet> build_model(const RunOptions& o, int dims, Device device, int grown) {
  train::ModelConfig m = model_config(o);
  m.depth += grown;
  m.grown = grown;
  auto model = train::build_unet(m, dims, device, o.optimizer);
  train::check_resolution(m, o.res);
  return model;
}

std::unique_ptr<optim::Optimizer> build_optimizer(const RunOptions& o, std::vector<ad::Var> params) {
  return optim::make_optimizer(std::move(params), optimizer_config(o));
}

double seconds_since(const std::chrono::steady_clock::time_point& t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e7) return "--:--";
  char buf[32];
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(t / 3600), (long long)(t / 60 % 60), (long long)(t % 60));
  else std::snprintf(buf, sizeof buf, "%02lld:%02lld", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

}  // namespace dfx::app
