// VGG-16's 13 convolution layers as a frozen loss network with named endpoints.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace stylefleet {

/// How the network expects its input: x' = (x / 255 * input_scale - mean) / std,
/// with x the image in 0..255. torchvision's weights use input_scale 1
/// (0..1 images) and the ImageNet mean/std.
struct VggNormalization {
  double input_scale = 1.0;
  std::array<double, 3> mean = {0.485, 0.456, 0.406};
  std::array<double, 3> std = {0.229, 0.224, 0.225};
};

/// The activation scale of launch/convert_vgg16.py's default output, the
/// "seed-balanced" convention: torchvision's VGG-16 with every activation
/// multiplied by this, so that loss weights in the seed's scale (content 1,
/// style ~100) balance content and style as the seed's TF-slim/Caffe VGG-16
/// did. Content grows with its square, style with its fourth power. Why 90:
/// configs/README.md ("Loss weights and the loss network").
constexpr double kSeedBalancedActivationScale = 90.0;

/// What a loss network's activations mean for the loss weights: the input
/// convention (VggNormalization) says how images are fed, this how large the
/// activations are compared with the network it was converted from.
struct VggConvention {
  /// "seed-balanced" (converter default), "torchvision" (activations as
  /// torchvision's), "custom" (another recorded scale), "seed-input" (a file
  /// fed as the seed's VGG: 0..255 minus the mean pixel), "random" (built in).
  std::string name;
  double activation_scale = 1.0;  ///< as recorded; 1 when not recorded
  /// Read from `stylefleet.convention` in the file; false: inferred from the
  /// input convention (a plain state dict or an older converter's file).
  bool recorded = false;
  /// True when loss weights in the seed's scale balance as in the seed.
  bool BalancesSeedWeights() const;
};

/// Frozen VGG-16 features. Not thread-safe (one trainer uses one instance).
class Vgg16 {
 public:
  /// Loads `spec`: `random:SEED` (deterministic variance-preserving random init
  /// with the seed's TF-slim input convention: 0..255 minus the mean pixel) or a file written by
  /// torch.save holding a dict with torchvision's keys `features.{0,2,5,...,28}.{weight,bias}` (a
  /// whole vgg16 state dict works: other keys are ignored) and optionally `stylefleet.input_scale`,
  /// `stylefleet.mean`, `stylefleet.std`, `stylefleet.activation_scale` and
  /// `stylefleet.convention` (the name as uint8 bytes). Throws DataError naming the file and key
  /// on any problem.
  static Vgg16 Load(const std::string& spec);

  /// True when loaded from `random:SEED`.
  bool is_random() const { return is_random_; }
  const VggNormalization& normalization() const { return norm_; }
  const VggConvention& convention() const { return convention_; }

  /// One line for `check` and the training log: the convention, its input
  /// and activation scale, and whether the file records it.
  std::string DescribeConvention() const;

  /// Why loss weights in the seed's scale (stylefleet's defaults, seed-style
  /// files, configs/) do not balance with this network, and what to do; empty
  /// when they do.
  std::string SeedBalanceWarning() const;

  /// Runs `image` (N x 3 x H x W, RGB 0..255) only as deep as the deepest of
  /// `layers` (indices 0..12, see common/vgg_layers.h) and returns the
  /// activation of each requested layer, after its ReLU. `compute_type`
  /// float32 or bfloat16: the convolutions' arithmetic and the activations'
  /// type (the normalization is always float32).
  std::map<int, torch::Tensor> Forward(const torch::Tensor& image, const std::vector<int>& layers,
                                       torch::ScalarType compute_type = torch::kFloat32) const;

  /// Layers 0..`deepest`'s weights and biases under torchvision's names
  /// (`features.N.weight`, `features.N.bias`, float32, as Forward applies
  /// them: a recorded activation scale is in them) and the input convention
  /// (`input_scale` as a float64 scalar, `mean` and `std` as float64 [3]),
  /// each name after `prefix`: what another program needs to run the network
  /// that deep without its file (`export` of an arbitrary-style model).
  std::vector<std::pair<std::string, torch::Tensor>> LayersUpTo(int deepest,
                                                                const std::string& prefix) const;
  /// Moves the weights to `device`.
  void To(const torch::Device& device);

  /// Stores the weights channels-last (NHWC), the layout GPU tensor cores and
  /// some oneDNN kernels prefer; inputs should then be channels-last too.
  void UseChannelsLast();

 private:
  std::vector<torch::Tensor> weights_, biases_;  // 13 each
  // bfloat16 copies, made once: casting 15 M frozen weights every pass costs
  // as much as a convolution layer.
  std::vector<torch::Tensor> weights_bf16_, biases_bf16_;
  void MakeBf16Copies();
  VggNormalization norm_;
  VggConvention convention_;
  torch::Tensor mean_, inv_std_;  // 1x3x1x1
  bool is_random_ = false;
  bool channels_last_ = false;  // UseChannelsLast: LibTorch's kernels in that layout
};

/// Indices (0..12) of VGG-16 layer names; throws ConfigError naming an unknown one.
std::vector<int> VggLayerIndices(const std::vector<std::string>& names);

}  // namespace stylefleet
