// Gradient averaging across a group in few large collectives: parameters'
// gradients are packed into flat buckets of at most a given size (PyTorch
// DDP's reducer does the same, 25 MiB by default), one allreduce each.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "comm/communicator.h"

namespace stylefleet {

class GradientBuckets {
 public:
  /// Buckets are filled in reverse parameter order (the order backward produces
  /// gradients), each up to `cap_bytes` (a larger single parameter gets its own).
  GradientBuckets(std::vector<torch::Tensor> params, size_t cap_bytes);

  /// Collective: replaces every parameter's .grad() with its mean over `comm`.
  /// A parameter without a gradient contributes zeros.
  void AllReduceAverage(Communicator& comm);

  size_t bucket_count() const { return buckets_.size(); }
  /// Parameter indices of bucket i.
  const std::vector<size_t>& bucket(size_t i) const { return buckets_[i].params; }
  /// Seconds spent in collectives by the last AllReduceAverage.
  double last_seconds() const { return last_seconds_; }
  size_t total_bytes() const { return total_bytes_; }

 private:
  struct Bucket {
    std::vector<size_t> params;
    torch::Tensor flat;  // float32, contiguous, reused every step
  };
  std::vector<torch::Tensor> params_;
  std::vector<Bucket> buckets_;
  double last_seconds_ = 0;
  size_t total_bytes_ = 0;
};

}  // namespace stylefleet
