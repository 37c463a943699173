// LibTorch version differences, in one place. stylefleet builds against
// Debian's LibTorch 1.13 (CPU) and against PyTorch 2.x's bundled LibTorch
// (CUDA); other files call these helpers and never test version numbers.
#pragma once

#include <torch/torch.h>
#include <torch/version.h>

#if TORCH_VERSION_MAJOR >= 2
#include <torch/cuda.h>
#endif

namespace stylefleet {

/// Waits until the work queued on `device` is done (a no-op on CPU, where
/// LibTorch's operators are synchronous). Timers around GPU work need it.
inline void SynchronizeDevice(const torch::Device& device) {
  if (device.is_cpu()) return;
#if TORCH_VERSION_MAJOR >= 2
  torch::cuda::synchronize(device.index());
#else
  // LibTorch 1.13's C++ API has no synchronize; a host copy of a scalar made
  // on the device's current stream waits for everything queued before it.
  (void)torch::zeros({1}, torch::TensorOptions().device(device)).sum().item<float>();
#endif
}

/// "major.minor.patch" of the LibTorch this binary was compiled against.
inline const char* TorchVersionString() { return TORCH_VERSION; }

}  // namespace stylefleet
