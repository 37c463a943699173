// Running the transformer on images too large for one pass without changing
// its result: layer by layer, each convolution in tiles, each instance norm
// with the statistics of the whole image.
#pragma once

#include <torch/torch.h>

#include "model/transformer_net.h"

namespace stylefleet {

/// Equals `net->forward(x)` up to float summation order, with less memory.
/// x: N x 3 x H x W, RGB 0..255, H and W multiples of 4 and at least 8
/// (throws Error otherwise). Inference only (call under torch::NoGradGuard).
///
/// Every convolution is computed in output tiles of at most `tile` x `tile`
/// pixels of x (layers at half or quarter resolution use tiles of tile/2 or
/// tile/4 of their own pixels), each reading its window of the previous
/// layer's whole output, so tile borders leave no trace; every instance norm
/// uses its channels' mean and variance over the whole image, not per tile.
///
/// Memory: only one layer's input and output are alive at a time (plus a
/// residual block's input), as float32. Per pixel of one image of x that is at
/// most 48 floats (192 bytes: conv1's 32-channel output beside conv2's
/// 64-channel half-resolution output, and the same pair at deconv2), plus one
/// tile's input window and output: about 100 floats per pixel of a full
/// resolution tile (400 MB at tile 1024). An untiled forward keeps several
/// full-size temporaries per layer (padded and upsampled copies) at once.
torch::Tensor ForwardInTiles(TransformerNet& net, const torch::Tensor& x, int64_t tile);

}  // namespace stylefleet
