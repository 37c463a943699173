#include "step/forward_pass.h"

#include <ATen/autocast_mode.h>

#include <algorithm>
#include <map>

#include "common/cpu_info.h"
#include "common/error.h"
#include "common/torch_compat.h"
#include "common/vgg_layers.h"
#include "model/style_predictor.h"

namespace stylefleet {
namespace {

// Autocast to bfloat16 on the tensors' device for the guard's lifetime, as
// Python's torch.autocast does (including the cast cache being dropped at the
// outermost exit).
class Bf16Autocast {
 public:
  Bf16Autocast(bool enabled, const torch::Device& device)
      : enabled_(enabled), device_(device.type()) {
    if (!enabled_) return;
    previous_ = GetAutocast(device_);
    SetAutocast(device_, AutocastState{true, at::kBFloat16});
    at::autocast::increment_nesting();
  }
  ~Bf16Autocast() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    SetAutocast(device_, previous_);
  }
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;

 private:
  bool enabled_;
  c10::DeviceType device_;
  AutocastState previous_;
};

torch::ScalarType ComputeType(Precision precision) {
  return precision == Precision::kBf16 ? torch::kBFloat16 : torch::kFloat32;
}

// A target's style layers: its own, or those the pass names for all.
const std::vector<int>& LayersOf(const StyleLossTarget& target, const LossNetworkUse& use) {
  return target.style_layers != nullptr ? *target.style_layers : use.style_layers;
}

// One loss-network pass serves every style: `layers` (the content layers, or
// none), then each style layer some target (or some style of a conditional
// batch) needs.
std::vector<int> PassLayers(std::vector<int> layers, const LossNetworkUse& use,
                            const std::vector<StyleLossTarget>& targets,
                            const std::vector<ConditionalBatch*>& conditional) {
  auto add = [&](const StyleLossTarget& target) {
    for (int layer : LayersOf(target, use)) {
      if (std::find(layers.begin(), layers.end(), layer) == layers.end()) layers.push_back(layer);
    }
  };
  for (size_t k = 0; k < targets.size(); ++k) {
    if (conditional.empty() || conditional[k] == nullptr) {
      add(targets[k]);
    } else {
      for (const StyleLossTarget& target : conditional[k]->targets) add(target);
    }
  }
  return layers;
}

// Each style's terms over its own images (ConditionalBatch), and their
// image-weighted mean. `content_features(layer)` and `style_features(layer)`
// give the batch's generated activations at a layer for each loss.
template <typename Features>
LossTerms ConditionalLosses(ConditionalBatch& batch, const Features& content_features,
                            const Features& style_features,
                            const std::vector<torch::Tensor>& content_targets,
                            const torch::Tensor& generated, const LossNetworkUse& use) {
  const int64_t images = generated.size(0);
  batch.shares.assign(batch.targets.size(), StyleShare{});
  LossTerms mean;
  for (size_t j = 0; j < batch.targets.size(); ++j) {
    const torch::Tensor mine =
        (batch.rows == batch.first_row + static_cast<int64_t>(j)).nonzero().flatten();
    StyleShare& share = batch.shares[j];
    share.images = mine.size(0);
    if (share.images == 0) continue;
    // All of the batch: the tensors themselves, so that a one-style batch
    // computes exactly what a per-style network's does.
    auto pick = [&](const torch::Tensor& t) {
      return share.images == images ? t : t.index_select(0, mine);
    };
    const StyleLossTarget& target = batch.targets[j];
    SF_CHECK(target.style_grams != nullptr, "style grams missing");
    std::vector<torch::Tensor> gen_content, content, gen_style;
    for (size_t i = 0; i < use.content_layers.size(); ++i) {
      gen_content.push_back(pick(content_features(use.content_layers[i])));
      content.push_back(pick(content_targets[i]));
    }
    for (int layer : LayersOf(target, use)) gen_style.push_back(pick(style_features(layer)));
    share.terms = ComputeLosses(gen_content, content, gen_style, *target.style_grams,
                                pick(generated), target.weights);
    const double fraction = double(share.images) / double(images);
    auto add = [&](torch::Tensor& sum, const torch::Tensor& term) {
      const torch::Tensor weighted = share.images == images ? term : term * fraction;
      sum = sum.defined() ? sum + weighted : weighted;
    };
    add(mean.content, share.terms.content);
    add(mean.style, share.terms.style);
    add(mean.tv, share.terms.tv);
    add(mean.total, share.terms.total);
    mean.style_layers.resize(share.terms.style_layers.size());
    for (size_t i = 0; i < share.terms.style_layers.size(); ++i)
      add(mean.style_layers[i], share.terms.style_layers[i]);
  }
  SF_CHECK(mean.total.defined(), "a conditional batch holds images of none of its styles");
  return mean;
}

}  // namespace

const char* PrecisionName(Precision precision) {
  return precision == Precision::kBf16 ? "bf16" : "fp32";
}

torch::Tensor StyleImageSummary(const Vgg16& vgg, const torch::Tensor& style_images,
                                const std::vector<int>& layers) {
  torch::NoGradGuard no_grad;
  return StyleSummary(vgg.Forward(style_images, layers, torch::kFloat32), layers);
}

std::vector<torch::Tensor> StyleGrams(const Vgg16& vgg, const torch::Tensor& style_image,
                                      const std::vector<int>& layers, Precision precision) {
  torch::NoGradGuard no_grad;
  const auto features = vgg.Forward(style_image, layers, ComputeType(precision));
  std::vector<torch::Tensor> grams;
  for (int layer : layers) grams.push_back(Gram(features.at(layer).to(torch::kFloat32)));
  return grams;
}

namespace {

// The StyleMix of a conditional batch: its rows, or an arbitrary-style
// network's predicted norms of each image's style (outside autocast: the
// predictor's few FLOPs stay in float32).
StyleMix MixOf(TransformerNet& net, const ConditionalBatch& batch) {
  if (!net->predicts_norms()) return batch.rows;
  SF_CHECK(batch.summaries.defined() &&
               batch.summaries.size(0) == static_cast<int64_t>(batch.targets.size()),
           "an arbitrary-style network's batch needs one style summary per target");
  return net->predictor()->forward(batch.summaries.index_select(0, batch.rows - batch.first_row));
}

// What the loss network made of one step's images.
struct LossNetworkPasses {
  std::vector<torch::Tensor> generated;       ///< each network's images, float32
  std::map<int, torch::Tensor> colours;       ///< the generated images, stacked
  std::map<int, torch::Tensor> luma;          ///< their luminance (style_luminance_only)
  std::vector<torch::Tensor> target_content;  ///< the content images' content layers
  bool luminance = false;
  const std::map<int, torch::Tensor>& style_pass() const { return luminance ? luma : colours; }
};

// Phase kLoss: each network's losses from its share of the passes (`batch`
// images each, stacked in network order).
std::vector<LossTerms> LossesOfPasses(const LossNetworkPasses& passes, int64_t batch,
                                      const std::vector<StyleLossTarget>& targets,
                                      const LossNetworkUse& use,
                                      const std::vector<ConditionalBatch*>& conditional) {
  const size_t nets = passes.generated.size();
  std::vector<LossTerms> out;
  for (size_t k = 0; k < nets; ++k) {
    // Net k's share of a pass's activations at a layer.
    auto part_of = [nets, k, batch](const std::map<int, torch::Tensor>& pass) {
      return [&pass, nets, k, batch](int layer) {
        const torch::Tensor& f = pass.at(layer);
        const torch::Tensor mine =
            nets == 1 ? f : f.narrow(0, static_cast<int64_t>(k) * batch, batch);
        return mine.to(torch::kFloat32);
      };
    };
    const auto content_part = part_of(passes.colours);
    const auto style_part = part_of(passes.style_pass());
    if (ConditionalBatch* conditional_batch = conditional.empty() ? nullptr : conditional[k]) {
      out.push_back(ConditionalLosses(*conditional_batch, content_part, style_part,
                                      passes.target_content, passes.generated[k], use));
      continue;
    }
    std::vector<torch::Tensor> gen_content, gen_style;
    for (int layer : use.content_layers) gen_content.push_back(content_part(layer));
    for (int layer : LayersOf(targets[k], use)) gen_style.push_back(style_part(layer));
    SF_CHECK(targets[k].style_grams != nullptr, "style grams missing");
    out.push_back(ComputeLosses(gen_content, passes.target_content, gen_style,
                                *targets[k].style_grams, passes.generated[k], targets[k].weights));
  }
  return out;
}

}  // namespace

std::vector<LossTerms> ForwardStyleLosses(const std::vector<TransformerNet*>& nets,
                                          const Vgg16& vgg, const torch::Tensor& content,
                                          const std::vector<StyleLossTarget>& targets,
                                          const LossNetworkUse& use, StepClock* clock,
                                          const std::vector<ConditionalBatch*>& conditional) {
  SF_CHECK(!nets.empty() && nets.size() == targets.size(), "one loss target per network");
  SF_CHECK(conditional.empty() || conditional.size() == nets.size(),
           "one conditional batch entry per network");
  auto begin = [&](Phase phase, const char* detail) {
    if (clock != nullptr) clock->Begin(phase, detail);
  };
  const torch::ScalarType type = ComputeType(use.precision);
  LossNetworkPasses passes;
  {
    // The content batch only needs the content layers, and no gradients.
    begin(Phase::kVggForward, "content");
    torch::NoGradGuard no_grad;
    const auto features = vgg.Forward(content, use.content_layers, type);
    for (int layer : use.content_layers) {
      passes.target_content.push_back(features.at(layer).to(torch::kFloat32));
    }
  }
  {
    begin(Phase::kTransformerForward, "");
    std::vector<StyleMix> mixes;
    for (size_t k = 0; k < nets.size(); ++k) {
      const ConditionalBatch* batch = conditional.empty() ? nullptr : conditional[k];
      mixes.push_back(batch != nullptr ? MixOf(*nets[k], *batch) : StyleMix());
    }
    Bf16Autocast autocast(use.precision == Precision::kBf16, content.device());
    for (size_t k = 0; k < nets.size(); ++k) {
      passes.generated.push_back((*nets[k])->forward(content, mixes[k]).to(torch::kFloat32));
    }
  }
  // One pass over every layer some style needs; each style reads its own.
  // With the style loss on luminance, the colours' pass stops at the content
  // layers and a second pass takes the style layers of the luminance.
  begin(Phase::kVggForward, "generated");
  const torch::Tensor stacked =
      passes.generated.size() == 1 ? passes.generated[0] : torch::cat(passes.generated, 0);
  passes.luminance = use.style_luminance_only;
  passes.colours =
      vgg.Forward(stacked,
                  passes.luminance ? use.content_layers
                                   : PassLayers(use.content_layers, use, targets, conditional),
                  type);
  if (passes.luminance) {
    begin(Phase::kVggForward, "generated luminance");
    passes.luma =
        vgg.Forward(LuminanceImage(stacked), PassLayers({}, use, targets, conditional), type);
  }
  begin(Phase::kLoss, "");
  return LossesOfPasses(passes, content.size(0), targets, use, conditional);
}

}  // namespace stylefleet
