// An arbitrary-style network's held-out style set (job.held_out_styles):
// style images the network never trains on. At preview steps the network,
// its norms predicted from each of them, stylizes the validation photos and
// its losses against each image's own Gram targets are recorded: how well the
// predictor does on styles it never saw.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "model/transformer_net.h"
#include "model/vgg16.h"
#include "step/forward_pass.h"
#include "train/train_plan.h"

namespace stylefleet {

/// One held-out style's losses on the validation photos (the seed's terms,
/// as a metrics record has them: style unweighted, total weighted).
struct HeldOutLosses {
  double content = 0;
  double style = 0;
  double tv = 0;
  double total = 0;
};

class HeldOutStyles {
 public:
  /// Computes each of `plan.held_out`'s Gram targets at `use`'s style layers
  /// (as the training styles' are: in `use`'s precision, on the luminance
  /// when the style loss is) and its predictor summary at `summary_layers`.
  HeldOutStyles(const TrainPlan& plan, const Vgg16& vgg, const LossNetworkUse& use,
                const LossWeights& weights, const std::vector<int>& summary_layers,
                const torch::Device& device);

  bool empty() const { return styles_.empty(); }
  const std::vector<HeldOutStyle>& styles() const { return styles_; }

  /// `net`'s losses on `photos` (V x 3 x S x S, 0..255), one per held-out
  /// style in order, without gradients.
  std::vector<HeldOutLosses> Measure(TransformerNet& net, const torch::Tensor& photos) const;

  /// The held_out.jsonl record of `losses` at `step`: their mean and each
  /// style's, by name.
  std::string RecordLine(int64_t step, const std::vector<HeldOutLosses>& losses) const;
  /// The log line of the same.
  std::string Describe(int64_t step, const std::vector<HeldOutLosses>& losses) const;

 private:
  const Vgg16& vgg_;
  LossNetworkUse use_;
  LossWeights weights_;
  std::vector<HeldOutStyle> styles_;
  std::vector<std::vector<torch::Tensor>> grams_;  ///< per style, one per style layer
  std::vector<torch::Tensor> summaries_;           ///< per style, [1 x S]
};

}  // namespace stylefleet
