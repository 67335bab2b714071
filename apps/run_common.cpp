// apps/run_common.cpp — shared pieces of the run commands (see run_common.h).
#include "apps/run_common.h"

#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/cuda_runtime.h"
#include "kernels/conv_config.h"
#include "models/checkpoint.h"
#include "optim/first_order_extra.h"
#include "optim/second_order.h"

extern "C" void openblas_set_num_threads(int);

namespace dfx::app {
using T = OptionSpec::Type;

std::vector<OptionSpec> run_option_specs() {
  return {
      {"problem", T::String, "poisson2d", "workload", {"poisson2d", "poisson3d", "burgers"}},
      {"res", T::Int, "64", "grid nodes per side (divisible by 2^(depth-1))"},
      {"depth", T::Int, "4", "U-Net levels"},
      {"width", T::Int, "16", "U-Net base width C"},
      {"batch", T::Int, "8", "global batch size (split over MPI ranks)"},
      {"optimizer", T::String, "adam", "optimiser",
       {"adam", "adamw", "sgd", "lamb", "lars", "lbfgs", "newton-cg", "adahessian"}},
      {"history_size", T::Int, "10", "L-BFGS history"},
      {"cg_iters", T::Int, "20", "Newton-CG: CG iterations per step"},
      {"trust_radius", T::Float, "1", "Newton-CG: initial trust radius"},
      {"cg_forcing", T::Float, "-1", "Newton-CG: CG stops at |r| <= forcing |g| (< 0: min(0.5, sqrt |g|))"},
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

void apply_threads(int64_t threads) {
  DFX_CHECK(threads >= 0, "--threads must be >= 0, got ", threads);
  if (threads == 0) return;
  omp_set_num_threads(static_cast<int>(threads));
  openblas_set_num_threads(static_cast<int>(threads));
}

std::shared_ptr<nn::UNet> build_model(const Options& o, int dims) {
  return build_model(o, dims, run_device(o));
}

std::shared_ptr<nn::UNet> build_model(const Options& o, int dims, Device device) {
  nn::UNetOptions u;
  u.dims = dims;
  u.depth = static_cast<int>(o.i("depth"));
  u.width = o.i("width");
  u.dtype = run_dtype(o);
  u.seed = static_cast<uint64_t>(o.i("seed"));
  DFX_CHECK(u.depth >= 1 && u.depth <= 8, "--depth must be in 1..8, got ", u.depth);
  DFX_CHECK(u.width >= 1, "--width must be >= 1, got ", u.width);
  u.batch_norm.recompute_input = o.b("bn_recompute");
  u.checkpoint = o.b("activation_checkpoint");
  // Both keep fewer activations than a second derivative needs.
  for (const auto& [key, flag] : {std::pair{"bn_recompute", "--bn-recompute"},
                                  std::pair{"activation_checkpoint", "--activation-checkpoint"}}) {
    const std::string& opt = o.s("optimizer");
    DFX_CHECK(!o.b(key) || (opt != "newton-cg" && opt != "adahessian"), flag, " keeps fewer "
              "activations than a second derivative needs, so the network cannot be "
              "differentiated twice; --optimizer ", opt, " needs Hessian-vector products: drop ",
              flag, " or use a first-order optimiser");
  }
  const int64_t div = int64_t{1} << (u.depth - 1);
  DFX_CHECK(o.i("res") % div == 0, "--res ", o.i("res"), " is not divisible by 2^(depth-1) = ", div,
            " (the U-Net halves the grid depth-1 times); pick a multiple of ", div);
  auto model = std::make_shared<nn::UNet>(u);
  if (!device.is_cpu()) model->to(device);  // initialised on the CPU: the same weights anywhere
  if (o.b("channels_last")) model->to(MemoryFormat::ChannelsLast);
  return model;
}

void apply_optimizer_defaults(Options& o) {
  // Each method's customary rate when the user gave none (Adam's 1e-3 would stall L-BFGS).
  if (o.given("lr")) return;
  const std::string& name = o.s("optimizer");
  if (name == "lbfgs") o.set("lr", "1");
  else if (name == "adahessian") o.set("lr", "0.15");
  else if (name == "sgd" || name == "lars") o.set("lr", "0.01");
}

std::unique_ptr<optim::Optimizer> build_optimizer(const Options& o, std::vector<ad::Var> params) {
  const std::string& name = o.s("optimizer");
  if (name == "sgd") {
    optim::SGDOptions s;
    s.lr = o.f("lr");
    s.momentum = o.f("momentum");
    s.weight_decay = o.f("weight_decay");
    return std::make_unique<optim::SGD>(std::move(params), s);
  }
  if (name == "lamb") {
    optim::LAMBOptions l;
    l.lr = o.f("lr");
    l.weight_decay = o.f("weight_decay");
    return std::make_unique<optim::LAMB>(std::move(params), l);
  }
  if (name == "lars") {
    optim::LARSOptions l;
    l.lr = o.f("lr");
    l.momentum = o.f("momentum");
    l.weight_decay = o.f("weight_decay");
    return std::make_unique<optim::LARS>(std::move(params), l);
  }
  if (name == "lbfgs") {
    optim::LBFGSOptions l;
    l.lr = o.f("lr");
    l.history_size = static_cast<int>(o.i("history_size"));
    return std::make_unique<optim::LBFGS>(std::move(params), l);
  }
  if (name == "newton-cg") {
    optim::NewtonCGOptions n;
    n.initial_radius = o.f("trust_radius");
    n.max_cg_iter = static_cast<int>(o.i("cg_iters"));
    n.cg_forcing = o.f("cg_forcing");
    n.precondition = o.b("precondition");
    n.seed = static_cast<uint64_t>(o.i("seed"));
    return std::make_unique<optim::NewtonCG>(std::move(params), n);
  }
  if (name == "adahessian") {
    optim::AdaHessianOptions h;
    h.lr = o.f("lr");
    h.weight_decay = o.f("weight_decay");
    h.hessian_power = o.f("hessian_power");
    h.update_every = static_cast<int>(o.i("hessian_every"));
    h.seed = static_cast<uint64_t>(o.i("seed"));
    return std::make_unique<optim::AdaHessian>(std::move(params), h);
  }
  optim::AdamOptions a;
  a.lr = o.f("lr");
  a.weight_decay = o.f("weight_decay");
  a.decoupled_weight_decay = name == "adamw";
  return std::make_unique<optim::Adam>(std::move(params), a);
}

optim::Schedule build_schedule(const Options& o, int64_t total_steps) {
  optim::Schedule s;
  s.kind = optim::Schedule::parse_kind(o.s("schedule"));
  s.base_lr = o.f("lr");
  s.total_steps = total_steps;
  s.min_lr = o.f("lr_min");
  s.gamma = o.f("gamma");
  s.step_size = o.i("step_size");
  s.warmup_steps = o.i("warmup_steps");
  DFX_CHECK(s.warmup_steps >= 0 && s.step_size >= 1, "--warmup-steps must be >= 0 and --step-size >= 1");
  const std::string& m = o.s("milestones");
  size_t pos = 0;
  while (pos < m.size()) {
    size_t comma = m.find(',', pos);
    std::string item = m.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    try {
      s.milestones.push_back(std::stoll(item));
    } catch (...) {
      DFX_FAIL("--milestones: '", item, "' is not a step number; expected e.g. 1000,1500");
    }
    pos = comma == std::string::npos ? m.size() : comma + 1;
  }
  return s;
}

void save_run_checkpoint(const std::string& path, const nn::Module& model,
                         const optim::Optimizer* opt, const nlohmann::json& config, int64_t step,
                         int64_t epoch) {
  nn::Named<Tensor> tensors = model.state_dict();
  if (opt)
    for (const auto& [k, t] : opt->state()) tensors.emplace_back("optim." + k, t);
  nn::Metadata meta;
  meta["config"] = config.dump();
  meta["step"] = std::to_string(step);
  meta["epoch"] = std::to_string(epoch);
  meta["format"] = "dfx run checkpoint 1";
  nn::save_safetensors(path, tensors, meta);
}

static LoadedCheckpoint parse_meta(const std::string& path, const nn::Metadata& meta) {
  auto it = meta.find("config");
  DFX_CHECK(it != meta.end(), "checkpoint '", path, "' has no run configuration in its metadata; "
            "expected a file written by dfx train");
  LoadedCheckpoint c;
  try {
    c.config = nlohmann::json::parse(it->second);
    c.step = std::stoll(meta.at("step"));
    c.epoch = std::stoll(meta.at("epoch"));
  } catch (const std::exception& e) {
    DFX_FAIL("checkpoint '", path, "' has corrupt metadata: ", e.what());
  }
  return c;
}

LoadedCheckpoint read_checkpoint_metadata(const std::string& path) {
  nn::Metadata meta;
  nn::load_safetensors(path, &meta);
  return parse_meta(path, meta);
}

LoadedCheckpoint load_run_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer* opt) {
  nn::Metadata meta;
  nn::Named<Tensor> all = nn::load_safetensors(path, &meta);
  LoadedCheckpoint c = parse_meta(path, meta);
  nn::Named<Tensor> weights;
  std::map<std::string, Tensor> optim_state;
  for (auto& [k, t] : all) {
    if (k.rfind("optim.", 0) == 0) optim_state[k.substr(6)] = t;
    else weights.emplace_back(k, t);
  }
  nn::load_state_dict(model, weights, true, "checkpoint '" + path + "'");
  if (opt && !optim_state.empty()) opt->load_state(optim_state);
  return c;
}

void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    DFX_CHECK(out.good(), "cannot write '", path, "' (opening ", tmp, " failed)");
    out << text;
    out.flush();
    DFX_CHECK(out.good(), "writing '", tmp, "' failed (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    DFX_FAIL("cannot rename '", tmp, "' to '", path, "'");
  }
}

void ensure_directory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  DFX_CHECK(!ec && std::filesystem::is_directory(dir), "cannot create output directory '", dir,
            "': ", ec ? ec.message() : "not a directory");
  DFX_CHECK(::access(dir.c_str(), W_OK) == 0, "output directory '", dir, "' is not writable");
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
