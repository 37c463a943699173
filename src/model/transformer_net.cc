#include "model/transformer_net.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <map>

#include "common/error.h"

namespace stylefleet {
namespace nn = torch::nn;
namespace F = torch::nn::functional;

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
  y = F::pad(y, F::PadFuncOptions({pad_, pad_, pad_, pad_}).mode(torch::kReflect));
  return conv2d_(y);
}

namespace {
nn::InstanceNorm2d MakeInstanceNorm(int64_t channels) {
  return nn::InstanceNorm2d(nn::InstanceNorm2dOptions(channels).affine(true));
}
}  // namespace

ResidualBlockImpl::ResidualBlockImpl(int64_t channels) {
  conv1_ = register_module("conv1", ConvLayer(channels, channels, 3, 1));
  in1_ = register_module("in1", MakeInstanceNorm(channels));
  conv2_ = register_module("conv2", ConvLayer(channels, channels, 3, 1));
  in2_ = register_module("in2", MakeInstanceNorm(channels));
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = in1_(conv1_(x)).relu_();
  return in2_(conv2_(y)) + x;
}

TransformerNetImpl::TransformerNetImpl() {
  conv1_ = register_module("conv1", ConvLayer(3, 32, 9, 1));
  in1_ = register_module("in1", MakeInstanceNorm(32));
  conv2_ = register_module("conv2", ConvLayer(32, 64, 3, 2));
  in2_ = register_module("in2", MakeInstanceNorm(64));
  conv3_ = register_module("conv3", ConvLayer(64, 128, 3, 2));
  in3_ = register_module("in3", MakeInstanceNorm(128));
  res1_ = register_module("res1", ResidualBlock(128));
  res2_ = register_module("res2", ResidualBlock(128));
  res3_ = register_module("res3", ResidualBlock(128));
  res4_ = register_module("res4", ResidualBlock(128));
  res5_ = register_module("res5", ResidualBlock(128));
  deconv1_ = register_module("deconv1", ConvLayer(128, 64, 3, 1, 2));
  in4_ = register_module("in4", MakeInstanceNorm(64));
  deconv2_ = register_module("deconv2", ConvLayer(64, 32, 3, 1, 2));
  in5_ = register_module("in5", MakeInstanceNorm(32));
  deconv3_ = register_module("deconv3", ConvLayer(32, 3, 9, 1));
  // Freeze the biases an instance norm cancels (see TrainableParameters).
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
torch::Tensor TransformerNetImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = in1_(conv1_(x)).relu_();
  y = in2_(conv2_(y)).relu_();
  y = in3_(conv3_(y)).relu_();
  y = res5_(res4_(res3_(res2_(res1_(y)))));
  y = in4_(deconv1_(y)).relu_();
  y = in5_(deconv2_(y)).relu_();
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
    } else if (auto* norm = module->as<torch::nn::InstanceNorm2d>()) {
      if (norm->weight.defined()) norm->weight.fill_(1.0);
      if (norm->bias.defined()) norm->bias.zero_();
    }
  }
}

std::vector<std::pair<std::string, torch::Tensor>> TrainableParameters(TransformerNet& net) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : net->named_parameters()) {
    if (item.value().requires_grad()) out.emplace_back(item.key(), item.value());
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
