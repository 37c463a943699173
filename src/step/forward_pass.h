// The forward pass of a training step for one or several styles: transformer,
// loss network and the seed's losses, in fp32 or bf16.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "loss/losses.h"
#include "model/transformer_net.h"
#include "model/vgg16.h"
#include "step/step_clock.h"

namespace stylefleet {

/// Arithmetic of the forward passes. kBf16 runs convolutions in bfloat16
/// (autocast; the loss network's weights are kept in bfloat16) and the losses,
/// gradients and optimizer in float32.
enum class Precision { kFp32, kBf16 };

/// "fp32" or "bf16".
const char* PrecisionName(Precision precision);

/// What a step measures, per style.
struct StyleLossTarget {
  const std::vector<torch::Tensor>* style_grams = nullptr;  ///< one per style layer
  LossWeights weights;
  /// This style's style layers (VGG indices, in the order of `style_grams`);
  /// null: LossNetworkUse::style_layers.
  const std::vector<int>* style_layers = nullptr;
};

/// Layers and precision common to the styles of one forward pass.
struct LossNetworkUse {
  std::vector<int> content_layers;  ///< VGG indices (0..12)
  std::vector<int> style_layers;    ///< for targets that name none of their own
  Precision precision = Precision::kFp32;
};

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

}  // namespace stylefleet
