// models/checkpoint.h — safetensors files (https://github.com/huggingface/safetensors): a u64
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then
// raw little-endian data. Checkpoints hold a Module's state_dict and load into PyTorch as is.
#pragma once
#include <map>
#include <string>

#include "core/tensor.h"
#include "models/module.h"

namespace dfx::nn {

using Metadata = std::map<std::string, std::string>;

// Writes tensors (float32 F32, float64 F64, int64 I64, bool BOOL; any layout or device) in the
// given order, header padded to 8 bytes. Atomic: a temporary file in the same directory, fsync,
// then rename over `path`, so a reader sees the old file or the new one, never a partial one.
void save_safetensors(const std::string& path, const Named<Tensor>& tensors,
                      const Metadata& metadata = {});

// Every tensor of the file as a contiguous CPU Tensor, by name, in file order. Refuses files that
// are truncated, have a malformed header, unsupported dtypes, or offsets that overlap, leave holes
// or run past the data, with a dfx::Error naming the file. metadata, when given, receives
// "__metadata__".
Named<Tensor> load_safetensors(const std::string& path, Metadata* metadata = nullptr);
// Same, as a map for lookup by name.
std::map<std::string, Tensor> load_safetensors_map(const std::string& path,
                                                   Metadata* metadata = nullptr);

// The module's state_dict (parameters and buffers) with optional metadata.
void save_checkpoint(const std::string& path, const Module& module, const Metadata& metadata = {});

// Copies the file's tensors into the module's parameters and buffers in place (storage, device and
// dtype kept; float32 <-> float64 converted). strict: every state_dict key must be present and no
// other key may appear. One dfx::Error lists everything wrong: missing, unexpected, mis-shaped or
// mis-typed names; nothing is modified when it throws. Returns the file's metadata.
Metadata load_checkpoint(const std::string& path, Module& module, bool strict = true);

// As load_checkpoint, from tensors already in memory (e.g. a fixture holding more than weights:
// only the module's keys are taken when strict is false).
void load_state_dict(Module& module, const Named<Tensor>& state, bool strict = true,
                     const std::string& source = "state dict");

}  // namespace dfx::nn
