// Images as LibTorch tensors: the one conversion between decoded images and
// what the networks take and give.
#pragma once

#include <torch/torch.h>

#include "data/image.h"

namespace stylefleet {

/// An image as a 1 x 3 x H x W float tensor, RGB 0..255 (CPU).
torch::Tensor ImageToTensor(const RgbImage& image);

/// One image from a 3 x H x W or 1 x 3 x H x W tensor (any device), clamped to 0..255.
RgbImage TensorToImage(const torch::Tensor& image);

}  // namespace stylefleet
