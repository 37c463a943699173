// CPU kernels for the transformer's layers where LibTorch 1.13's own are
// slow: reflection padding (with the nearest-neighbour upsampling before it)
// and the last 9x9 convolution down to 3 channels.
//
// Measured at 256 px, batch 4, 2 threads (README, Performance): LibTorch's
// reflection pad copies about 1 GB/s, and it with its backward took about
// 0.2 s of a 2.2 s step; oneDNN's direct convolution blocks output channels
// by 16, so the 32 -> 3 channel 9x9 layer ran at about 60 GFLOP/s, 0.22 s
// forward and backward (0.05 s as done here). Both give LibTorch's values up
// to float rounding of sums; where they do not apply (GPU, other dtypes,
// autocast, non-contiguous tensors) LibTorch's ops run.
#pragma once

#include <torch/torch.h>

namespace stylefleet {

/// Index into an axis of `size` elements that position `j` of the axis
/// upsampled `upsample` times (nearest) and reflection-padded by `pad` on
/// each side reads. `pad` must be smaller than size * upsample.
inline int64_t UpsampledReflectedSource(int64_t j, int64_t size, int64_t upsample, int64_t pad) {
  const int64_t upsampled = size * upsample;
  int64_t at = j - pad;
  if (at < 0) at = -at;
  if (at >= upsampled) at = 2 * (upsampled - 1) - at;
  return at / upsample;
}

/// F::interpolate(x, nearest, scale `upsample`) then F::pad(reflect, `pad` on
/// every side) of an N x C x H x W tensor, in one pass when x is a contiguous
/// CPU float32 tensor outside autocast (LibTorch's two ops otherwise).
/// Differentiable in x. upsample >= 1; pad >= 0.
torch::Tensor UpsampleReflectionPad(const torch::Tensor& x, int64_t upsample, int64_t pad);

/// Whether NarrowOutputConv computes conv2d(x, weight, bias) itself: a CPU
/// float32 contiguous x outside autocast, a float32 weight with fewer than 16
/// output channels and a kernel taller than one row.
bool NarrowOutputConvApplies(const torch::Tensor& x, const torch::Tensor& weight);

/// conv2d(x, weight, bias), stride 1, no padding, for a layer with few output
/// channels (the transformer's last, 32 -> 3 channels, 9x9): the forward pass
/// as a convolution with one output channel per (channel, kernel row), whose
/// row-shifted outputs are summed; the input gradient as a convolution from
/// the few channels to the many with the flipped kernel; the weight gradient
/// through the row-split convolution again. Differentiable in x, weight and
/// bias; torch::conv2d where NarrowOutputConvApplies is false. `bias` may be
/// undefined.
torch::Tensor NarrowOutputConv(const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias);

}  // namespace stylefleet
