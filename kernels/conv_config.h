// kernels/conv_config.h — process-wide switches of the convolution family: on CUDA which
// implementation runs (dfx's own kernels, cuDNN, or an autotuner that times both per shape),
// whether float32 may use TF32 tensor cores, and whether only deterministic algorithms may run;
// on the CPU whether float32 may use bf16 AMX tiles.
// Each switch starts from an environment variable (read at first use) and has a setter, like
// PyTorch's torch.backends flags. Plain C++: usable with or without CUDA.
#pragma once
#include <string>
#include <vector>

namespace dfx::kernels {

// Native: kernels/cuda/conv.cu. Cudnn: the fastest allowed cuDNN algorithm, timed once per
// shape. Auto: times dfx's kernel and the cuDNN algorithms the first time a shape is seen and
// runs the winner from then on; without cuDNN it is Native. CPU tensors ignore the choice.
enum class ConvBackend { Auto, Native, Cudnn };

const char* conv_backend_name(ConvBackend b);  // "auto", "native", "cudnn"
// "auto", "native" or "cudnn"; anything else throws naming `source` and the accepted values.
ConvBackend parse_conv_backend(const std::string& text, const std::string& source);

// Built with cuDNN (config.h DFX_HAVE_CUDNN)?
bool cudnn_available();

// The backend of CUDA convolutions whose ConvGeometry::backend is unset. Starts as
// DFX_CONV_BACKEND (auto|native|cudnn), else Native: dfx's own kernels are deterministic and
// bitwise reproducible from run to run, which an autotuner's timing-dependent choice is not, so
// Auto and Cudnn are opt-in. Setting Cudnn in a build without cuDNN throws.
ConvBackend conv_backend();
void set_conv_backend(ConvBackend b);

// May float32 convolutions (and, once kernels/cuda/gemm.cu reads it, cuBLAS GEMMs) use TF32
// tensor cores (10-bit mantissa products, about 1e-3 relative error)? Starts as DFX_TF32
// (1/0, true/false, on/off), else false: dfx keeps float32 results float32-accurate unless asked,
// as PyTorch's allow_tf32 flags. When false, cuDNN runs with CUDNN_FMA_MATH and only its
// GEMM-like algorithms (no FFT or Winograd transforms, which lose accuracy too).
bool allow_tf32();
void set_allow_tf32(bool on);

// May float32 CPU convolutions with kernels larger than 1x1 run their GEMMs on AMX tiles, with
// the operands rounded to bfloat16 (8-bit mantissa, about 4e-3 relative per product) and float32
// sums (kernels/cpu/amx_gemm.h)? Starts as DFX_AMX_BF16, else false. 1x1 convolutions (the
// U-Net's output head), float64 and CPUs without AMX stay in float32/float64 BLAS. The sums run
// in a fixed order, so results still do not depend on the thread count.
bool allow_amx_bf16();
void set_allow_amx_bf16(bool on);
// This CPU has AMX-BF16 and the kernel granted this process the tile state.
bool amx_bf16_available();
// allow_amx_bf16() && amx_bf16_available(): the CPU convolutions really use the tiles.
bool amx_bf16_active();

// Only deterministic algorithms (same bits from run to run for the same shapes and choice)?
// Starts as DFX_CONV_DETERMINISTIC, else true: dfx's own kernels are all deterministic, and this
// keeps cuDNN's atomics-based backward algorithms out.
bool conv_deterministic();
void set_conv_deterministic(bool on);

// Print each autotune decision (key, every candidate and its time) to stderr? DFX_CONV_LOG.
bool conv_log();
void set_conv_log(bool on);

// Re-reads DFX_CONV_BACKEND, DFX_TF32, DFX_AMX_BF16, DFX_CONV_DETERMINISTIC and DFX_CONV_LOG,
// replacing the values set so far (for programs and tests that change the environment after
// start). Throws on a malformed value, naming the variable.
void reload_conv_settings_from_env();
// "1"/"true"/"on"/"yes" -> true, "0"/"false"/"off"/"no"/"" -> false (case-insensitive); anything
// else throws naming `name`.
bool parse_env_flag(const std::string& name, const std::string& value);

// One autotuner decision: the cache key (op, dtype, shapes and strides, geometry, tf32,
// deterministic, device, mode), the winner ("native" or "cudnn <algo> (<math>)") and every
// candidate with its time or why it was skipped. Empty without cuDNN.
struct ConvTuneRecord {
  std::string key, choice, candidates;
};
std::vector<ConvTuneRecord> conv_tune_records();
// Forgets every decision, so the next call of each shape is timed again.
void clear_conv_tune_cache();

}  // namespace dfx::kernels
