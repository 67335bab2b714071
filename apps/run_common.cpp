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
using T = OptionSpec::Type;

std::vector<OptionSpec> run_option_specs() {
  return {
      {"problem", T::String, "poisson2d", "workload", pde::problem_names()},
      {"res", T::Int, "64", "grid nodes per side (divisible by 2^(depth-1))"},
      {"depth", T::Int, "4", "U-Net levels"},
      {"width", T::Int, "16", "U-Net base width C"},
      {"batch", T::Int, "8", "global batch size (split over MPI ranks)"},
      {"optimizer", T::String, "adam", "optimiser (optim/registry.h)", optim::optimizer_names()},
      {"history_size", T::Int, "10", "L-BFGS history"},
      {"cg_iters", T::Int, "20", "Newton-CG, Gauss-Newton: CG iterations per step"},
      {"trust_radius", T::Float, "1", "Newton-CG: initial trust radius"},
      {"cg_forcing", T::Float, "-1", "Newton-CG, Gauss-Newton: CG stops at |r| <= forcing |g| (< 0: Newton-CG min(0.5, sqrt |g|), Gauss-Newton 0.1)"},
      {"damping", T::Float, "1", "Gauss-Newton: initial Levenberg-Marquardt damping (adapted per step)"},
      {"precondition", T::Bool, "false", "Newton-CG: Jacobi preconditioner from a Hutchinson diagonal"},
      {"hessian_every", T::Int, "1", "AdaHessian: steps between Hessian-diagonal estimates"},
      {"hessian_power", T::Float, "1", "AdaHessian: Hessian power k"},
      {"lr", T::Float, "0.001", "learning rate (the schedule's base rate)"},
      {"schedule", T::String, "constant", "learning-rate schedule",
       {"constant", "cosine", "step", "multistep", "exponential"}},
      {"warmup_steps", T::Int, "0", "linear learning-rate warm-up steps"},
      {"lr_min", T::Float, "0", "cosine schedule's final rate"},
      {"gamma", T::Float, "0.1", "step/multistep factor, or exponential per-step factor"},
      {"step_size", T::Int, "1000", "steps between step-schedule decays"},
      {"milestones", T::String, "", "multistep decay steps, comma separated (e.g. 1000,1500)"},
      {"momentum", T::Float, "0.9", "SGD momentum"},
      {"weight_decay", T::Float, "0", "weight decay (decoupled for adamw)"},
      {"seed", T::Int, "0", "seed of the weights and of the sampled fields"},
      {"device", T::String, "cpu", "cpu or cuda[:N]"},
      {"channels_last", T::Bool, "false",
       "lay convolution weights and activations out channels-last (NHWC strides; same results)"},
      {"tf32", T::Bool, "false", "float32 CUDA convolutions may use TF32 (or DFX_TF32=1)"},
      {"activation_checkpoint", T::Bool, "false",
       "activation checkpointing: keep only each U-Net level's inputs and recompute the level in "
       "the backward (same gradients; first-order optimisers only)"},
      {"bn_recompute", T::Bool, "false",
       "batch norm + leaky ReLU keep only their output and rebuild their input in the backward "
       "(less activation memory; first-order optimisers only)"},
      {"conv_backend", T::String, "", "CUDA convolutions: dfx's kernels, cuDNN, or auto (timed "
       "per shape); unset: DFX_CONV_BACKEND, else auto on a GPU when dfx has cuDNN, else native", {"auto", "native", "cudnn"}},
      {"dtype", T::String, "float32", "parameter and activation precision", {"float32", "float64"}},
      {"threads", T::Int, "0", "CPU threads per process (0: OpenMP default)"},
      {"visc", T::Float, "0.01", "Burgers viscosity (0 = inviscid)"},
      {"boundary_factor", T::Float, "64", "Burgers boundary-loss weight"},
  };
}

ProblemOptions problem_options(const Options& o) {
  ProblemOptions p;
  p.name = o.s("problem");
  p.res = o.i("res");
  p.seed = static_cast<uint64_t>(o.i("seed"));
  p.visc = o.f("visc");
  p.boundary_factor = o.f("boundary_factor");
  DFX_CHECK(p.visc >= 0, "--visc must be >= 0, got ", p.visc);
  return p;
}

DType run_dtype(const Options& o) { return o.s("dtype") == "float64" ? DType::Float64 : DType::Float32; }

Device run_device(const Options& o, int local_rank) {
  const std::string name = o.s("device");
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
  if (o.b("tf32")) kernels::set_allow_tf32(true);
  if (!o.s("conv_backend").empty()) {
    const kernels::ConvBackend b = kernels::parse_conv_backend(o.s("conv_backend"), "--conv-backend");
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

RunComm make_run_comm(const Options& o) {
  const std::string kind = o.s("comm");
  const bool want_cuda = Device::parse(o.s("device")).is_cuda();
  if (kind == "nccl") {
    DFX_CHECK(want_cuda, "--comm nccl needs --device cuda (NCCL moves GPU buffers), got --device ",
              o.s("device"), "; use --comm mpi or --comm auto for CPU training");
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
    const bool ok = o.s("device") == "cuda" && node.local_size <= cuda::device_count();
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

train::ModelConfig model_config(const Options& o) {
  train::ModelConfig m;
  m.depth = static_cast<int>(o.i("depth"));
  m.width = o.i("width");
  m.dtype = run_dtype(o);
  m.seed = static_cast<uint64_t>(o.i("seed"));
  m.channels_last = o.b("channels_last");
  m.bn_recompute = o.b("bn_recompute");
  m.activation_checkpoint = o.b("activation_checkpoint");
  return m;
}

optim::OptimizerConfig optimizer_config(const Options& o) {
  optim::OptimizerConfig c;
  c.name = o.s("optimizer");
  c.lr = o.f("lr");
  c.momentum = o.f("momentum");
  c.weight_decay = o.f("weight_decay");
  c.history_size = static_cast<int>(o.i("history_size"));
  c.cg_iters = static_cast<int>(o.i("cg_iters"));
  c.trust_radius = o.f("trust_radius");
  c.cg_forcing = o.f("cg_forcing");
  c.damping = o.f("damping");
  c.precondition = o.b("precondition");
  c.hessian_every = static_cast<int>(o.i("hessian_every"));
  c.hessian_power = o.f("hessian_power");
  c.seed = static_cast<uint64_t>(o.i("seed"));
  return c;
}

optim::Schedule schedule_config(const Options& o) {
  optim::Schedule s;
  s.kind = optim::Schedule::parse_kind(o.s("schedule"));
  s.base_lr = o.f("lr");
  s.min_lr = o.f("lr_min");
  s.gamma = o.f("gamma");
  s.step_size = o.i("step_size");
  s.warmup_steps = o.i("warmup_steps");
  DFX_CHECK(s.warmup_steps >= 0 && s.step_size >= 1, "--warmup-steps must be >= 0 and --step-size >= 1");
  s.milestones = train::parse_step_list(o.s("milestones"), "--milestones");
  return s;
}

std::shared_ptr<nn::UNet> build_model(const Options& o, int dims) {
  return build_model(o, dims, run_device(o));
}

std::shared_ptr<nn::UNet> build_model(const Options& o, int dims, Device device) {
  const train::ModelConfig m = model_config(o);
  auto model = train::build_unet(m, dims, device, o.s("optimizer"));
  train::check_resolution(m, o.i("res"));
  return model;
}

void apply_optimizer_defaults(Options& o) {
  // Each method's customary rate when the user gave none (optim/registry.h).
  if (o.given("lr")) return;
  std::ostringstream os;
  os.precision(17);
  os << optim::optimizer_info(o.s("optimizer")).default_lr;
  o.set("lr", os.str());
}

std::unique_ptr<optim::Optimizer> build_optimizer(const Options& o, std::vector<ad::Var> params) {
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
