// The style-prediction network of an arbitrary-style network (Ghiasi, Lee,
// Kudlur, Dumoulin and Shlens, 2017): a style image to the scale and shift of
// every instance norm of the transformer (model/transformer_net.h,
// PredictedNormLayout), through a small bottleneck embedding.
//
// The paper's predictor is a pretrained Inception-v3 with two trainable
// layers. Here the features come from the loss network that training has
// loaded anyway (frozen VGG-16): each chosen layer's per-channel mean and
// standard deviation over the image (StyleSummary). The trainable part is a
// linear map to the embedding and a linear map from the embedding to the norm
// parameters. An untrained predictor gives scale 1 and shift 0 for every
// style image, where a fresh transformer's norms start.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <vector>

namespace stylefleet {

/// Each of `layers`' per-channel mean and standard deviation over the
/// image's positions (the square root of the biased variance plus 1e-5), in
/// `layers` order: [B x 2 * (sum of the layers' channels)], float32.
/// `features` maps a VGG layer index to its [B x C x H x W] activation (as
/// Vgg16::Forward returns them).
torch::Tensor StyleSummary(const std::map<int, torch::Tensor>& features,
                           const std::vector<int>& layers);

class StylePredictorImpl : public torch::nn::Module {
 public:
  /// `summary_size`: the length of a StyleSummary; `embedding_size`: the
  /// bottleneck (100 in the paper).
  StylePredictorImpl(int64_t summary_size, int64_t embedding_size);

  /// [B x summary_size] summaries to [B x embedding_size] embeddings: each
  /// summary standardized over its numbers (minus its mean, over the square
  /// root of its biased variance plus 1e-5), then bottleneck(...) / summary_size.
  torch::Tensor Embed(const torch::Tensor& summary);
  /// [B x embedding_size] embeddings to [B x NormParameterCount()] norm
  /// parameters, the StyleMix of an arbitrary-style TransformerNet:
  /// to_norms(embedding / embedding_size).
  torch::Tensor NormsOf(const torch::Tensor& embedding);
  /// NormsOf(Embed(summary)).
  torch::Tensor forward(const torch::Tensor& summary) { return NormsOf(Embed(summary)); }

  int64_t summary_size() const { return summary_size_; }
  int64_t embedding_size() const { return embedding_size_; }

 private:
  int64_t summary_size_, embedding_size_;
  torch::nn::Linear bottleneck_{nullptr}, to_norms_{nullptr};
};
TORCH_MODULE(StylePredictor);

/// Draws the predictor's parameters from a generator seeded with `seed`: the
/// bottleneck's weights uniform in +-sqrt(3 * summary_size), its bias 0 (the
/// forward divides by the summary's length: embeddings of variance 1); the
/// map to the norms 0, its bias 1 for every scale and 0 for every shift. An
/// untrained predictor so gives exactly the norms a fresh transformer starts
/// from, whatever the scale of the loss network's activations (a summary of
/// raw VGG activations reaches the thousands; a small random map would start
/// some scales far from 1). The bottleneck gets gradients from the second
/// step on, once the map is no longer 0.
void InitializeStylePredictor(StylePredictor& predictor, uint64_t seed);

}  // namespace stylefleet
