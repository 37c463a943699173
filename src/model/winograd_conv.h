// 3x3, stride-1 convolutions by oneDNN's Winograd algorithm, F(4x4, 3x3).
//
// On CPUs with AVX-512, oneDNN 2.6 (the library LibTorch 1.13 itself calls)
// has a Winograd convolution that needs about a quarter of the direct
// algorithm's multiplications; LibTorch never asks for it. For VGG's and the
// transformer's 3x3 layers it runs 1.6-2.5x faster than the direct kernel
// (README, Performance). This is the one place that calls oneDNN directly;
// everything else goes through LibTorch, and so does every convolution this
// path does not take (GPU tensors, bfloat16, other shapes, a CPU or build
// without the kernel).
#pragma once

#include <torch/torch.h>

namespace stylefleet {

/// conv2d(x, weight, bias, stride 1, padding) for a 3x3 `weight`: oneDNN's
/// Winograd convolution when it applies (CPU float32 tensors, channels that
/// oneDNN accepts, Winograd enabled and available), torch::conv2d otherwise.
/// Differentiable in x, weight and bias (first derivatives only). `bias` may
/// be undefined. Thread-safe.
torch::Tensor Conv3x3(const torch::Tensor& x, const torch::Tensor& weight,
                      const torch::Tensor& bias, int64_t padding);

/// Whether Conv3x3 would take the Winograd path for these arguments (it asks
/// oneDNN for the primitive, and remembers the answer per shape).
bool WinogradApplies(const torch::Tensor& x, const torch::Tensor& weight, int64_t padding);

/// Process-wide switch, on by default: off makes Conv3x3 torch::conv2d
/// everywhere (the job key `training.convolution: direct`, and tests that
/// compare with LibTorch bit for bit).
void SetWinogradEnabled(bool enabled);
bool WinogradEnabled();

/// True when this build calls oneDNN and the CPU has the Winograd kernel
/// (AVX-512): the answer `bench` and `check` print.
bool WinogradAvailable();

}  // namespace stylefleet
