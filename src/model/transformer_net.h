// The image transformation network of Johnson et al. (2016), as in the seed
// project and the PyTorch example.
//
// Layout: reflection-padded conv 9x9/32, conv 3x3/64 stride 2, conv 3x3/128
// stride 2 (each with instance norm + ReLU), five residual blocks of 128
// channels, two nearest-upsample x2 + conv 3x3 blocks (64, 32) with instance
// norm + ReLU, and a final 9x9 conv to 3 channels.
//
// Head: linear (unbounded), as the PyTorch example's TransformerNet: input is
// RGB in 0..255, output is meant as RGB 0..255 and is clamped only when an
// image is written. Parameter names are the PyTorch example's
// (`conv1.conv2d.weight`, `in1.weight`, `res1.conv1.conv2d.weight`, ...), so a
// state dict moves between stylefleet and that example unchanged.
//
// Conditional (Dumoulin, Shlens and Kudlur, "A Learned Representation for
// Artistic Style", 2017): one network for N styles. The convolutions are
// shared; every instance norm holds N rows of scale and shift (`in1.weight` is
// N x 32 instead of 32), and each image is normalized with its style's row, or
// with a convex combination of rows (a blend). Row s of a conditional network
// is exactly the affine scale/shift of a per-style network.
//
// Arbitrary style (Ghiasi et al., "Exploring the structure of a real-time,
// arbitrary neural artistic stylization network", 2017): the same shared
// convolutions, and norms that hold no parameters of their own; each image
// brings its scale and shift for every norm (predicted from a style image by
// model/style_predictor.h), laid out as PredictedNormLayout says.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "model/style_predictor.h"

namespace stylefleet {

/// Reflection padding of kernel/2 followed by a convolution.
class ConvLayerImpl : public torch::nn::Module {
 public:
  ConvLayerImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t upsample = 1);
  torch::Tensor forward(const torch::Tensor& x);

  /// Nearest-neighbour upsampling factor applied before padding (1: none).
  int64_t upsample() const { return upsample_; }
  /// The convolution (its weight, bias, kernel and stride); padding is the
  /// reflection of kernel/2 done here, not the convolution's own.
  torch::nn::Conv2dImpl& conv() { return *conv2d_; }
  /// The convolution alone, on an input already upsampled and padded (a
  /// whole image or a tile's window): 3x3 stride-1 layers by Conv3x3.
  torch::Tensor Convolve(const torch::Tensor& padded);

 private:
  int64_t pad_;
  int64_t upsample_;
  torch::nn::Conv2d conv2d_{nullptr};
};
TORCH_MODULE(ConvLayer);

/// Which scale/shift rows a conditional network uses for each image of a
/// batch: undefined for a per-style network; int64 [B] style indices; or
/// float [B x N] blend weights (each row a convex combination). For an
/// arbitrary-style network: float [B x NormParameterCount()], each image's
/// scales and shifts of every norm (PredictedNormLayout).
using StyleMix = torch::Tensor;

/// One instance norm's place in an arbitrary-style network's per-image
/// parameters: `channels` scales from `offset`, then `channels` shifts when
/// `shifted`. The shift of each residual block's second norm is left out: the
/// next norms cancel it exactly (see TrainableParameters), so it is 0.
struct NormSlot {
  std::string name;  ///< the norm's module path, as in a state dict: in1, res1.in2, ...
  int64_t channels = 0;
  int64_t offset = 0;
  bool shifted = true;
};

/// The norms of the network in forward order (in1, in2, in3, res1.in1,
/// res1.in2, ..., res5.in2, in4, in5) and where each one's parameters lie.
const std::vector<NormSlot>& PredictedNormLayout();
/// The length of an image's norm parameters in an arbitrary-style network (2,560).
int64_t NormParameterCount();

/// Instance normalization (per image and channel, biased variance, eps 1e-5)
/// with a learned scale `weight` and shift `bias`: shape [C] for a per-style
/// network (the same arithmetic as torch::nn::InstanceNorm2d with affine), or
/// [N x C] for a conditional one, whose forward takes a StyleMix.
class InstanceNormLayerImpl : public torch::nn::Module {
 public:
  InstanceNormLayerImpl(int64_t channels, int64_t styles);
  /// A norm without parameters, whose forward takes each image's scale and
  /// shift from the StyleMix at `slot`.
  explicit InstanceNormLayerImpl(const NormSlot& slot);
  /// The normalized x, followed by a ReLU when `then_relu`.
  torch::Tensor forward(const torch::Tensor& x, const StyleMix& mix, bool then_relu = false);

  static constexpr double kEps = 1e-5;
  torch::Tensor weight, bias;  ///< undefined in an arbitrary-style network

 private:
  // Each image's scale and shift: a conditional network's rows (or blends)
  // or an arbitrary-style network's slice of the mix; [B * C] each.
  std::pair<torch::Tensor, torch::Tensor> ScaleAndShift(const StyleMix& mix, int64_t b, int64_t c);
  NormSlot slot_;  // arbitrary-style only (channels 0 otherwise)
};
TORCH_MODULE(InstanceNormLayer);

class ResidualBlockImpl : public torch::nn::Module {
 public:
  /// Two 3x3 convolutions of `channels`, each followed by its norm.
  ResidualBlockImpl(int64_t channels, InstanceNormLayer in1, InstanceNormLayer in2);
  torch::Tensor forward(const torch::Tensor& x, const StyleMix& mix);

 private:
  ConvLayer conv1_{nullptr}, conv2_{nullptr};
  InstanceNormLayer in1_{nullptr}, in2_{nullptr};
};
TORCH_MODULE(ResidualBlock);

/// Selects the arbitrary-style network's constructor, and shapes the style
/// predictor it owns.
struct PredictedNorms {
  /// The loss-network layers (VGG indices, 0..12) whose StyleSummary feeds
  /// the predictor, in summary order: conv1_2, conv2_2, conv3_3 and conv4_3
  /// by default (the style layers of the seed), 1,920 numbers.
  std::vector<int> summary_layers = {1, 3, 6, 9};
  int64_t embedding_size = 100;  ///< the bottleneck (the paper's 100)

  /// The length of a StyleSummary of `summary_layers`.
  int64_t SummarySize() const;
};

class TransformerNetImpl : public torch::nn::Module {
 public:
  /// `styles` 0: a per-style network; N >= 1: a conditional network of N styles.
  explicit TransformerNetImpl(int64_t styles = 0);
  /// An arbitrary-style network: its norms take each image's parameters, which
  /// its style predictor (registered last, as `predictor`) makes from a
  /// style image's summary.
  explicit TransformerNetImpl(PredictedNorms shape);
  /// x: B x 3 x H x W, RGB 0..255, H and W multiples of 4. Returns the same
  /// shape. A conditional or arbitrary-style network needs `mix` (B entries);
  /// a per-style one takes none.
  torch::Tensor forward(const torch::Tensor& x, const StyleMix& mix = {});

  /// N for a conditional network of N styles, 0 for a per-style or an
  /// arbitrary-style network.
  int64_t styles() const { return styles_; }
  /// True for an arbitrary-style network.
  bool predicts_norms() const { return predicts_norms_; }
  /// An arbitrary-style network's predictor and its shape (throws Error for
  /// the other kinds).
  StylePredictor& predictor();
  const PredictedNorms& predicted_norms() const;

 private:
  // Registers the layers in the order of the state dict (the PyTorch
  // example's), `norm(k)` giving the k-th norm of PredictedNormLayout().
  void Build(const std::function<InstanceNormLayer(size_t)>& norm);
  int64_t styles_;
  bool predicts_norms_ = false;
  PredictedNorms shape_;
  StylePredictor predictor_{nullptr};
  ConvLayer conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  InstanceNormLayer in1_{nullptr}, in2_{nullptr}, in3_{nullptr}, in4_{nullptr}, in5_{nullptr};
  ResidualBlock res1_{nullptr}, res2_{nullptr}, res3_{nullptr}, res4_{nullptr}, res5_{nullptr};
  ConvLayer deconv1_{nullptr}, deconv2_{nullptr}, deconv3_{nullptr};
};
TORCH_MODULE(TransformerNet);

/// The parameters that training updates, with their names, in a fixed order.
///
/// Left out (kept at zero, still in every state dict): the biases that an
/// instance norm cancels exactly — those of every conv followed by one, and of
/// each residual block's second norm (its per-channel offset travels the
/// residual stream to deconv1 and is removed by in4). Their true gradient is 0;
/// Adam would turn float rounding noise into full-size random steps, which
/// changes nothing in the output but makes runs irreproducible across rank
/// counts.
std::vector<std::pair<std::string, torch::Tensor>> TrainableParameters(TransformerNet& net);

/// Draws the parameters of `net` from a generator seeded with `seed`, with
/// LibTorch's default distributions for convolutions (uniform in +-1/sqrt(fan_in),
/// weights and trainable biases); instance norms start at scale 1, shift 0 and
/// the frozen biases stay 0. An explicit generator rather than the global one,
/// so that ranks driven from threads of one process (tests) initialise alike.
/// An arbitrary-style network's predictor: InitializeStylePredictor with a
/// seed derived from `seed`.
void InitializeTransformer(TransformerNet& net, uint64_t seed);

/// True for the scale/shift rows of a conditional network's instance norms:
/// what one style owns (its row) rather than what all styles share.
bool IsStyleRowParameter(const std::string& name);

/// Freezes everything the styles share (convolutions): afterwards only the
/// instance norms' rows train. For adding styles to a trained conditional
/// network, whose other styles then stay bit-identical as long as no batch
/// holds them (their rows get zero gradients, so Adam leaves them).
void FreezeSharedLayers(TransformerNet& net);

/// A per-style network equal to `conditional` with the blend `weights` ([N],
/// convex: checked by the caller): the shared convolutions copied, each norm's
/// scale and shift the weighted sum of its rows. With all weight on style s
/// it computes exactly what the conditional network does for s.
TransformerNet BlendedTransformer(TransformerNet& conditional, const torch::Tensor& weights);

/// Row `row` of a conditional network as an arbitrary-style network's norm
/// parameters ([NormParameterCount()]): with them, ArbitraryTransformer(net)
/// computes for an image exactly what `net` does for style `row`.
torch::Tensor ConditionalRowNorms(TransformerNet& conditional, int64_t row);

/// An arbitrary-style network with the convolutions of `source` (a per-style
/// or conditional network) copied: what a trained conditional network gives
/// an arbitrary-style training to start from. Its predictor, of `shape`, is
/// drawn from `seed` as InitializeTransformer draws it.
TransformerNet ArbitraryTransformer(TransformerNet& source, const PredictedNorms& shape = {},
                                    uint64_t seed = 0);

/// A per-style network equal to the arbitrary-style network `arbitrary` with
/// the norm parameters `norms` ([NormParameterCount()]) fixed: the shared
/// convolutions copied, each norm's scale and shift from its slot (a shift
/// the layout leaves out is 0). For one style image, what stylize runs (whole
/// or tiled), as BlendedTransformer is for a conditional network.
TransformerNet FixedNormsTransformer(TransformerNet& arbitrary, const torch::Tensor& norms);

/// A conditional network of `styles` whose first rows come from `base` (a
/// conditional network with fewer styles): shared layers and rows copied; the
/// new rows start at the mean of the base's rows (a trained average style,
/// nearer to what the shared layers expect than scale 1 and shift 0).
TransformerNet ExtendedTransformer(TransformerNet& base, int64_t styles);

/// Name of the head, stored in model files' metadata.
constexpr const char* kTransformerHead = "linear";

/// Copies `params` (state-dict names as above) into `net`. Keys the example's
/// old checkpoints carry but the network does not use (instance-norm
/// running_mean/running_var) are ignored, as is anything under "stylefleet.".
/// Throws DataError naming `source` and the key on a missing key, a shape
/// mismatch or an unexpected key.
void LoadTransformerParameters(TransformerNet& net,
                               const std::vector<std::pair<std::string, torch::Tensor>>& params,
                               const std::string& source);

}  // namespace stylefleet
