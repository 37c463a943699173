#include "step/gradient_buckets.h"

#include <chrono>

#include "common/error.h"

namespace stylefleet {

GradientBuckets::GradientBuckets(std::vector<torch::Tensor> params, size_t cap_bytes)
    : params_(std::move(params)) {
  Bucket current;
  size_t current_bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const size_t bytes = static_cast<size_t>(params_[k].numel()) * sizeof(float);
    if (!current.params.empty() && current_bytes + bytes > cap_bytes) {
      buckets_.push_back(std::move(current));
      current = Bucket();
      current_bytes = 0;
    }
    current.params.push_back(k);
    current_bytes += bytes;
    total_bytes_ += bytes;
  }
  if (!current.params.empty()) buckets_.push_back(std::move(current));
  for (auto& bucket : buckets_) {
    int64_t numel = 0;
    for (size_t k : bucket.params) numel += params_[k].numel();
    bucket.flat =
        torch::empty({numel}, params_[bucket.params.front()].options().dtype(torch::kFloat32));
  }
}

void GradientBuckets::AllReduceAverage(Communicator& comm) {
  torch::NoGradGuard no_grad;
  last_seconds_ = 0;
  for (auto& bucket : buckets_) {
    int64_t offset = 0;
    for (size_t k : bucket.params) {
      const int64_t n = params_[k].numel();
      torch::Tensor slot = bucket.flat.narrow(0, offset, n);
      const torch::Tensor& grad = params_[k].grad();
      if (grad.defined()) {
        slot.copy_(grad.reshape({n}));
      } else {
        slot.zero_();
      }
      offset += n;
    }
    const auto start = std::chrono::steady_clock::now();
    comm.AllReduceAverage(
        bucket.flat.data_ptr<float>(), static_cast<size_t>(bucket.flat.numel()),
        "gradient bucket " + std::to_string(&bucket - buckets_.data()) + " allreduce");
    last_seconds_ +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    offset = 0;
    for (size_t k : bucket.params) {
      const int64_t n = params_[k].numel();
      torch::Tensor& grad = params_[k].mutable_grad();
      if (!grad.defined()) grad = torch::zeros_like(params_[k]);
      grad.copy_(bucket.flat.narrow(0, offset, n).view_as(grad));
      offset += n;
    }
  }
}

}  // namespace stylefleet
