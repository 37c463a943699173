#include "commands/machine_throughput.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "common/torch_compat.h"

namespace stylefleet {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// Runs `kernel` warmup + timed times; each timed run's clock stops after the
// device finished it.
json TimeKernel(const std::function<void()>& kernel, double gflop, const torch::Device& device,
                const MachineThroughputOptions& options) {
  std::vector<double> seconds;
  for (int i = 0; i < options.warmup_runs + options.timed_runs; ++i) {
    SynchronizeDevice(device);
    const auto start = Clock::now();
    kernel();
    SynchronizeDevice(device);
    if (i >= options.warmup_runs) {
      seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
  }
  std::vector<double> sorted = seconds;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  const double median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  return {{"seconds", seconds}, {"seconds_median", median}, {"gflops", gflop / median}};
}

json MeasureConvolution(const torch::Device& device, const MachineThroughputOptions& options) {
  const int64_t batch = 4, channels = 256, side = 64, kernel = 3;
  const double gflop = 2.0 * batch * channels * side * side * channels * kernel * kernel / 1e9;
  const auto on = torch::TensorOptions().device(device);
  const torch::Tensor input = torch::randn({batch, channels, side, side}, on);
  const torch::Tensor weight = torch::randn({channels, channels, kernel, kernel}, on) * 0.02;
  json result = {{"op", "torch::conv2d, stride 1, padding 1, no bias"},
                 {"input_nchw", {batch, channels, side, side}},
                 {"weight_oihw", {channels, channels, kernel, kernel}},
                 {"gflop", gflop},
                 {"gflop_formula", "2 x N x C_out x H_out x W_out x C_in x kH x kW"}};
  const auto time_conv = [&](const torch::Tensor& x, const torch::Tensor& w) {
    return TimeKernel([&] { (void)torch::conv2d(x, w, {}, 1, 1); }, gflop, device, options);
  };
  result["fp32"] = time_conv(input, weight);
  if (options.bf16) {
    const torch::Tensor x = input.to(torch::kBFloat16), w = weight.to(torch::kBFloat16);
    result["bf16"] = time_conv(x, w);
    result["bf16_channels_last"] = time_conv(x.contiguous(at::MemoryFormat::ChannelsLast),
                                             w.contiguous(at::MemoryFormat::ChannelsLast));
  }
  return result;
}

json MeasureMatmul(const torch::Device& device, const MachineThroughputOptions& options) {
  const int64_t n = 2048;
  const double gflop = 2.0 * n * n * n / 1e9;
  const auto on = torch::TensorOptions().device(device);
  const torch::Tensor a = torch::randn({n, n}, on), b = torch::randn({n, n}, on);
  json result = {{"op", "torch::mm"},
                 {"m_n_k", {n, n, n}},
                 {"gflop", gflop},
                 {"gflop_formula", "2 x M x N x K"}};
  const auto time_mm = [&](const torch::Tensor& x, const torch::Tensor& y) {
    return TimeKernel([&] { (void)torch::mm(x, y); }, gflop, device, options);
  };
  result["fp32"] = time_mm(a, b);
  if (options.bf16) result["bf16"] = time_mm(a.to(torch::kBFloat16), b.to(torch::kBFloat16));
  return result;
}

// A function of a library already loaded into the process (LibTorch's own
// dependencies), or null.
void* LoadedSymbol(const char* name) { return dlsym(RTLD_DEFAULT, name); }

}  // namespace

json MeasureMachineThroughput(const torch::Device& device,
                              const MachineThroughputOptions& options) {
  torch::NoGradGuard no_grad;
  json result = {{"device", device.str()},
                 {"threads", torch::get_num_threads()},
                 {"warmup_runs", options.warmup_runs},
                 {"timed_runs", options.timed_runs},
                 {"statistic", "gflops = gflop / median of the timed runs' seconds"}};
  result["conv3x3"] = MeasureConvolution(device, options);
  result["matmul"] = MeasureMatmul(device, options);
  if (!options.bf16) result["bf16_skipped"] = "no BF16 instructions on this CPU";
  return result;
}

std::string OneDnnIsa() {
  // dnnl_cpu_isa_t is a C enum: an int through the C ABI.
  using EffectiveIsa = int (*)();
  using IsaName = const char* (*)(int);
  const auto effective = reinterpret_cast<EffectiveIsa>(LoadedSymbol("dnnl_get_effective_cpu_isa"));
  const auto name_of = reinterpret_cast<IsaName>(LoadedSymbol("dnnl_cpu_isa2str"));
  const char* name = effective && name_of ? name_of(effective()) : nullptr;
  return name && *name ? name : "unknown";
}

}  // namespace stylefleet
