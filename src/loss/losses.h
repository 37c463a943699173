// The seed's losses, exactly as its TensorFlow code defines them. With F a
// layer's activations of shape B x C x H x W:
//   gram(F)            = F^T F / (H*W*C), per image (B x C x C)
//   content            = sum over content layers of sum((F_gen - F_content)^2) / numel(F_gen)
//   style of a layer   = sum((gram(F_gen) - G_style)^2) / numel(F_gen)
//                        (G_style: the style image's gram, broadcast over the batch)
//   style              = sum over style layers
//   tv                 = sum(dx^2) / (2 numel(dx)) + sum(dy^2) / (2 numel(dy)), on the
//                        generated image
//   total              = style_weight*style + content_weight*content + tv_weight*tv
// The seed writes these with tf.nn.l2_loss(x) = sum(x^2) / 2: content and style
// as l2_loss * 2 / size, TV as l2_loss / size (no factor 2, so its half stays).
#pragma once

#include <torch/torch.h>

#include <vector>

namespace stylefleet {

/// Gram matrices of B x C x H x W activations: B x C x C.
torch::Tensor Gram(const torch::Tensor& features);

/// sum((generated - content)^2) / numel(generated) for one layer.
torch::Tensor ContentLayerLoss(const torch::Tensor& generated, const torch::Tensor& content);

/// sum((gram(generated) - style_gram)^2) / numel(generated) for one layer;
/// style_gram is 1 x C x C (or B x C x C).
torch::Tensor StyleLayerLoss(const torch::Tensor& generated, const torch::Tensor& style_gram);

/// BT.601 luma (0.299 R + 0.587 G + 0.114 B) of a B x 3 x H x W RGB batch,
/// repeated over three channels (B x 3 x H x W, same scale): what the loss
/// network sees of an image when the style loss is on luminance only.
torch::Tensor LuminanceImage(const torch::Tensor& rgb);

/// Total variation of an image batch (before any normalization).
torch::Tensor TotalVariationLoss(const torch::Tensor& image);

struct LossWeights {
  // No defaults here: the job's (config's TrainingOptions) are the only ones.
  double content = 0;
  double style = 0;
  double tv = 0;
};

/// All terms of one step. Tensors are scalars (0-dim) attached to the graph.
struct LossTerms {
  torch::Tensor content;
  torch::Tensor style;                      ///< sum of style_layers
  std::vector<torch::Tensor> style_layers;  ///< unweighted, in the configured order
  torch::Tensor tv;
  torch::Tensor total;  ///< weighted sum, what is minimised
};

/// Combines per-layer features into the seed's terms.
/// `generated_content[i]` pairs with `content_features[i]`; `generated_style[i]`
/// with `style_grams[i]`.
LossTerms ComputeLosses(const std::vector<torch::Tensor>& generated_content,
                        const std::vector<torch::Tensor>& content_features,
                        const std::vector<torch::Tensor>& generated_style,
                        const std::vector<torch::Tensor>& style_grams,
                        const torch::Tensor& generated_image, const LossWeights& weights);

}  // namespace stylefleet
