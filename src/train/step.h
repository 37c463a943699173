// What the trainer and the benchmark share: one training step's forward pass
// for one or several styles, the clock that splits a step's time into phases
// (and writes them as a Chrome trace), the FLOP count of a step, and the
// choice of threads, device and precision.
#pragma once

#include <torch/torch.h>

#include <array>
#include <chrono>
#include <string>
#include <vector>

#include "loss/losses.h"
#include "model/transformer_net.h"
#include "model/vgg16.h"

namespace stylefleet {

/// Arithmetic of the forward passes. kBf16 runs convolutions in bfloat16
/// (autocast; the loss network's weights are kept in bfloat16) and the losses,
/// gradients and optimizer in float32.
enum class Precision { kFp32, kBf16 };

/// "fp32" or "bf16".
const char* PrecisionName(Precision precision);

/// Sets and returns LibTorch's intra-op threads: `requested` when > 0, else
/// the host's cores shared among its `ranks_on_host` ranks (LibTorch's own
/// OpenMP default can be 1 even with more cores).
int UseIntraOpThreads(int requested, int ranks_on_host);

/// Where a rank computes: GPU (local_rank mod the GPU count) when CUDA is
/// available, else the CPU.
torch::Device DeviceOfLocalRank(int local_rank);

/// True when this CPU has BF16 dot-product instructions (avx512_bf16 or
/// amx_bf16), so bf16 pays off on CPU.
bool CpuHasBf16();

/// What a step measures, per style.
struct StyleLossTarget {
  const std::vector<torch::Tensor>* style_grams = nullptr;  ///< one per style layer
  LossWeights weights;
};

/// Layers and precision common to the styles of one forward pass.
struct LossNetworkUse {
  std::vector<int> content_layers;  ///< VGG indices (0..12)
  std::vector<int> style_layers;
  Precision precision = Precision::kFp32;
};

class StepClock;

/// Stylizes `content` (B x 3 x H x W, 0..255) with each of `nets` and returns
/// each style's loss terms. The content batch goes through the loss network
/// once, without gradients and only as deep as the deepest content layer; the
/// K generated batches go through it together (one K*B batch). Each style's
/// terms equal those of a separate pass up to rounding. `clock` may be null.
std::vector<LossTerms> ForwardStyleLosses(const std::vector<TransformerNet*>& nets,
                                          const Vgg16& vgg, const torch::Tensor& content,
                                          const std::vector<StyleLossTarget>& targets,
                                          const LossNetworkUse& use, StepClock* clock);

/// Gram matrices of a style image (1 x 3 x H x W, 0..255) at `layers`, in float32.
std::vector<torch::Tensor> StyleGrams(const Vgg16& vgg, const torch::Tensor& style_image,
                                      const std::vector<int>& layers, Precision precision);

/// The phases a step's time is split into.
enum class Phase : int {
  kData,
  kTransformerForward,
  kVggForward,
  kLoss,
  kBackward,
  kAllreduce,
  kOptimizer,
  kCount
};
const char* PhaseName(Phase phase);

/// Accumulates wall time per phase. On a GPU it synchronizes at every phase
/// boundary (so only when asked to: benchmarks and traces), on CPU the
/// operators are synchronous anyway. Optionally records every span for a
/// Chrome trace (chrome://tracing, Perfetto).
class StepClock {
 public:
  StepClock(const torch::Device& device, bool record_spans);

  /// Ends the running phase (if any) and starts `phase`.
  void Begin(Phase phase, const std::string& detail = "");
  /// Ends the running phase.
  void End();

  /// Seconds per phase since the last Reset().
  const std::array<double, static_cast<int>(Phase::kCount)>& seconds() const { return seconds_; }
  void Reset() { seconds_.fill(0); }

  /// Writes the recorded spans as Chrome-trace JSON; `process` labels the
  /// rank. Throws Error when the file cannot be written.
  void WriteTrace(const std::string& path, int process, const std::string& process_name) const;

 private:
  struct Span {
    Phase phase;
    std::string detail;
    double start_us, duration_us;
  };
  torch::Device device_;
  bool record_spans_;
  bool running_ = false;
  Phase phase_ = Phase::kData;
  std::string detail_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point origin_;
  std::array<double, static_cast<int>(Phase::kCount)> seconds_{};
  std::vector<Span> spans_;
};

/// `path` itself in a world of one; else the rank goes before the extension
/// (trace.json -> trace.rank1.json).
std::string RankTracePath(const std::string& path, int rank, int world_size);

/// Floating-point operations of one training image (transformer forward and
/// backward, loss network forward and input-gradient backward for the
/// generated image, loss network forward for the content image), counted
/// from the layer shapes: 2 * Cin * Cout * k * k * Hout * Wout per
/// convolution, backward twice the forward (input and weight gradients) where
/// both are needed. Elementwise work is not counted.
struct StepFlops {
  double transformer_forward = 0;
  double transformer_backward = 0;
  double vgg_generated = 0;  ///< forward + input-gradient backward
  double vgg_content = 0;    ///< forward to the deepest content layer
  double total() const {
    return transformer_forward + transformer_backward + vgg_generated + vgg_content;
  }
};
StepFlops TrainingFlopsPerImage(int image_size, const LossNetworkUse& use);

/// Floating-point operations of stylizing one image of side `image_size`.
double StylizeFlopsPerImage(int image_size);

}  // namespace stylefleet
