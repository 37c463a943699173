// What a step and a stylization cost: floating-point operations counted from
// the layer shapes, and the peak memory of a training process. Torch-free.
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

/// Estimated peak resident memory of a training process on CPU, in bytes: a
/// base (libraries, both networks, optimizer state) plus 9 KB per pixel of
/// every image one forward pass holds (`images_per_pass` = batch per rank /
/// micro_batches, times the styles trained together), which is what the
/// transformer and the loss network keep for the backward pass, and 1.6 KB per
/// pixel more for the luminance pass of `style_luminance_only`. Fitted, on the
/// safe side, to the peak RSS of `stylefleet train` and `bench` at 128 to 384
/// px with Winograd convolutions (they hold layout copies and transformed
/// tiles) and without, on Intel and AMD CPUs; the measurements are in
/// docs/testing.md ("Memory is checked before it is spent").
double EstimateTrainingPeakBytes(int image_size, int images_per_pass, bool style_luminance_only);

}  // namespace stylefleet
