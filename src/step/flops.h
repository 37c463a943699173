// What a step and a stylization cost in floating-point operations, counted
// from the layer shapes. Torch-free.
#pragma once

#include <vector>

namespace stylefleet {

/// Floating-point operations of one training image (transformer forward and
/// backward, loss network forward and input-gradient backward for the
/// generated image, loss network forward for the content image), counted
/// from the layer shapes: 2 * Cin * Cout * k * k * Hout * Wout per
/// convolution, backward twice the forward (input and weight gradients) where
/// both are needed. Elementwise work is not counted.
struct StepFlops {
  double transformer_forward = 0;
  double transformer_backward = 0;
  double vgg_generated = 0;  ///< forward + input-gradient backward
  double vgg_content = 0;    ///< forward to the deepest content layer
  double total() const {
    return transformer_forward + transformer_backward + vgg_generated + vgg_content;
  }
};
/// `content_layers` and `style_layers` are VGG indices (0..12).
StepFlops TrainingFlopsPerImage(int image_size, const std::vector<int>& content_layers,
                                const std::vector<int>& style_layers);

/// Floating-point operations of stylizing one image of side `image_size`.
double StylizeFlopsPerImage(int image_size);

}  // namespace stylefleet
