// LibTorch version differences, in one place. stylefleet builds against
// Debian's LibTorch 1.13 (CPU) and against PyTorch 2.x's bundled LibTorch
// (CUDA); other files call these helpers and never test version numbers.
#pragma once

#include <ATen/autocast_mode.h>
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

/// Autocast state of one device type (CPU or CUDA): whether it is on and to
/// which type. PyTorch 2.4 replaced the per-backend functions (is_cpu_enabled,
/// set_autocast_gpu_dtype, ...) by ones taking the device type.
struct AutocastState {
  bool enabled = false;
  at::ScalarType type = at::kBFloat16;
};

inline AutocastState GetAutocast(c10::DeviceType device) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return {at::autocast::is_autocast_enabled(device), at::autocast::get_autocast_dtype(device)};
#else
  if (device == c10::DeviceType::CPU) {
    return {at::autocast::is_cpu_enabled(), at::autocast::get_autocast_cpu_dtype()};
  }
  return {at::autocast::is_enabled(), at::autocast::get_autocast_gpu_dtype()};
#endif
}

inline void SetAutocast(c10::DeviceType device, const AutocastState& state) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_dtype(device, state.type);
  at::autocast::set_autocast_enabled(device, state.enabled);
#else
  if (device == c10::DeviceType::CPU) {
    at::autocast::set_autocast_cpu_dtype(state.type);
    at::autocast::set_cpu_enabled(state.enabled);
  } else {
    at::autocast::set_autocast_gpu_dtype(state.type);
    at::autocast::set_enabled(state.enabled);
  }
#endif
}

/// "major.minor.patch" of the LibTorch this binary was compiled against.
inline const char* TorchVersionString() { return TORCH_VERSION; }

}  // namespace stylefleet
