// models/module.h — the Module base: a tree of modules owning named parameters (Vars) and buffers
// (Tensors), addressed by dotted paths equal to PyTorch's state_dict keys of the peer network, with
// train/eval, zero_grad, in-place device/dtype moves, seeded initialisation and a summary.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autodiff/var.h"
#include "core/tensor.h"

namespace dfx::nn {

using ad::Var;

template <class T>
using Named = std::vector<std::pair<std::string, T>>;

// The RNG stream of a parameter: FNV-1a of its dotted path, so that each parameter draws its own
// numbers and adding a module elsewhere in the tree does not change anyone else's.
uint64_t param_stream(const std::string& dotted_name);

class Module {
 public:
  explicit Module(std::string type_name);
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Single-input forward; modules without one (ModuleList) throw naming their type.
  virtual Var forward(const Var& x);
  Var operator()(const Var& x) { return forward(x); }

  const std::string& type_name() const { return type_name_; }

  // ---- registration (names are single path components: no dots, unique within the module) ----
  // The returned references stay valid for the module's life (to() replaces their contents).
  Var& register_parameter(const std::string& name, Tensor value, bool requires_grad = true);
  Tensor& register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // ---- the tree, in registration order (own entries first, then children, recursively) ----
  std::vector<Var> parameters() const;
  Named<Var> named_parameters() const;
  Named<Tensor> named_buffers() const;
  // Parameters' values and buffers in PyTorch's state_dict order (per module: its parameters,
  // its buffers, then its children). The Tensors share storage with the module.
  Named<Tensor> state_dict() const;
  const Named<std::shared_ptr<Module>>& named_children() const { return children_; }
  std::vector<std::shared_ptr<Module>> children() const;
  Named<Module*> named_modules();  // this module first, under the name ""

  // Lookup by dotted path; throws naming the path and what exists.
  Var& parameter(const std::string& dotted);
  Tensor& buffer(const std::string& dotted);
  Module& submodule(const std::string& dotted);

  int64_t num_parameters() const;  // elements, not tensors
  int64_t num_buffer_elements() const;

  // ---- modes and state ----
  void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();            // drops every parameter's .grad
  // Moves parameters (and their gradients) and buffers to `device` in place: the module's own
  // Vars keep their graph nodes, so hooks and requires_grad survive. Copies taken earlier through
  // parameters() still hold the old storage: take them again after a move.
  void to(Device device);
  // Converts floating parameters and buffers (not integer ones such as num_batches_tracked).
  void to(DType dtype);
  // Lays 3-5-dim parameters (convolution weights) out channels-last, or back (PyTorch's
  // model.to(memory_format=...)). A convolution with a channels-last weight returns a
  // channels-last result, so activations stay channels-last through the network.
  void to(MemoryFormat format);
  Device device() const;  // of the first parameter or buffer (CPU when there is none)

  // Re-draws every parameter of the tree with its module's default rule, parameter p from
  // (seed, param_stream(p's dotted path from this module)): reproducible from the seed alone.
  void init_parameters(uint64_t seed);

  // An indented tree: one line per module with its description and parameter count (subtree),
  // then the totals.
  std::string summary() const;
  // One-line description of this module's configuration, e.g. "Conv2d(1, 16, kernel=3, ...)".
  virtual std::string describe() const { return type_name_; }

 protected:
  // Draws this module's own parameters (not children's); `prefix` is its dotted path with a
  // trailing dot, to be combined with param_stream.
  virtual void reset_parameters(uint64_t seed, const std::string& prefix) {}
  void add_child(const std::string& name, std::shared_ptr<Module> module);

 private:
  struct ParamSlot {
    std::string name;
    std::unique_ptr<Var> var;
  };
  struct BufferSlot {
    std::string name;
    std::unique_ptr<Tensor> tensor;
  };
  void check_new_name(const std::string& name, const char* what) const;
  void collect_parameters(const std::string& prefix, Named<Var>& out) const;
  void collect_buffers(const std::string& prefix, Named<Tensor>& out) const;
  void collect_state(const std::string& prefix, Named<Tensor>& out) const;
  void collect_modules(const std::string& prefix, Named<Module*>& out);
  void init_recursive(uint64_t seed, const std::string& prefix);
  void summary_lines(const std::string& name, int indent,
                     std::vector<std::pair<std::string, int64_t>>& lines) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<ParamSlot> params_;
  std::vector<BufferSlot> buffers_;
  Named<std::shared_ptr<Module>> children_;
};

// Children by index ("0", "1", ...) and no forward of its own: the levels of a U-Net.
class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> module) {
    add_child(std::to_string(size()), module);
    return module;
  }
  size_t size() const { return named_children().size(); }
  Module& operator[](size_t i) const;
  std::shared_ptr<Module> at(size_t i) const;

 protected:
  explicit ModuleList(std::string type_name) : Module(std::move(type_name)) {}
};

// Children by index, applied in order.
class Sequential : public ModuleList {
 public:
  Sequential() : ModuleList("Sequential") {}
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);
  Var forward(const Var& x) override;
};

// "482,449"
std::string format_count(int64_t n);

}  // namespace dfx::nn
