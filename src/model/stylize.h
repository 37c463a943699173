// Stylizing one image of any size with a trained transformer: what `stylize`
// writes and what a run's final images are.
#pragma once

#include <torch/torch.h>

#include "model/transformer_net.h"

namespace stylefleet {

/// Pads `image` (N x 3 x H x W) for the network: to a multiple of 4 per side
/// (it halves twice) and at least 8 (its quarter-resolution layers
/// reflect-pad by one pixel, which needs two there). Reflection where the pad
/// is smaller than the side, replication for tiny images; the caller crops
/// the result back to H x W.
torch::Tensor PadForNetwork(const torch::Tensor& image);

/// `net`'s stylization of `image` (N x 3 x H x W, RGB 0..255, any H, W >= 1,
/// on the network's device): padded, run in one pass or, when a side exceeds
/// `tile` (> 0), in tiles of that size (model/tiled_forward.h: the same
/// result in less memory), cropped back to H x W and clamped to 0..255.
/// Inference only: runs without gradients.
torch::Tensor StylizeTensor(TransformerNet& net, const torch::Tensor& image, int64_t tile);

}  // namespace stylefleet
