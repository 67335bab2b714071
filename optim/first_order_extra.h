// optim/first_order_extra.h — layer-wise adaptive first-order optimisers for large batches: LAMB
// (You et al. 2020) and LARS (You et al. 2017), with the formulas of the PyTorch community
// implementations (torch-optimizer's Lamb, torchlars' LARS) so results can be cross-checked.
#pragma once
#include "optim/optimizer.h"

namespace dfx::optim {

struct LAMBOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-6;
  double weight_decay = 0.0;
  double clamp_value = 10.0;  // ||p|| is clamped to [0, clamp_value] in the trust ratio
  bool adam = false;          // trust ratio fixed to 1 (plain Adam with L2-in-update)
  bool debias = false;        // step size lr * sqrt(1 - beta2^t) / (1 - beta1^t)
};

class LAMB : public FirstOrder {
 public:
  LAMB(std::vector<ad::Var> params, LAMBOptions opt);
  void apply() override;
  std::string name() const override { return "lamb"; }

 private:
  LAMBOptions opt_;
};

struct LARSOptions {
  double lr = 1e-1;
  double momentum = 0.9;
  double weight_decay = 0.0;
  double trust_coefficient = 1e-3;
  double eps = 1e-8;
};

class LARS : public FirstOrder {
 public:
  LARS(std::vector<ad::Var> params, LARSOptions opt);
  void apply() override;
  std::string name() const override { return "lars"; }

 private:
  LARSOptions opt_;
};

}  // namespace dfx::optim
