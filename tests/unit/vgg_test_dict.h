// A loss-network file's tensors for tests: torchvision's VGG-16 feature keys
// and shapes with small random weights (the global LibTorch generator).
#pragma once

#include <torch/torch.h>

#include <string>

#include "model/tensor_file.h"

namespace stylefleet::testing {

inline TensorDict VggTestDict() {
  const int index[] = {0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28};
  const int64_t channels[] = {64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512};
  TensorDict dict;
  int64_t in = 3;
  for (int l = 0; l < 13; ++l) {
    dict.emplace_back("features." + std::to_string(index[l]) + ".weight",
                      torch::randn({channels[l], in, 3, 3}) * 0.05);
    dict.emplace_back("features." + std::to_string(index[l]) + ".bias",
                      torch::zeros({channels[l]}));
    in = channels[l];
  }
  return dict;
}

}  // namespace stylefleet::testing
