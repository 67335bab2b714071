// models/module.cpp — the Module tree: registration, traversal in PyTorch's order, lookups by
// dotted path, mode switches, in-place moves, seeded re-initialisation and the summary table.
#include "models/module.h"

#include <algorithm>
#include <sstream>

#include "core/copy.h"

namespace dfx::nn {

uint64_t param_stream(const std::string& dotted_name) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a, 64-bit
  for (unsigned char c : dotted_name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string format_count(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return n < 0 ? "-" + out : out;
}

Module::Module(std::string type_name) : type_name_(std::move(type_name)) {}

Var Module::forward(const Var& x) {
  DFX_FAIL("Module::forward: ", type_name_, " has no single-input forward; call its parts");
}

void Module::check_new_name(const std::string& name, const char* what) const {
  DFX_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name_, "::register_",
            what, ": name '", name, "' must be non-empty and contain no '.'");
  bool taken = std::any_of(params_.begin(), params_.end(),
                           [&](auto& p) { return p.name == name; }) ||
               std::any_of(buffers_.begin(), buffers_.end(),
                           [&](auto& b) { return b.name == name; }) ||
               std::any_of(children_.begin(), children_.end(),
                           [&](auto& c) { return c.first == name; });
  DFX_CHECK(!taken, type_name_, "::register_", what, ": name '", name, "' is already registered");
}

Var& Module::register_parameter(const std::string& name, Tensor value, bool requires_grad) {
  check_new_name(name, "parameter");
  DFX_CHECK(value.defined(), type_name_, "::register_parameter: '", name, "' is undefined");
  auto var = std::make_unique<Var>(std::move(value), requires_grad);
  params_.push_back({name, std::move(var)});
  return *params_.back().var;
}

Tensor& Module::register_buffer(const std::string& name, Tensor value) {
  check_new_name(name, "buffer");
  DFX_CHECK(value.defined(), type_name_, "::register_buffer: '", name, "' is undefined");
  buffers_.push_back({name, std::make_unique<Tensor>(std::move(value))});
  return *buffers_.back().tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name, "module");
  DFX_CHECK(module != nullptr, type_name_, "::register_module: '", name, "' is null");
  DFX_CHECK(module.get() != this, type_name_, "::register_module: '", name,
            "' is the module itself");
  children_.emplace_back(name, std::move(module));
}

// ---- traversal ----

void Module::collect_parameters(const std::string& prefix, Named<Var>& out) const {
  for (const auto& p : params_) out.emplace_back(prefix + p.name, *p.var);
  for (const auto& [name, child] : children_) child->collect_parameters(prefix + name + ".", out);
}

void Module::collect_buffers(const std::string& prefix, Named<Tensor>& out) const {
  for (const auto& b : buffers_) out.emplace_back(prefix + b.name, *b.tensor);
  for (const auto& [name, child] : children_) child->collect_buffers(prefix + name + ".", out);
}

void Module::collect_state(const std::string& prefix, Named<Tensor>& out) const {
  for (const auto& p : params_) out.emplace_back(prefix + p.name, p.var->data());
  for (const auto& b : buffers_) out.emplace_back(prefix + b.name, *b.tensor);
  for (const auto& [name, child] : children_) child->collect_state(prefix + name + ".", out);
}

void Module::collect_modules(const std::string& prefix, Named<Module*>& out) {
  for (const auto& [name, child] : children_) {
    out.emplace_back(prefix + name, child.get());
    child->collect_modules(prefix + name + ".", out);
  }
}

std::vector<Var> Module::parameters() const {
  std::vector<Var> out;
  for (auto& [name, v] : named_parameters()) out.push_back(v);
  return out;
}

Named<Var> Module::named_parameters() const {
  Named<Var> out;
  collect_parameters("", out);
  return out;
}

Named<Tensor> Module::named_buffers() const {
  Named<Tensor> out;
  collect_buffers("", out);
  return out;
}

Named<Tensor> Module::state_dict() const {
  Named<Tensor> out;
  collect_state("", out);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [name, child] : children_) out.push_back(child);
  return out;
}

Named<Module*> Module::named_modules() {
  Named<Module*> out{{"", this}};
  collect_modules("", out);
  return out;
}

// ---- lookups ----

Module& Module::submodule(const std::string& dotted) {
  Module* m = this;
  size_t start = 0;
  while (start < dotted.size()) {
    size_t dot = dotted.find('.', start);
    std::string part = dotted.substr(start, dot == std::string::npos ? std::string::npos
                                                                     : dot - start);
    auto it = std::find_if(m->children_.begin(), m->children_.end(),
                           [&](auto& c) { return c.first == part; });
    if (it == m->children_.end()) {
      std::string names;
      for (auto& c : m->children_) names += (names.empty() ? "" : ", ") + c.first;
      DFX_FAIL(type_name_, "::submodule: no module '", dotted, "': ", m->type_name_,
               " at '", dotted.substr(0, start), "' has children [", names, "]");
    }
    m = it->second.get();
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return *m;
}

namespace {
std::pair<std::string, std::string> split_last(const std::string& dotted) {
  size_t dot = dotted.rfind('.');
  if (dot == std::string::npos) return {"", dotted};
  return {dotted.substr(0, dot), dotted.substr(dot + 1)};
}
}  // namespace

Var& Module::parameter(const std::string& dotted) {
  auto [path, leaf] = split_last(dotted);
  Module& m = submodule(path);
  for (auto& p : m.params_)
    if (p.name == leaf) return *p.var;
  std::string names;
  for (auto& p : m.params_) names += (names.empty() ? "" : ", ") + p.name;
  DFX_FAIL(type_name_, "::parameter: no parameter '", dotted, "': ", m.type_name_,
           " has parameters [", names, "]");
}

Tensor& Module::buffer(const std::string& dotted) {
  auto [path, leaf] = split_last(dotted);
  Module& m = submodule(path);
  for (auto& b : m.buffers_)
    if (b.name == leaf) return *b.tensor;
  std::string names;
  for (auto& b : m.buffers_) names += (names.empty() ? "" : ", ") + b.name;
  DFX_FAIL(type_name_, "::buffer: no buffer '", dotted, "': ", m.type_name_, " has buffers [",
           names, "]");
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.var->numel();
  for (const auto& [name, child] : children_) n += child->num_parameters();
  return n;
}

int64_t Module::num_buffer_elements() const {
  int64_t n = 0;
  for (const auto& b : buffers_) n += b.tensor->numel();
  for (const auto& [name, child] : children_) n += child->num_buffer_elements();
  return n;
}

// ---- modes and state ----

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& p : params_) p.var->zero_grad();
  for (auto& [name, child] : children_) child->zero_grad();
}

void Module::to(Device device) {
  for (auto& p : params_) {
    Var& v = *p.var;
    if (v.device() == device) continue;
    v.mutable_data() = v.data().to(device);
    if (v.grad().defined()) v.set_grad(Var(v.grad().data().to(device)));
  }
  for (auto& b : buffers_)
    if (b.tensor->device() != device) *b.tensor = b.tensor->to(device);
  for (auto& [name, child] : children_) child->to(device);
}

void Module::to(DType dtype) {
  DFX_CHECK(is_floating(dtype), type_name_, "::to: ", dtype_name(dtype),
            " is not a floating dtype; expected float32 or float64");
  for (auto& p : params_) {
    Var& v = *p.var;
    if (!is_floating(v.dtype()) || v.dtype() == dtype) continue;
    v.mutable_data() = v.data().to(dtype);
    if (v.grad().defined()) v.set_grad(Var(v.grad().data().to(dtype)));
  }
  for (auto& b : buffers_)
    if (is_floating(b.tensor->dtype()) && b.tensor->dtype() != dtype)
      *b.tensor = b.tensor->to(dtype);
  for (auto& [name, child] : children_) child->to(dtype);
}

void Module::to(MemoryFormat format) {
  for (auto& p : params_) {
    Var& v = *p.var;
    const Tensor& t = v.data();
    if (t.dim() < 3 || t.dim() > 5) continue;
    // Exact strides, also where one channel makes both layouts dense (see suggest_memory_format).
    const Shape want = format == MemoryFormat::ChannelsLast ? channels_last_strides(t.shape())
                                                            : contiguous_strides(t.shape());
    if (t.strides() == want) continue;
    Tensor out = Tensor::empty(t.shape(), t.dtype(), t.device(), format);
    copy_(out, t);
    v.mutable_data() = out;
  }
  for (auto& [name, child] : children_) child->to(format);
}

Device Module::device() const {
  if (!params_.empty()) return params_.front().var->device();
  if (!buffers_.empty()) return buffers_.front().tensor->device();
  for (const auto& [name, child] : children_)
    if (child->num_parameters() > 0 || child->num_buffer_elements() > 0) return child->device();
  return Device::cpu();
}

void Module::init_parameters(uint64_t seed) { init_recursive(seed, ""); }

void Module::init_recursive(uint64_t seed, const std::string& prefix) {
  reset_parameters(seed, prefix);
  for (auto& [name, child] : children_) child->init_recursive(seed, prefix + name + ".");
}

// ---- summary ----

void Module::summary_lines(const std::string& name, int indent,
                           std::vector<std::pair<std::string, int64_t>>& lines) const {
  std::string text(2 * indent, ' ');
  if (!name.empty()) text += name + ": ";
  lines.emplace_back(text + describe(), num_parameters());
  for (const auto& [child_name, child] : children_)
    child->summary_lines(child_name, indent + 1, lines);
}

std::string Module::summary() const {
  std::vector<std::pair<std::string, int64_t>> lines;
  summary_lines("", 0, lines);
  size_t text_w = 0, count_w = std::string("parameters").size();
  for (auto& [text, n] : lines) {
    text_w = std::max(text_w, text.size());
    count_w = std::max(count_w, format_count(n).size());
  }
  std::ostringstream os;
  auto row = [&](const std::string& text, const std::string& count) {
    os << text << std::string(text_w + 2 - text.size(), ' ')
       << std::string(count_w - count.size(), ' ') << count << '\n';
  };
  row("module", "parameters");
  for (auto& [text, n] : lines) row(text, format_count(n));
  const auto params = named_parameters();
  const auto buffers = named_buffers();
  os << "total: " << format_count(num_parameters()) << " parameters in " << params.size()
     << " tensors; " << format_count(num_buffer_elements()) << " buffer elements in "
     << buffers.size() << " tensors; " << (training_ ? "training" : "evaluation") << " mode\n";
  return os.str();
}

// ---- containers ----

Module& ModuleList::operator[](size_t i) const { return *at(i); }

std::shared_ptr<Module> ModuleList::at(size_t i) const {
  DFX_CHECK(i < size(), type_name(), "[", i, "]: index out of range; it holds ", size(),
            " modules");
  return named_children()[i].second;
}

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) : ModuleList("Sequential") {
  for (auto& m : modules) push_back(std::move(m));
}

Var Sequential::forward(const Var& x) {
  Var h = x;
  for (const auto& [name, child] : named_children()) h = child->forward(h);
  return h;
}

}  // namespace dfx::nn
