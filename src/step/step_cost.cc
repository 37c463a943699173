#include "step/step_cost.h"

#include <algorithm>
#include <cmath>

#include "common/vgg_layers.h"

namespace stylefleet {
namespace {

double ConvFlops(double cin, double cout, double kernel, double out_side) {
  return 2.0 * cin * cout * kernel * kernel * out_side * out_side;
}

double VggForwardFlops(int image_size, int deepest) {
  double total = 0, side = image_size;
  for (int l = 0; l <= deepest; ++l) {
    total += ConvFlops(double(VggLayerInChannels(l)), double(VggLayerChannels(l)), 3, side);
    if (VggPoolAfter(l)) side = std::floor(side / 2);
  }
  return total;
}

// Transformer convolutions as (in, out, kernel, output side / image side).
struct ConvShape {
  double cin, cout, kernel, scale;
};
std::vector<ConvShape> TransformerConvs() {
  std::vector<ConvShape> convs = {{3, 32, 9, 1}, {32, 64, 3, 0.5}, {64, 128, 3, 0.25}};
  for (int i = 0; i < 10; ++i) convs.push_back({128, 128, 3, 0.25});
  convs.push_back({128, 64, 3, 0.5});
  convs.push_back({64, 32, 3, 1});
  convs.push_back({32, 3, 9, 1});
  return convs;
}

}  // namespace

StepFlops TrainingFlopsPerImage(int image_size, const std::vector<int>& content_layers,
                                const std::vector<int>& style_layers) {
  StepFlops flops;
  bool first = true;
  for (const ConvShape& c : TransformerConvs()) {
    const double f = ConvFlops(c.cin, c.cout, c.kernel, image_size * c.scale);
    flops.transformer_forward += f;
    // Weight gradients everywhere; input gradients except for the first
    // convolution, whose input (the content image) needs none.
    flops.transformer_backward += first ? f : 2 * f;
    first = false;
  }
  int deepest = 0, deepest_content = 0;
  for (int l : style_layers) deepest = std::max(deepest, l);
  for (int l : content_layers) {
    deepest = std::max(deepest, l);
    deepest_content = std::max(deepest_content, l);
  }
  // The loss network's weights are frozen: its backward is input gradients only.
  flops.vgg_generated = 2 * VggForwardFlops(image_size, deepest);
  flops.vgg_content = content_layers.empty() ? 0 : VggForwardFlops(image_size, deepest_content);
  return flops;
}

double StylizeFlopsPerImage(int image_size) {
  double total = 0;
  for (const ConvShape& c : TransformerConvs())
    total += ConvFlops(c.cin, c.cout, c.kernel, image_size * c.scale);
  return total;
}

double EstimateTrainingPeakBytes(int image_size, int images_per_pass, bool style_luminance_only) {
  constexpr double kBaseBytes = 400e6;
  constexpr double kBytesPerPixel = 9e3;
  constexpr double kLuminancePassBytesPerPixel = 1.6e3;
  const double per_pixel =
      kBytesPerPixel + (style_luminance_only ? kLuminancePassBytesPerPixel : 0);
  return kBaseBytes + per_pixel * images_per_pass * double(image_size) * image_size;
}

}  // namespace stylefleet
