// autodiff/var.h — differentiable values and the reverse-mode tape.
// A Var is a Tensor plus, when it takes part in differentiation, a Node of the graph. Every op's
// backward rule is written in Var ops (autodiff/ops.h), so running backward with create_graph
// records the backward pass itself and gradients of gradients work to any order.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace dfx::ad {

class Var;
struct Node;

// Backward rule: given the op's output (value and node) and the gradient flowing into it, the
// gradient for each input (an undefined Var where an input needs none).
using BackwardFn = std::function<std::vector<Var>(const Var& out, const Var& grad)>;
using GradHook = std::function<void(const Var& grad)>;

class Var {
 public:
  Var() = default;
  Var(Tensor data, bool requires_grad = false);  // NOLINT: a Tensor converts to a constant Var

  bool defined() const { return data_.defined(); }
  const Tensor& data() const { return data_; }
  // Replaces the values in place (same storage, e.g. an optimiser update); never recorded.
  Tensor& mutable_data() { return data_; }

  const Shape& shape() const { return data_.shape(); }
  int dim() const { return data_.dim(); }
  int64_t size(int64_t d) const { return data_.size(d); }
  int64_t numel() const { return data_.numel(); }
  DType dtype() const { return data_.dtype(); }
  Device device() const { return data_.device(); }
  double item() const { return data_.item(); }

  bool requires_grad() const { return node_ != nullptr; }
  // Makes this Var a leaf of the graph (or a constant again with false).
  Var& requires_grad_(bool on = true);
  bool is_leaf() const;
  const char* op_name() const;  // "leaf", "constant" or the op that produced it
  Var detach() const { return Var(data_); }

  // The accumulated gradient of a leaf (undefined until a backward reaches it).
  Var grad() const;
  void set_grad(const Var& g);
  void zero_grad();

  // Reverse pass from this Var. A non-scalar needs grad_output of the same shape.
  // retain_graph keeps the graph for another backward; create_graph records the pass itself.
  void backward(const Var& grad_output = Var(), bool retain_graph = false,
                bool create_graph = false) const;

  // Called once per backward when this leaf's gradient is final (all contributions added), with
  // the accumulated gradient. The distributed reducer starts its all-reduces from here.
  void register_grad_ready_hook(GradHook hook);

  const std::shared_ptr<Node>& node() const { return node_; }
  Var(Tensor data, std::shared_ptr<Node> node) : data_(std::move(data)), node_(std::move(node)) {}

 private:
  Tensor data_;
  std::shared_ptr<Node> node_;
};

// One vertex of the tape: a leaf (requires_grad, accumulates .grad) or an op output.
struct Node {
  const char* op = "leaf";
  bool is_leaf = true;
  uint64_t seq = 0;                           // creation order; backward runs in reverse
  std::vector<std::shared_ptr<Node>> inputs;  // nullptr for inputs that need no gradient
  BackwardFn backward;                        // empty for leaves and after release
  Tensor saved_output;                        // the op's value, when its rule needs it
  bool saves_output = false;
  bool released = false;
  Var grad;                                   // leaves only
  std::vector<GradHook> hooks;                // leaves only
};

// Gradients are recorded only while grad mode is on (default). Thread-local.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;
 private:
  bool prev_;
};
class EnableGradGuard {
 public:
  explicit EnableGradGuard(bool on);
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;
 private:
  bool prev_;
};

// Records an op: `out` gets a node whose inputs are `inputs`' nodes, unless grad mode is off or
// no input requires grad (then `out` is returned as a constant). Used by every rule in ops.cpp.
Var record(const char* op, Tensor out, const std::vector<Var>& inputs, BackwardFn backward,
           bool saves_output = false);

// d(sum_i <outputs_i, grad_outputs_i>)/d inputs, without touching any .grad. Inputs that the
// outputs do not depend on get zeros. With create_graph the results are themselves differentiable.
std::vector<Var> grad(const std::vector<Var>& outputs, const std::vector<Var>& inputs,
                      const std::vector<Var>& grad_outputs = {}, bool retain_graph = false,
                      bool create_graph = false);

// Jacobian-vector products: for each output y_k, sum_i (d y_k / d inputs_i) tangents_i (no graph).
// Forward mode by the double-VJP construction: z -> J^T z is linear in z, so the VJP of J^T z
// with the tangents is J v. No tangent rules per op; the outputs' graph is kept. Needs a
// twice-differentiable graph (no recompute checkpoints). A fresh jvp() is Jacobian(...).apply().
std::vector<Tensor> jvp(const std::vector<Var>& outputs, const std::vector<Var>& inputs,
                        const std::vector<Tensor>& tangents);

// The Jacobian of outputs w.r.t. inputs at the current point, as an operator: the differentiable
// J^T z pass runs once, here; every apply(v) = J v is then one more reverse pass and every
// transpose_apply(w) = J^T w a plain one, which is what the products of a Gauss-Newton step at
// one point need. Stale once the inputs change.
class Jacobian {
 public:
  Jacobian(std::vector<Var> outputs, std::vector<Var> inputs);
  std::vector<Tensor> apply(const std::vector<Tensor>& tangents) const;        // J v, per output
  std::vector<Tensor> transpose_apply(const std::vector<Tensor>& w) const;     // J^T w, per input

 private:
  std::vector<Var> outputs_, inputs_, z_, jtz_;
};

// Hessian-vector product of the scalar loss_fn() w.r.t. params in direction v (one Tensor per
// param), by double backward. The returned Tensors carry no graph.
std::vector<Tensor> hvp(const std::function<Var()>& loss_fn, const std::vector<Var>& params,
                        const std::vector<Tensor>& v);
// Same, from a loss already computed with its graph (the graph is not released).
std::vector<Tensor> hvp(const Var& loss, const std::vector<Var>& params,
                        const std::vector<Tensor>& v);

// The Hessian of a scalar loss at the current parameter values, as an operator. The forward and
// the differentiable backward run once, here; every apply(v) is then one more reverse pass (about
// two gradients' worth of work instead of three for a fresh hvp()), which is what Newton-CG's
// inner iterations and Hutchinson probes at one point need. Stale once the parameters change.
class Hessian {
 public:
  Hessian(const Var& loss, const std::vector<Var>& params);
  // The gradient at this point (no graph).
  const std::vector<Tensor>& gradient() const { return gradient_; }
  double loss() const { return loss_; }
  // H v, one Tensor per parameter (no graph); the gradient graph is kept for the next call.
  std::vector<Tensor> apply(const std::vector<Tensor>& v) const;

 private:
  std::vector<Var> params_, g_;
  std::vector<Tensor> gradient_;
  double loss_ = 0;
};

}  // namespace dfx::ad
