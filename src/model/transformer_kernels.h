// CPU kernels for the transformer's layers where LibTorch 1.13's own are
// slow: the last 9x9 convolution, down to 3 channels.
//
// Measured at 256 px, batch 4, 2 threads (README, Performance): oneDNN's
// direct convolution blocks output channels by 16, so with 3 the layer ran at
// about 60 GFLOP/s, 216 ms of oneDNN time per step forward and backward (54 ms
// as done here). It gives LibTorch's values up to float rounding of sums;
// where it does not apply (GPU, other dtypes, autocast, non-contiguous
// tensors, a bias of another size) LibTorch's convolution runs.
#pragma once

#include <torch/torch.h>

namespace stylefleet {

/// Whether NarrowOutputConv computes conv2d(x, weight, bias) itself: a CPU
/// float32 contiguous x outside autocast, a float32 weight with fewer than 16
/// output channels and a kernel taller than one row, and a row-split output
/// (output size x kernel height) of at most kNarrowOutputConvMaxBytes.
bool NarrowOutputConvApplies(const torch::Tensor& x, const torch::Tensor& weight);
constexpr double kNarrowOutputConvMaxBytes = 256.0 * 1024 * 1024;

/// conv2d(x, weight, bias), stride 1, no padding, for a layer with few output
/// channels (the transformer's last, 32 -> 3 channels, 9x9): the forward pass
/// as a convolution with one output channel per (channel, kernel row), whose
/// row-shifted outputs are summed; the input gradient as a convolution from
/// the few channels to the many with the flipped kernel; the weight gradient
/// through the row-split convolution again. Differentiable (first
/// derivatives) in x, weight and bias. torch::conv2d where
/// NarrowOutputConvApplies is false or the bias is not a float32 vector with
/// one entry per output channel. `bias` may be undefined.
torch::Tensor NarrowOutputConv(const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias);

}  // namespace stylefleet
