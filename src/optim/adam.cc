#include "optim/adam.h"

#include <cmath>

namespace stylefleet {

Adam::Adam(std::vector<torch::Tensor> params, double learning_rate, double beta1, double beta2,
           double eps)
    : params_(std::move(params)),
      learning_rate_(learning_rate),
      beta1_(beta1),
      beta2_(beta2),
      eps_(eps) {
  for (const auto& p : params_) {
    exp_avg_.push_back(torch::zeros_like(p));
    exp_avg_sq_.push_back(torch::zeros_like(p));
  }
}

void Adam::ZeroGrad() {
  for (auto& p : params_) {
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
}

void Adam::Step() {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double bias_correction1 = 1 - std::pow(beta1_, double(steps_));
  const double bias_correction2 = 1 - std::pow(beta2_, double(steps_));
  const double step_size = learning_rate_ / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  for (size_t i = 0; i < params_.size(); ++i) {
    const torch::Tensor& grad = params_[i].grad();
    if (!grad.defined()) continue;
    // Same operations, in the same order, as torch.optim.Adam's single-tensor path.
    exp_avg_[i].mul_(beta1_).add_(grad, 1 - beta1_);
    exp_avg_sq_[i].mul_(beta2_).addcmul_(grad, grad, 1 - beta2_);
    const torch::Tensor denom = (exp_avg_sq_[i].sqrt() / bias_correction2_sqrt).add_(eps_);
    params_[i].addcdiv_(exp_avg_[i], denom, -step_size);
  }
}

}  // namespace stylefleet
