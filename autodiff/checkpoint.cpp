// autodiff/checkpoint.cpp — see checkpoint.h.
#include "autodiff/checkpoint.h"

namespace dfx::ad {
namespace {

thread_local bool t_recompute = false;

class RecomputeGuard {
 public:
  RecomputeGuard() : prev_(t_recompute) { t_recompute = true; }
  ~RecomputeGuard() { t_recompute = prev_; }
  RecomputeGuard(const RecomputeGuard&) = delete;
  RecomputeGuard& operator=(const RecomputeGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace

bool in_checkpoint_recompute() { return t_recompute; }

Var checkpoint(const CheckpointFn& fn, const std::vector<Var>& inputs,
               const std::vector<Var>& params) {
  bool any = false;
  for (const Var& v : inputs) any = any || v.requires_grad();
  for (const Var& p : params) any = any || p.requires_grad();
  if (!grad_enabled() || !any) return fn(inputs);

  // The forward keeps nothing inside the part: it runs with grad off on the inputs' values.
  Tensor out;
  {
    NoGradGuard off;
    std::vector<Var> values;
    for (const Var& v : inputs) values.emplace_back(v.data());
    out = fn(values).data();
  }
  std::vector<Var> all = inputs;
  all.insert(all.end(), params.begin(), params.end());
  std::vector<Tensor> saved;
  std::vector<bool> needs;
  for (const Var& v : inputs) {
    saved.push_back(v.data());
    needs.push_back(v.requires_grad());
  }
  const size_t n_in = inputs.size();
  return record("checkpoint", out, all,
                [fn, saved, needs, params, n_in](const Var&, const Var& g) {
                  DFX_CHECK(!grad_enabled(), "checkpoint: a checkpointed part (e.g. dfx train "
                            "--activation-checkpoint) cannot be differentiated twice "
                            "(create_graph: HVP, Newton-CG, AdaHessian); run without "
                            "checkpointing for second order");
                  // Fresh leaves for the inputs, so the re-run's graph ends at them and at the
                  // parameters, and nothing below this part is touched.
                  std::vector<Var> xs, wrt;
                  std::vector<size_t> slot;
                  for (size_t i = 0; i < saved.size(); ++i) {
                    xs.emplace_back(saved[i], static_cast<bool>(needs[i]));
                    if (needs[i]) {
                      wrt.push_back(xs.back());
                      slot.push_back(i);
                    }
                  }
                  for (size_t j = 0; j < params.size(); ++j)
                    if (params[j].requires_grad()) {
                      wrt.push_back(params[j]);
                      slot.push_back(n_in + j);
                    }
                  Var y;
                  {
                    RecomputeGuard recompute;
                    EnableGradGuard on(true);
                    y = fn(xs);
                  }
                  std::vector<Var> grads(n_in + params.size());
                  if (wrt.empty() || !y.requires_grad()) return grads;
                  // grad() leaves the parameters' .grad alone; this op's caller accumulates.
                  std::vector<Var> gw = grad({y}, wrt, {g});
                  for (size_t k = 0; k < wrt.size(); ++k) grads[slot[k]] = gw[k];
                  return grads;
                });
}

}  // namespace dfx::ad
