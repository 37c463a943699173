// The optimizer of the transformer networks.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace stylefleet {

/// Adam (Kingma & Ba) with PyTorch's update order, so that a step matches
/// torch.optim.Adam. Owning the state (rather than torch::optim::Adam) keeps
/// checkpoints plain tensors that resume bit for bit.
class Adam {
 public:
  Adam(std::vector<torch::Tensor> params, double learning_rate, double beta1 = 0.9,
       double beta2 = 0.999, double eps = 1e-8);
  /// One update from the parameters' .grad().
  void Step();
  void ZeroGrad();
  int64_t steps() const { return steps_; }
  /// State as (name suffix -> tensor) for parameter i: exp_avg, exp_avg_sq.
  torch::Tensor& exp_avg(size_t i) { return exp_avg_[i]; }
  torch::Tensor& exp_avg_sq(size_t i) { return exp_avg_sq_[i]; }
  void set_steps(int64_t steps) { steps_ = steps; }
  void set_learning_rate(double lr) { learning_rate_ = lr; }
  const std::vector<torch::Tensor>& params() const { return params_; }

 private:
  std::vector<torch::Tensor> params_, exp_avg_, exp_avg_sq_;
  double learning_rate_, beta1_, beta2_, eps_;
  int64_t steps_ = 0;
};

}  // namespace stylefleet
