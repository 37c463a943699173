#include "model/style_predictor.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "common/error.h"
#include "model/transformer_net.h"

namespace stylefleet {

torch::Tensor StyleSummary(const std::map<int, torch::Tensor>& features,
                           const std::vector<int>& layers) {
  SF_CHECK(!layers.empty(), "a style summary needs at least one layer");
  std::vector<torch::Tensor> parts;
  for (int layer : layers) {
    const auto found = features.find(layer);
    SF_CHECK(found != features.end(), "the features lack a summarised layer");
    const torch::Tensor f = found->second.to(torch::kFloat32).flatten(2);  // B x C x HW
    const torch::Tensor mean = f.mean(2);
    const torch::Tensor variance = (f - mean.unsqueeze(2)).pow(2).mean(2);
    parts.push_back(mean);
    parts.push_back((variance + 1e-5).sqrt());
  }
  return torch::cat(parts, 1);
}

StylePredictorImpl::StylePredictorImpl(int64_t summary_size, int64_t embedding_size)
    : summary_size_(summary_size), embedding_size_(embedding_size) {
  SF_CHECK(summary_size > 0 && embedding_size > 0,
           "a style predictor needs a summary and an embedding");
  bottleneck_ = register_module("bottleneck", torch::nn::Linear(summary_size, embedding_size));
  to_norms_ = register_module("to_norms", torch::nn::Linear(embedding_size, NormParameterCount()));
}

torch::Tensor StylePredictorImpl::Embed(const torch::Tensor& summary) {
  SF_CHECK(summary.dim() == 2 && summary.size(1) == summary_size_,
           "a style summary of the predictor's length is needed");
  // The summary's own mean and deviation are taken out: the loss network's
  // activations reach the thousands (a random one's more), and their scale
  // says little about a style. Each map's output is divided by its input
  // count, so that Adam's steps (about the learning rate per weight, whatever
  // the gradient's scale) move the embedding and the norms by about the
  // learning rate, as they move a per-style network's norms; without it, the
  // training of configs/arbitrary.yaml diverged within 25 steps.
  const torch::Tensor centred = summary - summary.mean(1, /*keepdim=*/true);
  const torch::Tensor standard = centred / (centred.pow(2).mean(1, true) + 1e-5).sqrt();
  return bottleneck_(standard) / double(summary_size_);
}

torch::Tensor StylePredictorImpl::NormsOf(const torch::Tensor& embedding) {
  SF_CHECK(embedding.dim() == 2 && embedding.size(1) == embedding_size_,
           "an embedding of the predictor's size is needed");
  return to_norms_(embedding / double(embedding_size_));
}

void InitializeStylePredictor(StylePredictor& predictor, uint64_t seed) {
  torch::NoGradGuard no_grad;
  at::Generator generator = at::detail::createCPUGenerator(seed);
  const auto params = predictor->named_parameters();
  // The forward divides by the summary's length S: weights uniform in
  // +-sqrt(3 S) (variance S) give a standardized summary an embedding of
  // variance 1 at the start.
  const double bound = std::sqrt(3.0 * double(predictor->summary_size()));
  params["bottleneck.weight"].uniform_(-bound, bound, generator);
  params["bottleneck.bias"].zero_();
  params["to_norms.weight"].zero_();
  torch::Tensor bias = params["to_norms.bias"];
  bias.zero_();
  for (const NormSlot& slot : PredictedNormLayout())
    bias.narrow(0, slot.offset, slot.channels).fill_(1.0);
}

}  // namespace stylefleet
