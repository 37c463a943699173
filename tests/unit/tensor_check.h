// Comparing stylefleet's tensors with the PyTorch reference's
// (tests/reference/reference.py). Header-only so that only the tests that need
// LibTorch pull it in (test_util.cc stays LibTorch-free).
#pragma once

#include <torch/torch.h>

#include <algorithm>

namespace stylefleet::testing {

/// max |actual - expected| / max |expected|, in float64. One scale per tensor:
/// elementwise ratios would be dominated by elements that are near zero in
/// both (rounding noise), which says nothing about the computation.
inline double MaxRelativeDifference(const torch::Tensor& actual, const torch::Tensor& expected) {
  const torch::Tensor a = actual.detach().to(torch::kFloat64);
  const torch::Tensor e = expected.detach().to(torch::kFloat64);
  const double scale = e.abs().max().item<double>();
  return (a - e).abs().max().item<double>() / std::max(scale, 1e-300);
}

}  // namespace stylefleet::testing
