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

/// One style's share of a conditional network's batch.
struct StyleShare {
  int64_t images = 0;  ///< images of this style in the batch; 0: absent, `terms` undefined
  LossTerms terms;     ///< the seed's terms over those images only
};

/// A conditional or arbitrary-style network's batch: the style of each image.
/// Each image's style loss uses its own style's Gram targets and weights; the
/// network's terms are the image-weighted mean of its styles' terms (each
/// image counts once, as in a per-style batch), so a batch of one style gives
/// exactly that style's terms.
struct ConditionalBatch {
  torch::Tensor rows;                    ///< int64 [B]: each image's style row
  int64_t first_row = 0;                 ///< `targets[k]` is row first_row + k
  std::vector<StyleLossTarget> targets;  ///< the styles that may appear
  /// An arbitrary-style network's: float [targets x S], each target's style
  /// image as a StyleSummary of the network's summary layers. Each image's
  /// norms are then the network's predictor of its style's summary (in
  /// float32, with gradients into the predictor) instead of a row.
  torch::Tensor summaries;
  /// Filled by the pass: one per target.
  std::vector<StyleShare> shares;
};

/// Layers and precision common to the styles of one forward pass.
struct LossNetworkUse {
  std::vector<int> content_layers;  ///< VGG indices (0..12)
  std::vector<int> style_layers;    ///< for targets that name none of their own
  Precision precision = Precision::kFp32;
  /// Style features from the generated images' luminance (LuminanceImage),
  /// content features from their colours: a second loss-network pass.
  bool style_luminance_only = false;
};

/// Stylizes `content` (B x 3 x H x W, 0..255) with each of `nets` and returns
/// each style's loss terms. The content batch goes through the loss network
/// once, without gradients and only as deep as the deepest content layer; the
/// K generated batches go through it together (one K*B batch). Each style's
/// terms equal those of a separate pass up to rounding. `clock` may be null.
/// `conditional` (empty, or one entry per net): for a conditional or
/// arbitrary-style network its batch (its entry in `targets` is then
/// unused), null for a per-style one.
std::vector<LossTerms> ForwardStyleLosses(const std::vector<TransformerNet*>& nets,
                                          const Vgg16& vgg, const torch::Tensor& content,
                                          const std::vector<StyleLossTarget>& targets,
                                          const LossNetworkUse& use, StepClock* clock,
                                          const std::vector<ConditionalBatch*>& conditional = {});

/// Gram matrices of a style image (1 x 3 x H x W, 0..255) at `layers`, in float32.
std::vector<torch::Tensor> StyleGrams(const Vgg16& vgg, const torch::Tensor& style_image,
                                      const std::vector<int>& layers, Precision precision);

/// An arbitrary-style network's predictor input for style images
/// (B x 3 x H x W, 0..255): the StyleSummary of the loss network's float32
/// activations at `layers`, [B x S], without gradients. Training and stylize
/// both take it so.
torch::Tensor StyleImageSummary(const Vgg16& vgg, const torch::Tensor& style_images,
                                const std::vector<int>& layers);

}  // namespace stylefleet
