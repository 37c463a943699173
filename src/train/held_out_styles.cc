#include "train/held_out_styles.h"

#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "data/image_tensor.h"
#include "loss/losses.h"

namespace stylefleet {

HeldOutStyles::HeldOutStyles(const TrainPlan& plan, const Vgg16& vgg, const LossNetworkUse& use,
                             const LossWeights& weights, const std::vector<int>& summary_layers,
                             const torch::Device& device)
    : vgg_(vgg), use_(use), weights_(weights), styles_(plan.held_out) {
  if (styles_.empty()) return;
  // An arbitrary network's styles share one training section.
  const int side = plan.job.styles.front().training.style_image_size;
  for (const HeldOutStyle& held : styles_) {
    const auto found = plan.style_images.find({held.image, side});
    SF_CHECK(found != plan.style_images.end(),
             "held-out style '" + held.name + "': its image was not decoded");
    const torch::Tensor pixels = ImageToTensor(found->second).to(device);
    grams_.push_back(StyleGrams(vgg, use.style_luminance_only ? LuminanceImage(pixels) : pixels,
                                use.style_layers, use.precision));
    summaries_.push_back(StyleImageSummary(vgg, pixels, summary_layers));
  }
}

std::vector<HeldOutLosses> HeldOutStyles::Measure(TransformerNet& net,
                                                  const torch::Tensor& photos) const {
  torch::NoGradGuard no_grad;
  std::vector<HeldOutLosses> out;
  for (size_t h = 0; h < styles_.size(); ++h) {
    // Every photo gets this style: a one-style batch of the arbitrary network.
    ConditionalBatch batch;
    batch.rows = torch::zeros({photos.size(0)}, photos.options().dtype(torch::kInt64));
    batch.targets = {StyleLossTarget{&grams_[h], weights_, &use_.style_layers}};
    batch.summaries = summaries_[h];
    const std::vector<StyleLossTarget> targets = batch.targets;  // the batch's, for the check
    const LossTerms terms =
        ForwardStyleLosses({&net}, vgg_, photos, targets, use_, nullptr, {&batch}).front();
    out.push_back({terms.content.item<double>(), terms.style.item<double>(),
                   terms.tv.item<double>(), terms.total.item<double>()});
  }
  return out;
}

namespace {
HeldOutLosses MeanOf(const std::vector<HeldOutLosses>& losses) {
  HeldOutLosses mean;
  for (const HeldOutLosses& l : losses) {
    mean.content += l.content / double(losses.size());
    mean.style += l.style / double(losses.size());
    mean.tv += l.tv / double(losses.size());
    mean.total += l.total / double(losses.size());
  }
  return mean;
}

nlohmann::json LossesJson(const HeldOutLosses& l) {
  return {{"content_loss", l.content},
          {"style_loss", l.style},
          {"tv_loss", l.tv},
          {"total_loss", l.total}};
}
}  // namespace

std::string HeldOutStyles::RecordLine(int64_t step,
                                      const std::vector<HeldOutLosses>& losses) const {
  nlohmann::json record = LossesJson(MeanOf(losses));
  record["step"] = step;
  nlohmann::json each = nlohmann::json::object();
  for (size_t h = 0; h < styles_.size(); ++h) each[styles_[h].name] = LossesJson(losses[h]);
  record["styles"] = each;
  return record.dump() + "\n";
}

std::string HeldOutStyles::Describe(int64_t step, const std::vector<HeldOutLosses>& losses) const {
  const HeldOutLosses mean = MeanOf(losses);
  std::ostringstream line;
  line << std::setprecision(4) << "held-out styles at step " << step << ": style loss "
       << mean.style << ", total " << mean.total << " (mean of " << losses.size() << ":";
  for (size_t h = 0; h < styles_.size(); ++h) {
    line << " " << styles_[h].name << "=" << losses[h].style;
  }
  line << ")";
  return line.str();
}

}  // namespace stylefleet
