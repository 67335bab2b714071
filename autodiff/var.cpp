// autodiff/var.cpp — the tape engine: recording, the reverse pass (Kahn's order over the nodes
// reachable from the outputs, newest first), leaf accumulation with grad-ready hooks, graph
// release, grad() and Hessian-vector products.
#include "autodiff/var.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <queue>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "autodiff/ops.h"
#include "kernels/elementwise.h"

namespace dfx::ad {
namespace {
thread_local bool t_grad_enabled = true;
std::atomic<uint64_t> g_seq{0};
}  // namespace

bool grad_enabled() { return t_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = prev_; }
EnableGradGuard::EnableGradGuard(bool on) : prev_(t_grad_enabled) { t_grad_enabled = on; }
EnableGradGuard::~EnableGradGuard() { t_grad_enabled = prev_; }

Var::Var(Tensor data, bool requires_grad) : data_(std::move(data)) {
  if (requires_grad) requires_grad_(true);
}

Var& Var::requires_grad_(bool on) {
  if (!on) {
    node_.reset();
    return *this;
  }
  DFX_CHECK(is_floating(data_.dtype()), "requires_grad_: only floating tensors can require "
            "gradients, got ", data_.describe());
  if (node_ && node_->is_leaf) return *this;
  DFX_CHECK(!node_, "requires_grad_: this Var is the output of '", node_->op,
            "'; detach() it first to make a new leaf");
  node_ = std::make_shared<Node>();
  node_->seq = g_seq.fetch_add(1);
  return *this;
}

bool Var::is_leaf() const { return !node_ || node_->is_leaf; }
const char* Var::op_name() const { return node_ ? node_->op : "constant"; }

Var Var::grad() const { return node_ ? node_->grad : Var(); }
void Var::set_grad(const Var& g) {
  DFX_CHECK(node_ && node_->is_leaf, "set_grad: only leaves that require grad hold a gradient");
  node_->grad = g;
}
void Var::zero_grad() {
  if (node_) node_->grad = Var();
}

void Var::register_grad_ready_hook(GradHook hook) {
  DFX_CHECK(node_ && node_->is_leaf, "register_grad_ready_hook: needs a leaf that requires grad");
  node_->hooks.push_back(std::move(hook));
}

Var record(const char* op, Tensor out, const std::vector<Var>& inputs, BackwardFn backward,
           bool saves_output) {
  if (!t_grad_enabled) return Var(std::move(out));
  bool any = false;
  for (const Var& v : inputs) any = any || v.requires_grad();
  if (!any) return Var(std::move(out));
  auto node = std::make_shared<Node>();
  node->op = op;
  node->is_leaf = false;
  node->seq = g_seq.fetch_add(1);
  node->inputs.reserve(inputs.size());
  for (const Var& v : inputs) node->inputs.push_back(v.node());
  node->backward = std::move(backward);
  node->saves_output = saves_output;
  if (saves_output) node->saved_output = out;
  return Var(std::move(out), std::move(node));
}

namespace {

// DFX_TAPE_PROFILE=1: wall time of every backward rule, by op and pass kind, printed at exit.
struct RuleProfile {
  bool on = std::getenv("DFX_TAPE_PROFILE") != nullptr;
  std::map<std::string, std::pair<double, long>> t;
  ~RuleProfile() {
    if (!on) return;
    std::vector<std::pair<double, std::string>> rows;
    double total = 0;
    for (auto& [k, v] : t) rows.push_back({v.first, k}), total += v.first;
    std::sort(rows.rbegin(), rows.rend());
    std::fprintf(stderr, "backward rules (DFX_TAPE_PROFILE): %.3f s total\n", total);
    for (auto& [s, k] : rows)
      std::fprintf(stderr, "  %-40s %9.3f s %5.1f%% %8ld calls\n", k.c_str(), s, 100 * s / total, t[k].second);
  }
};
RuleProfile g_profile;

void check_grad_shape(const Var& g, const Tensor& like, const char* where, const char* op) {
  DFX_CHECK(g.shape() == like.shape() && g.dtype() == like.dtype() && g.device() == like.device(),
            where, ": gradient for '", op, "' is ", g.data().describe(), " but its value is ",
            like.describe(), "; expected the same shape, dtype and device");
}

Var accumulate(const Var& acc, const Var& g) {
  if (!acc.defined()) return g;
  return add(acc, g);
}

// The reverse pass shared by backward() and grad(). `targets` maps nodes whose incoming gradient
// the caller wants (grad()) to slots; when `accumulate` is set, leaves accumulate into .grad.
void run_backward(const std::vector<Var>& roots, const std::vector<Var>& root_grads,
                  bool retain_graph, bool create_graph, bool accumulate_leaves,
                  const std::unordered_map<Node*, size_t>& targets, std::vector<Var>& captured) {
  // Discover the graph and count, for every node, how many consumers will send it a gradient.
  std::unordered_map<Node*, int> deps;
  std::unordered_map<Node*, std::shared_ptr<Node>> owner;  // to hand rules an owning output Var
  std::vector<Node*> stack;
  std::unordered_set<Node*> seen;
  for (const Var& r : roots) {
    Node* n = r.node().get();
    if (n && seen.insert(n).second) {
      stack.push_back(n);
      owner[n] = r.node();
    }
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (!n->is_leaf && n->released)
      DFX_FAIL("backward: the graph through '", n->op, "' was already released by an earlier "
               "backward; pass retain_graph=true to that backward to run another one");
    for (const auto& in : n->inputs) {
      if (!in) continue;
      deps[in.get()] += 1;
      if (seen.insert(in.get()).second) {
        stack.push_back(in.get());
        owner[in.get()] = in;
      }
    }
  }

  std::unordered_map<Node*, Var> buffer;
  auto cmp = [](Node* a, Node* b) { return a->seq < b->seq; };
  std::priority_queue<Node*, std::vector<Node*>, decltype(cmp)> ready(cmp);
  for (size_t i = 0; i < roots.size(); ++i) {
    Node* n = roots[i].node().get();
    if (!n) continue;
    buffer[n] = accumulate(buffer[n], root_grads[i]);
  }
  for (const Var& r : roots) {
    Node* n = r.node().get();
    if (n && deps[n] == 0 && seen.erase(n)) ready.push(n);  // erase: push each root once
  }

  EnableGradGuard mode(create_graph);
  std::vector<Node*> visited;
  while (!ready.empty()) {
    Node* n = ready.top();
    ready.pop();
    Var g = std::move(buffer[n]);
    buffer.erase(n);
    if (!create_graph && g.requires_grad()) g = g.detach();
    auto t = targets.find(n);
    if (t != targets.end()) captured[t->second] = g;
    if (n->is_leaf) {
      if (accumulate_leaves && g.defined()) {
        n->grad = n->grad.defined() ? add(n->grad, g) : g;
        for (auto& hook : n->hooks) hook(n->grad);
      }
      continue;
    }
    visited.push_back(n);
    // Rules that use their output see it as part of the graph, so higher orders flow through it.
    Var out(n->saves_output ? n->saved_output : Tensor(),
            create_graph ? owner[n] : std::shared_ptr<Node>());
    auto tr = std::chrono::steady_clock::now();
    std::vector<Var> gins = g.defined() ? n->backward(out, g) : std::vector<Var>(n->inputs.size());
    if (g_profile.on) {
      auto& e = g_profile.t[std::string(n->op) + (create_graph ? " [create_graph]" : "")];
      e.first += std::chrono::duration<double>(std::chrono::steady_clock::now() - tr).count();
      e.second += 1;
    }
    DFX_CHECK(gins.size() == n->inputs.size(), "backward: rule of '", n->op, "' returned ",
              gins.size(), " gradients for ", n->inputs.size(), " inputs");
    for (size_t i = 0; i < gins.size(); ++i) {
      Node* in = n->inputs[i].get();
      if (!in) continue;
      if (gins[i].defined()) buffer[in] = accumulate(buffer[in], gins[i]);
      if (--deps[in] == 0) ready.push(in);
    }
  }
  if (!retain_graph) {
    for (Node* n : visited) {
      n->backward = nullptr;
      n->saved_output = Tensor();
      n->released = true;
    }
  }
}

}  // namespace

void Var::backward(const Var& grad_output, bool retain_graph, bool create_graph) const {
  DFX_CHECK(defined(), "backward: called on an undefined Var");
  DFX_CHECK(requires_grad(), "backward: this Var does not require grad (no leaf it depends on "
            "has requires_grad_(), or it was computed under NoGradGuard)");
  Var g = grad_output;
  if (!g.defined()) {
    DFX_CHECK(numel() == 1, "backward: output is ", data_.describe(),
              ", not a scalar; pass grad_output of the same shape");
    g = Var(ones(data_.shape(), data_.dtype(), data_.device()));
  }
  check_grad_shape(g, data_, "backward", op_name());
  std::vector<Var> captured;
  run_backward({*this}, {g}, retain_graph, create_graph, true, {}, captured);
}

std::vector<Var> grad(const std::vector<Var>& outputs, const std::vector<Var>& inputs,
                      const std::vector<Var>& grad_outputs, bool retain_graph, bool create_graph) {
  DFX_CHECK(grad_outputs.empty() || grad_outputs.size() == outputs.size(), "grad: ",
            grad_outputs.size(), " grad_outputs for ", outputs.size(), " outputs");
  std::vector<Var> gos;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Var& o = outputs[i];
    DFX_CHECK(o.requires_grad(), "grad: output ", i, " (", o.data().describe(),
              ") does not require grad");
    Var g = grad_outputs.empty() ? Var() : grad_outputs[i];
    if (!g.defined()) {
      DFX_CHECK(o.numel() == 1, "grad: output ", i, " is ", o.data().describe(),
                ", not a scalar; pass grad_outputs of the same shape");
      g = Var(ones(o.shape(), o.dtype(), o.device()));
    }
    check_grad_shape(g, o.data(), "grad", o.op_name());
    gos.push_back(g);
  }
  std::unordered_map<Node*, size_t> targets;
  for (size_t i = 0; i < inputs.size(); ++i) {
    DFX_CHECK(inputs[i].requires_grad(), "grad: input ", i, " (", inputs[i].data().describe(),
              ") does not require grad");
    targets[inputs[i].node().get()] = i;
  }
  std::vector<Var> captured(inputs.size());
  run_backward(outputs, gos, retain_graph, create_graph, false, targets, captured);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!captured[i].defined()) captured[i] = Var(zeros_like(inputs[i].data()));
    // Two inputs may be the same node: later slots copy the first capture.
    auto t = targets.find(inputs[i].node().get());
    if (t->second != i) captured[i] = captured[t->second];
  }
  return captured;
}

Jacobian::Jacobian(std::vector<Var> outputs, std::vector<Var> inputs)
    : outputs_(std::move(outputs)), inputs_(std::move(inputs)) {
  for (const Var& o : outputs_) z_.emplace_back(zeros_like(o.data()), true);
  jtz_ = grad(outputs_, inputs_, z_, true, true);  // J^T z, linear in z
}

std::vector<Tensor> Jacobian::apply(const std::vector<Tensor>& tangents) const {
  DFX_CHECK(tangents.size() == inputs_.size(), "jvp: ", tangents.size(), " tangents for ",
            inputs_.size(), " inputs");
  // Inputs an output does not depend on give constant zeros in J^T z: they add nothing to J v.
  std::vector<Var> live, dirs;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    DFX_CHECK(tangents[i].shape() == inputs_[i].shape(), "jvp: tangent ", i, " is ",
              tangents[i].describe(), " but input ", i, " is ", inputs_[i].data().describe());
    if (!jtz_[i].requires_grad()) continue;
    live.push_back(jtz_[i]);
    dirs.emplace_back(tangents[i]);
  }
  std::vector<Tensor> out;
  if (live.empty()) {
    for (const Var& o : outputs_) out.push_back(zeros_like(o.data()));
    return out;
  }
  for (const Var& jv : grad(live, z_, dirs, true, false)) out.push_back(jv.data());
  return out;
}

std::vector<Tensor> Jacobian::transpose_apply(const std::vector<Tensor>& w) const {
  DFX_CHECK(w.size() == outputs_.size(), "Jacobian::transpose_apply: ", w.size(),
            " cotangents for ", outputs_.size(), " outputs");
  std::vector<Var> ws(w.begin(), w.end());
  std::vector<Tensor> out;
  for (const Var& g : grad(outputs_, inputs_, ws, true, false)) out.push_back(g.data());
  return out;
}

std::vector<Tensor> jvp(const std::vector<Var>& outputs, const std::vector<Var>& inputs,
                        const std::vector<Tensor>& tangents) {
  return Jacobian(outputs, inputs).apply(tangents);
}

Hessian::Hessian(const Var& loss, const std::vector<Var>& params) : params_(params) {
  DFX_CHECK(loss.defined() && loss.numel() == 1, "Hessian: the loss must be a scalar, got ",
            loss.data().describe());
  loss_ = loss.data().to(DType::Float64).item();
  g_ = grad({loss}, params, {}, true, true);
  for (const Var& g : g_) gradient_.push_back(g.data());
}

std::vector<Tensor> Hessian::apply(const std::vector<Tensor>& v) const {
  DFX_CHECK(v.size() == params_.size(), "hvp: ", v.size(), " directions for ", params_.size(),
            " parameters");
  Var gv;
  for (size_t i = 0; i < params_.size(); ++i) {
    DFX_CHECK(v[i].shape() == params_[i].shape(), "hvp: direction ", i, " is ", v[i].describe(),
              " but parameter ", i, " is ", params_[i].data().describe());
    if (!g_[i].requires_grad()) continue;  // gradient constant in the parameters: no contribution
    Var term = dot(g_[i], Var(v[i]));
    gv = gv.defined() ? add(gv, term) : term;
  }
  std::vector<Tensor> out;
  if (!gv.defined()) {
    for (const Var& p : params_) out.push_back(zeros_like(p.data()));
    return out;
  }
  std::vector<Var> hv = grad({gv}, params_, {}, true, false);
  for (Var& h : hv) out.push_back(h.data());
  return out;
}

std::vector<Tensor> hvp(const Var& loss, const std::vector<Var>& params,
                        const std::vector<Tensor>& v) {
  return Hessian(loss, params).apply(v);
}

std::vector<Tensor> hvp(const std::function<Var()>& loss_fn, const std::vector<Var>& params,
                        const std::vector<Tensor>& v) {
  return hvp(loss_fn(), params, v);
}

}  // namespace dfx::ad
