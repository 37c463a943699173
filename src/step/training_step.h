// One optimisation step for one or several styles: the step `train` runs and
// `bench` measures.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "comm/communicator.h"
#include "model/transformer_net.h"
#include "model/vgg16.h"
#include "optim/adam.h"
#include "step/forward_pass.h"
#include "step/gradient_buckets.h"
#include "step/injected_fault.h"
#include "step/step_clock.h"

namespace stylefleet {

/// One style's trainable state, as a step sees it. Not owned.
struct StepStyle {
  TransformerNet* net = nullptr;
  Adam* adam = nullptr;
  GradientBuckets* buckets = nullptr;  ///< over the trainable parameters of `net`
  StyleLossTarget target;              ///< a per-style network's
  /// A conditional network's: the style row of each image of this rank's
  /// batch and the targets of its styles (`target` unused). Null for a
  /// per-style network.
  const ConditionalBatch* conditional = nullptr;
  /// Test-only fault injection on this rank in this step.
  InjectedFault fault = InjectedFault::kNone;
};

/// Group averages of one style's loss terms in a step.
struct StyleStepValues {
  double content = 0, style = 0, tv = 0, total = 0;
  std::vector<double> style_layers;  ///< one per style layer
  /// A NaN/Inf loss or gradient: the update was skipped. The same verdict on
  /// every rank (decided on group averages and averaged gradients).
  bool bad = false;
  /// Images the values were taken over, in the whole group.
  int64_t images = 0;
  /// A conditional network's styles (one per target of its ConditionalBatch):
  /// each averaged over its own images in the group; `images` 0 when the
  /// step had none of that style (its values are then 0).
  std::vector<StyleStepValues> styles;
};

/// Image-weighted sums of a style's values, for means over images (group
/// allreduces, windows of steps): images, then content, style, tv, total and
/// each style layer, each times images. AddWeightedValues sizes empty `sums`
/// and adds nothing for values over no images; WeightedMean divides back
/// (values 0 when the sums hold no image).
void AddWeightedValues(const StyleStepValues& values, std::vector<double>& sums);
StyleStepValues WeightedMean(const std::vector<double>& sums);

struct StepOutcome {
  std::vector<StyleStepValues> styles;  ///< in the order of the styles passed in
  /// A stop signal reached some rank of the group: every rank sees it.
  bool stop = false;
  /// Seconds spent averaging gradients (all styles).
  double gradient_allreduce_seconds = 0;
};

struct StepOptions {
  /// The batch runs in this many parts (part m takes images m, m+M, ...: the
  /// shards M ranks would get) whose gradients are averaged.
  int micro_batches = 1;
  LossNetworkUse use;
};

/// Sums the gradients of a power-of-two number of parts in one fixed tree: the
/// parts handed in as p0, p1, p2, p3 give (p0 + p1) + (p2 + p3). Fed in
/// bit-reversed part order (0, 2, 1, 3), this is the tree in which the
/// communicators add a power-of-two number of ranks (rank r with r + N/2
/// first), so N ranks of k parts each sum their N*k units in the same order
/// for every such split: 4 ranks, 2 ranks of 2 parts and 1 process of 4 parts
/// give the same bits (elastic resume, README "On a cluster").
class GradientTree {
 public:
  /// One part's gradients, one tensor per parameter, in parameter order.
  void Add(std::vector<torch::Tensor> part);
  /// The sum of everything added, and empty again. Throws when the number of
  /// parts added was not a power of two.
  std::vector<torch::Tensor> Total();

 private:
  std::vector<std::vector<torch::Tensor>> levels_;  // [l]: the sum of 2^l parts, or empty
};

/// Runs steps for a group of ranks. `control` carries host-memory values (the
/// loss terms and the stop flag), `tensors` the gradients (device memory on
/// NCCL); on CPU they are the same communicator. Not thread-safe.
class TrainingStep {
 public:
  /// `clock` may be null; `vgg` and the communicators must outlive the step.
  TrainingStep(const Vgg16& vgg, Communicator& control, Communicator& tensors,
               const StepOptions& options, StepClock* clock);

  /// Collective over the group: zero the gradients, forward and backward each
  /// micro-batch of `content` (B x 3 x H x W, 0..255, on the models' device),
  /// average the loss terms and `stop_requested` over the group (one
  /// allreduce, "loss values"), then for each style whose averaged total is
  /// finite average its gradients in buckets ("gradient bucket" allreduces)
  /// and, when they are finite too, update it with Adam.
  StepOutcome Run(const torch::Tensor& content, const std::vector<StepStyle>& styles,
                  bool stop_requested);

 private:
  // Per network, this rank's loss terms averaged over the micro-batches
  // (content, style, tv, total, then each style layer) and, for a
  // conditional network, per style: images, then each term times images.
  struct RankValues {
    std::vector<double> mean;
    std::vector<std::vector<double>> style_sums;
  };
  std::vector<RankValues> ForwardBackward(const torch::Tensor& content,
                                          const std::vector<StepStyle>& styles);
  // One allreduce of every network's values plus the stop flag.
  bool AllReduceLossValues(std::vector<RankValues>& values, bool stop_requested);
  // Averages and applies one style's gradients; false when a gradient is not finite.
  bool AverageAndUpdate(const StepStyle& style, double& allreduce_seconds);

  const Vgg16& vgg_;
  Communicator& control_;
  Communicator& tensors_;
  StepOptions options_;
  StepClock* clock_;
};

}  // namespace stylefleet
