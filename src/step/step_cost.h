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
/// base (libraries, both networks, optimizer state) plus 7.5 KB per pixel of
/// every image one forward pass holds (`images_per_pass` = batch per rank /
/// micro_batches, times the styles trained together), which is what the
/// transformer and the loss network keep for the backward pass. Fitted to the
/// peak RSS of `stylefleet train` (fp32, default layers) on the 2-core CI
/// machine on 2026-11-29: 128 px x 2 images 0.55 GB, 256 x 2 1.19 GB, 256 x 4
/// 2.02 GB, 384 x 4 4.55 GB; the formula gives 0.56, 1.29, 2.28 and 4.73 GB, on
/// the safe side. Winograd convolutions (job.convolution) hold layout copies
/// and transformed tiles: `bench` at 256 px, batch 2 and 8 peaked at 1.33 and
/// 4.08 GB with them, 1.23 and 3.71 GB without (2026-11-30), hence the base of
/// 0.4 GB (formula: 1.38 and 4.33 GB).
double EstimateTrainingPeakBytes(int image_size, int images_per_pass);

}  // namespace stylefleet
