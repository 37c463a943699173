// 3x3, stride-1 convolutions by oneDNN's Winograd algorithm, F(4x4, 3x3).
//
// On CPUs with AVX-512, oneDNN 2.6 (the library LibTorch 1.13 itself calls)
// has a Winograd convolution that needs about a quarter of the direct
// algorithm's multiplications; LibTorch never asks for it. On VGG's and the
// transformer's 3x3 layers (forward and backward) it ran faster than the
// direct kernel, and so does fp32 training (figures: docs/performance.md,
// "Winograd convolutions"). This is the
// one place that calls oneDNN directly; everything else goes through
// LibTorch, and so does every convolution this path does not take (GPU
// tensors, bfloat16 and autocast, other shapes, a CPU or build without the
// kernel).
#pragma once

#include <torch/torch.h>

#include <string>

namespace stylefleet {

/// conv2d(x, weight, bias, stride 1, padding) for a 3x3 `weight`: oneDNN's
/// Winograd convolution when it applies (CPU float32 tensors, channels that
/// oneDNN accepts, Winograd enabled and available), torch::conv2d otherwise.
/// Differentiable in x, weight and bias (first derivatives only). `bias` may
/// be undefined. Thread-safe.
torch::Tensor Conv3x3(const torch::Tensor& x, const torch::Tensor& weight,
                      const torch::Tensor& bias, int64_t padding);

/// oneDNN's blocked activation layout (nChw16c) held in plain tensors: an
/// NCHW activation whose channels are cut into blocks of 16, stored as
/// [N, C/16, H, W, 16], contiguous. A chain of Conv3x3Blocked, in-place ReLU
/// and MaxPool2x2Blocked stays in it and saves the two layout copies per layer
/// that Conv3x3 makes (the loss network's chain).
constexpr int64_t kWinogradBlock = 16;

/// True when a chain starting at `x` (NCHW) may run blocked: Winograd enabled
/// and available, `x` a contiguous CPU float32 tensor whose channels are a
/// multiple of 16.
bool BlockedWinogradApplies(const torch::Tensor& x);

/// NCHW -> blocked and back (differentiable copies).
torch::Tensor ToBlocked(const torch::Tensor& nchw);
torch::Tensor FromBlocked(const torch::Tensor& blocked);

/// Conv3x3 of a blocked `x` to a blocked output (weights and bias as for
/// Conv3x3; channels in and out multiples of 16). Where oneDNN has no Winograd
/// kernel for the shape it converts, runs LibTorch's and converts back.
torch::Tensor Conv3x3Blocked(const torch::Tensor& x, const torch::Tensor& weight,
                             const torch::Tensor& bias, int64_t padding);

/// 2x2 max-pool with stride 2 of a blocked tensor (differentiable; odd sides
/// drop their last row or column, as max_pool2d).
torch::Tensor MaxPool2x2Blocked(const torch::Tensor& blocked);

/// Whether Conv3x3 would take the Winograd path for these arguments (it asks
/// oneDNN for the primitive, and remembers the answer per shape).
bool WinogradApplies(const torch::Tensor& x, const torch::Tensor& weight, int64_t padding);

/// Switch of the calling thread, on by default: off makes Conv3x3 and
/// Conv3x3Blocked LibTorch's convolutions (`job.convolution: direct`). Each
/// thread that trains sets its job's; a backward pass follows its forward.
void SetWinogradEnabled(bool enabled);
bool WinogradEnabled();

/// Sets the calling thread's switch for its lifetime, then restores it.
class ScopedWinograd {
 public:
  explicit ScopedWinograd(bool enabled);
  ~ScopedWinograd();
  ScopedWinograd(const ScopedWinograd&) = delete;
  ScopedWinograd& operator=(const ScopedWinograd&) = delete;

 private:
  bool previous_;
};

/// True when this build calls oneDNN and the CPU has the Winograd kernel
/// (AVX-512): what `train` logs and `bench` records.
bool WinogradAvailable();

/// "winograd" when `setting` ("winograd" or "direct", job.convolution) and
/// this CPU and build make fp32 3x3 CPU convolutions Winograd, else "direct".
std::string ConvolutionsUsed(const std::string& setting);

/// One line for logs: which convolutions run with `setting`, and why.
std::string DescribeConvolutions(const std::string& setting);

}  // namespace stylefleet
