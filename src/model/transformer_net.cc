#include "model/transformer_net.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cctype>
#include <cmath>
#include <map>

#include "common/error.h"
#include "common/vgg_layers.h"
#include "model/transformer_kernels.h"
#include "model/winograd_conv.h"

namespace stylefleet {
namespace nn = torch::nn;
namespace F = torch::nn::functional;
namespace {
// Mixed into a network's seed for its style predictor's generator.
constexpr uint64_t kPredictorSeedMix = 0x9e3779b97f4a7c15ULL;
}  // namespace

ConvLayerImpl::ConvLayerImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                             int64_t upsample)
    : pad_(kernel / 2), upsample_(upsample) {
  conv2d_ =
      register_module("conv2d", nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride)));
}

torch::Tensor ConvLayerImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = x;
  if (upsample_ > 1) {
    y = F::interpolate(y,
                       F::InterpolateFuncOptions()
                           .scale_factor(std::vector<double>{double(upsample_), double(upsample_)})
                           .mode(torch::kNearest));
  }
  return Convolve(ReflectionPad(y, pad_));
}

torch::Tensor ConvLayerImpl::Convolve(const torch::Tensor& padded) {
  const auto& options = conv2d_->options;
  if ((*options.stride())[0] != 1 || (*options.stride())[1] != 1) return conv2d_(padded);
  if ((*options.kernel_size())[0] == 3 && (*options.kernel_size())[1] == 3) {
    return Conv3x3(padded, conv2d_->weight, conv2d_->bias, 0);
  }
  // Falls back to torch::conv2d (stride 1, no padding: what conv2d_ does for
  // these layers) where its kernel does not apply.
  return NarrowOutputConv(padded, conv2d_->weight, conv2d_->bias);
}

InstanceNormLayerImpl::InstanceNormLayerImpl(int64_t channels, int64_t styles) {
  const std::vector<int64_t> shape =
      styles == 0 ? std::vector<int64_t>{channels} : std::vector<int64_t>{styles, channels};
  weight = register_parameter("weight", torch::ones(shape));
  bias = register_parameter("bias", torch::zeros(shape));
}

InstanceNormLayerImpl::InstanceNormLayerImpl(const NormSlot& slot) : slot_(slot) {}

const std::vector<NormSlot>& PredictedNormLayout() {
  static const std::vector<NormSlot> layout = [] {
    std::vector<std::pair<std::string, int64_t>> norms = {{"in1", 32}, {"in2", 64}, {"in3", 128}};
    for (int k = 1; k <= 5; ++k) {
      norms.emplace_back("res" + std::to_string(k) + ".in1", 128);
      norms.emplace_back("res" + std::to_string(k) + ".in2", 128);
    }
    norms.emplace_back("in4", 64);
    norms.emplace_back("in5", 32);
    std::vector<NormSlot> out;
    int64_t offset = 0;
    for (const auto& [name, channels] : norms) {
      const bool residual_second = name.rfind("res", 0) == 0 && name.size() > 4 &&
                                   name.compare(name.size() - 4, 4, ".in2") == 0;
      out.push_back(NormSlot{name, channels, offset, !residual_second});
      offset += channels * (residual_second ? 1 : 2);
    }
    return out;
  }();
  return layout;
}

int64_t NormParameterCount() {
  const NormSlot& last = PredictedNormLayout().back();
  return last.offset + last.channels * (last.shifted ? 2 : 1);
}

// What torch::instance_norm does inside (one batch norm over B*C channels of a
// 1 x B*C x H x W view; bit for bit the same), written out so that the ReLU
// runs in place on the batch norm's own output rather than on a view of it:
// autograd meets an in-place op on a view with a copy of the whole gradient
// and a fill (CopySlices), which took half the time of the norm and ReLU's
// backward. Outside autograd (stylize) a per-style network calls
// torch::instance_norm itself: the written-out form raised the peak memory of
// a 3000x1687 one-pass stylize from 6.2 to 8.0 GB (measured; not understood).
// A conditional network gives each image its own rows in place of the one row
// repeated B times: for a batch of one style the same arithmetic.
torch::Tensor InstanceNormLayerImpl::forward(const torch::Tensor& x, const StyleMix& mix,
                                             bool then_relu) {
  const int64_t b = x.size(0), c = x.size(1);
  if (weight.defined() && weight.dim() == 1 && !torch::GradMode::is_enabled()) {
    SF_CHECK(!mix.defined(), "a per-style network takes no style mix");
    torch::Tensor out = torch::instance_norm(x, weight, bias, {}, {}, /*use_input_stats=*/true, 0.1,
                                             kEps, at::globalContext().userEnabledCuDNN());
    return then_relu ? out.relu_() : out;
  }
  const auto [scale, shift] = ScaleAndShift(mix, b, c);
  const torch::Tensor flat = x.contiguous().view({1, b * c, x.size(2), x.size(3)});
  torch::Tensor out = torch::batch_norm(flat, scale, shift, {}, {}, /*training=*/true, 0.1, kEps,
                                        at::globalContext().userEnabledCuDNN());
  if (then_relu) out.relu_();
  return out.view(x.sizes());
}

std::pair<torch::Tensor, torch::Tensor> InstanceNormLayerImpl::ScaleAndShift(const StyleMix& mix,
                                                                             int64_t b, int64_t c) {
  if (!weight.defined()) {
    SF_CHECK(mix.defined() && mix.is_floating_point() && mix.dim() == 2 && mix.size(0) == b &&
                 mix.size(1) == NormParameterCount() && c == slot_.channels,
             "an arbitrary-style network needs each image's norm parameters (B x " +
                 std::to_string(NormParameterCount()) + ")");
    const torch::Tensor scale = mix.narrow(1, slot_.offset, c).reshape({b * c});
    return {scale, slot_.shifted ? mix.narrow(1, slot_.offset + c, c).reshape({b * c})
                                 : torch::zeros({b * c}, mix.options())};
  }
  if (weight.dim() == 1) {
    SF_CHECK(!mix.defined(), "a per-style network takes no style mix");
    return {weight.repeat({b}), bias.repeat({b})};
  }
  SF_CHECK(mix.defined() && mix.size(0) == b,
           "a conditional network needs one style (or blend) per image");
  const bool indices = mix.scalar_type() == torch::kLong;
  return {(indices ? weight.index_select(0, mix) : mix.matmul(weight)).reshape({b * c}),
          (indices ? bias.index_select(0, mix) : mix.matmul(bias)).reshape({b * c})};
}

ResidualBlockImpl::ResidualBlockImpl(int64_t channels, InstanceNormLayer in1,
                                     InstanceNormLayer in2) {
  conv1_ = register_module("conv1", ConvLayer(channels, channels, 3, 1));
  in1_ = register_module("in1", std::move(in1));
  conv2_ = register_module("conv2", ConvLayer(channels, channels, 3, 1));
  in2_ = register_module("in2", std::move(in2));
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x, const StyleMix& mix) {
  torch::Tensor y = in1_(conv1_(x), mix, /*then_relu=*/true);
  return in2_(conv2_(y), mix) + x;
}

TransformerNetImpl::TransformerNetImpl(int64_t styles) : styles_(styles) {
  SF_CHECK(styles >= 0, "style count must not be negative");
  Build([&](size_t k) { return InstanceNormLayer(PredictedNormLayout()[k].channels, styles); });
}

int64_t PredictedNorms::SummarySize() const {
  int64_t size = 0;
  for (int layer : summary_layers) {
    SF_CHECK(layer >= 0 && layer < kVggConvLayerCount, "a summary layer is a VGG layer index");
    size += 2 * VggLayerChannels(layer);
  }
  return size;
}

TransformerNetImpl::TransformerNetImpl(PredictedNorms shape)
    : styles_(0), predicts_norms_(true), shape_(std::move(shape)) {
  Build([&](size_t k) { return InstanceNormLayer(PredictedNormLayout()[k]); });
  // After the layers: the state dict starts with the PyTorch example's names.
  predictor_ =
      register_module("predictor", StylePredictor(shape_.SummarySize(), shape_.embedding_size));
}

StylePredictor& TransformerNetImpl::predictor() {
  SF_CHECK(predicts_norms_, "only an arbitrary-style network has a style predictor");
  return predictor_;
}

const PredictedNorms& TransformerNetImpl::predicted_norms() const {
  SF_CHECK(predicts_norms_, "only an arbitrary-style network has a style predictor");
  return shape_;
}

void TransformerNetImpl::Build(const std::function<InstanceNormLayer(size_t)>& norm) {
  conv1_ = register_module("conv1", ConvLayer(3, 32, 9, 1));
  in1_ = register_module("in1", norm(0));
  conv2_ = register_module("conv2", ConvLayer(32, 64, 3, 2));
  in2_ = register_module("in2", norm(1));
  conv3_ = register_module("conv3", ConvLayer(64, 128, 3, 2));
  in3_ = register_module("in3", norm(2));
  ResidualBlock* blocks[] = {&res1_, &res2_, &res3_, &res4_, &res5_};
  for (size_t k = 0; k < 5; ++k) {
    *blocks[k] = register_module("res" + std::to_string(k + 1),
                                 ResidualBlock(128, norm(3 + 2 * k), norm(4 + 2 * k)));
  }
  deconv1_ = register_module("deconv1", ConvLayer(128, 64, 3, 1, 2));
  in4_ = register_module("in4", norm(13));
  deconv2_ = register_module("deconv2", ConvLayer(64, 32, 3, 1, 2));
  in5_ = register_module("in5", norm(14));
  deconv3_ = register_module("deconv3", ConvLayer(32, 3, 9, 1));
  // Freeze the biases an instance norm cancels (see TrainableParameters); in a
  // conditional network every style's row of them.
  torch::NoGradGuard no_grad;
  for (auto& item : named_parameters()) {
    const std::string& key = item.key();
    const bool conv_bias_before_norm = key.size() > 12 &&
                                       key.compare(key.size() - 12, 12, ".conv2d.bias") == 0 &&
                                       key.rfind("deconv3.", 0) != 0;
    const bool residual_norm_bias = key.rfind("res", 0) == 0 && key.size() > 9 &&
                                    key.compare(key.size() - 9, 9, ".in2.bias") == 0;
    if (conv_bias_before_norm || residual_norm_bias) {
      item.value().zero_();
      item.value().set_requires_grad(false);
    }
  }
}

// ReLUs run in place: instance norm's backward reads its input, not its output.
torch::Tensor TransformerNetImpl::forward(const torch::Tensor& x, const StyleMix& mix) {
  torch::Tensor y = in1_(conv1_(x), mix, /*then_relu=*/true);
  y = in2_(conv2_(y), mix, /*then_relu=*/true);
  y = in3_(conv3_(y), mix, /*then_relu=*/true);
  for (ResidualBlock* block : {&res1_, &res2_, &res3_, &res4_, &res5_}) y = (*block)(y, mix);
  y = in4_(deconv1_(y), mix, /*then_relu=*/true);
  y = in5_(deconv2_(y), mix, /*then_relu=*/true);
  return deconv3_(y);
}

void InitializeTransformer(TransformerNet& net, uint64_t seed) {
  torch::NoGradGuard no_grad;
  at::Generator generator = at::detail::createCPUGenerator(seed);
  for (const auto& module : net->modules(/*include_self=*/false)) {
    if (auto* conv = module->as<torch::nn::Conv2d>()) {
      const double fan_in =
          double(conv->weight.size(1)) * conv->weight.size(2) * conv->weight.size(3);
      const double bound = 1.0 / std::sqrt(fan_in);
      conv->weight.uniform_(-bound, bound, generator);
      if (conv->bias.defined() && conv->bias.requires_grad())
        conv->bias.uniform_(-bound, bound, generator);
    } else if (auto* norm = module->as<InstanceNormLayer>()) {
      if (!norm->weight.defined()) continue;  // an arbitrary-style network's
      norm->weight.fill_(1.0);
      norm->bias.zero_();
    }
  }
  // Its own generator, so that the convolutions are drawn as in the other kinds.
  if (net->predicts_norms()) InitializeStylePredictor(net->predictor(), seed ^ kPredictorSeedMix);
}

std::vector<std::pair<std::string, torch::Tensor>> TrainableParameters(TransformerNet& net) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : net->named_parameters()) {
    if (item.value().requires_grad()) out.emplace_back(item.key(), item.value());
  }
  return out;
}

bool IsStyleRowParameter(const std::string& name) {
  // The module is the segment before the last: in1..in5, or resK.in1/in2.
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0) return false;
  const size_t before = name.rfind('.', dot - 1);
  const size_t start = before == std::string::npos ? 0 : before + 1;
  const std::string module = name.substr(start, dot - start);
  return module.size() == 3 && module.compare(0, 2, "in") == 0 &&
         std::isdigit(static_cast<unsigned char>(module[2]));
}

void FreezeSharedLayers(TransformerNet& net) {
  for (auto& item : net->named_parameters()) {
    if (!IsStyleRowParameter(item.key())) item.value().set_requires_grad(false);
  }
}

TransformerNet BlendedTransformer(TransformerNet& conditional, const torch::Tensor& weights) {
  SF_CHECK(
      conditional->styles() > 0 && weights.dim() == 1 && weights.size(0) == conditional->styles(),
      "a blend needs one weight per style of a conditional network");
  TransformerNet out;
  torch::NoGradGuard no_grad;
  const auto source = conditional->named_parameters();
  const torch::Tensor w = weights.to(torch::kFloat32).to(conditional->parameters()[0].device());
  for (auto& item : out->named_parameters()) {
    const torch::Tensor& from = source[item.key()];
    item.value().copy_(from.dim() == 2 && item.value().dim() == 1 ? w.matmul(from) : from);
  }
  out->to(conditional->parameters()[0].device());
  out->eval();
  return out;
}

torch::Tensor ConditionalRowNorms(TransformerNet& conditional, int64_t row) {
  SF_CHECK(conditional->styles() > 0 && row >= 0 && row < conditional->styles(),
           "norm parameters come from a row of a conditional network");
  torch::NoGradGuard no_grad;
  const auto params = conditional->named_parameters();
  std::vector<torch::Tensor> parts;
  for (const NormSlot& slot : PredictedNormLayout()) {
    parts.push_back(params[slot.name + ".weight"][row]);
    const torch::Tensor shift = params[slot.name + ".bias"][row];
    // Left out of the layout because it is 0 (frozen): then leaving it out is exact.
    SF_CHECK(slot.shifted || shift.eq(0).all().item<bool>(),
             "a residual block's second norm has a shift of 0 in a conditional network");
    if (slot.shifted) parts.push_back(shift);
  }
  return torch::cat(parts).contiguous();
}

TransformerNet ArbitraryTransformer(TransformerNet& source, const PredictedNorms& shape,
                                    uint64_t seed) {
  TransformerNet out{shape};
  InitializeStylePredictor(out->predictor(), seed ^ kPredictorSeedMix);
  torch::NoGradGuard no_grad;
  const auto from = source->named_parameters();
  for (auto& item : out->named_parameters()) {
    if (item.key().rfind("predictor.", 0) != 0) item.value().copy_(from[item.key()]);
  }
  out->to(source->parameters()[0].device());
  return out;
}

TransformerNet FixedNormsTransformer(TransformerNet& arbitrary, const torch::Tensor& norms) {
  SF_CHECK(arbitrary->predicts_norms() && norms.dim() == 1 && norms.size(0) == NormParameterCount(),
           "fixed norms need an arbitrary-style network and one image's norm parameters");
  TransformerNet out;
  torch::NoGradGuard no_grad;
  const auto from = arbitrary->named_parameters();
  auto params = out->named_parameters();
  for (auto& item : params) {
    if (from.contains(item.key())) item.value().copy_(from[item.key()]);
  }
  const torch::Tensor values = norms.to(torch::kFloat32).to(arbitrary->parameters()[0].device());
  for (const NormSlot& slot : PredictedNormLayout()) {
    params[slot.name + ".weight"].copy_(values.narrow(0, slot.offset, slot.channels));
    if (slot.shifted) {
      params[slot.name + ".bias"].copy_(
          values.narrow(0, slot.offset + slot.channels, slot.channels));
    } else {
      params[slot.name + ".bias"].zero_();
    }
  }
  out->to(arbitrary->parameters()[0].device());
  out->eval();
  return out;
}

TransformerNet ExtendedTransformer(TransformerNet& base, int64_t styles) {
  SF_CHECK(base->styles() > 0 && styles >= base->styles(),
           "a conditional network extends to more styles");
  TransformerNet out(styles);
  torch::NoGradGuard no_grad;
  const auto source = base->named_parameters();
  const int64_t old = base->styles();
  for (auto& item : out->named_parameters()) {
    const torch::Tensor& from = source[item.key()];
    if (from.sizes() == item.value().sizes()) {
      item.value().copy_(from);
    } else {
      item.value().narrow(0, 0, old).copy_(from);
      item.value()
          .narrow(0, old, styles - old)
          .copy_(from.mean(0, true).expand({styles - old, from.size(1)}));
    }
  }
  return out;
}

void LoadTransformerParameters(TransformerNet& net,
                               const std::vector<std::pair<std::string, torch::Tensor>>& params,
                               const std::string& source) {
  std::map<std::string, torch::Tensor> given;
  for (const auto& [key, value] : params) {
    if (key.rfind("stylefleet.", 0) == 0) continue;
    const bool stale_stat =
        key.size() > 13 && (key.find(".running_mean") != std::string::npos ||
                            key.find(".running_var") != std::string::npos ||
                            key.find(".num_batches_tracked") != std::string::npos);
    if (stale_stat) continue;
    given[key] = value;
  }
  torch::NoGradGuard no_grad;
  size_t used = 0;
  for (auto& item : net->named_parameters()) {
    auto it = given.find(item.key());
    if (it == given.end()) {
      throw DataError(source + ": model file lacks parameter '" + item.key() + "'");
    }
    if (it->second.sizes() != item.value().sizes()) {
      std::ostringstream message;
      message << source << ": parameter '" << item.key() << "' has shape " << it->second.sizes()
              << ", expected " << item.value().sizes();
      throw DataError(message.str());
    }
    item.value().copy_(it->second.to(torch::kFloat32));
    ++used;
  }
  if (used != given.size()) {
    for (const auto& [key, value] : given) {
      if (net->named_parameters().find(key) == nullptr) {
        throw DataError(source + ": unexpected key '" + key + "' (not a TransformerNet parameter)");
      }
    }
  }
}

}  // namespace stylefleet
