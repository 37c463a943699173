// What the machine's arithmetic does through LibTorch on the two dense
// kernels a training step is made of (a 3x3 convolution and a matrix
// product), so that `stylefleet bench` can state a step's speed as a fraction
// of what the machine can do, and which kernel libraries LibTorch runs on.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>

namespace stylefleet {

struct MachineThroughputOptions {
  /// Untimed runs of each kernel first (oneDNN builds its primitive then).
  int warmup_runs = 1;
  /// Timed runs of each kernel; the median is reported.
  int timed_runs = 3;
  /// Also bf16 (plain and channels-last convolution, matrix product). Off on a
  /// CPU without BF16 instructions, where bf16 is emulated and oneDNN refuses
  /// some bf16 convolutions.
  bool bf16 = true;
};

/// Times, on `device` with the intra-op threads set now:
/// - `conv3x3`: torch::conv2d of a 4x256x64x64 input with a 256x256x3x3
///   weight, stride 1, padding 1, no bias; 2 x N x C_out x H x W x C_in x 9
///   FLOP (19.3 GFLOP); variants `fp32` (NCHW), `bf16` (NCHW) and
///   `bf16_channels_last` (input and weight channels-last);
/// - `matmul`: torch::mm of two 2048x2048 matrices; 2 x M x N x K FLOP
///   (17.2 GFLOP); variants `fp32` and `bf16`.
/// Each variant is an object with `seconds` (the timed runs),
/// `seconds_median` and `gflops` (GFLOP / median seconds); each kernel also
/// states its shapes, its GFLOP and the formula. On a GPU the clock is read
/// after the device finished. Takes about 1-3 s on a CPU core pair.
nlohmann::json MeasureMachineThroughput(const torch::Device& device,
                                        const MachineThroughputOptions& options);

/// The most capable instruction set oneDNN may use on this CPU
/// (`dnnl_get_effective_cpu_isa`, named by `dnnl_cpu_isa2str`, e.g.
/// "avx512_core_bf16"), when LibTorch's oneDNN exports them (Debian's shared
/// libdnnl does); "unknown" otherwise. It is an upper bound: a primitive may
/// still run a narrower kernel.
std::string OneDnnIsa();

}  // namespace stylefleet
