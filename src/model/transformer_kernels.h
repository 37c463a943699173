// CPU kernels for the transformer's layers where LibTorch 1.13's own are
// slow: reflection padding, and the last 9x9 convolution, down to 3 channels.
//
// LibTorch pads element by element; here a padded row is its reflected input
// row, copied whole. oneDNN's direct convolution blocks output channels by
// 16, so with 3 the last layer leaves most of each vector unused; here it
// runs as a convolution with one output channel per (channel, kernel row),
// whose row-shifted outputs are summed. The measured costs before and
// after, with their commands: docs/performance.md (2026-11-30). The pad
// gives LibTorch's values exactly, the convolution up to float rounding of
// sums; where they do not apply (GPU, other dtypes, autocast, non-contiguous
// tensors, a bias of another size) LibTorch's ops run.
#pragma once

#include <torch/torch.h>

namespace stylefleet {

/// F::pad(x, {pad, pad, pad, pad}, reflect) of an NCHW tensor, the same values
/// (a copy): a padded row is its reflected input row, copied whole. Its
/// backward pass folds each padded row's gradient back onto the input row it
/// came from. Differentiable (first derivatives). LibTorch's pad (and its
/// error for a pad not smaller than a side) where x is not a contiguous CPU
/// float32 NCHW tensor outside autocast or a side is not larger than `pad`.
torch::Tensor ReflectionPad(const torch::Tensor& x, int64_t pad);

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
