#include "model/vgg16.h"

#include <cmath>
#include <iomanip>
#include <sstream>

#include "common/error.h"
#include "common/vgg_layers.h"
#include "model/tensor_file.h"
#include "model/winograd_conv.h"

namespace stylefleet {
namespace {

// Indices of the convolutions in torchvision's vgg16().features.
constexpr int kTorchvisionIndex[kVggConvLayerCount] = {0,  2,  5,  7,  10, 12, 14,
                                                       17, 19, 21, 24, 26, 28};

bool IsTorchvisionInput(const VggNormalization& n) {
  const VggNormalization torchvision;
  return n.input_scale == 1.0 && n.mean == torchvision.mean && n.std == torchvision.std;
}

bool IsSeedInput(const VggNormalization& n) {
  return n.input_scale == 255.0 && n.std == std::array<double, 3>{1.0, 1.0, 1.0};
}

// The convention of a file that records none (a plain state dict, or a file
// of the converter before it recorded one): told by its input convention.
std::string InferConventionName(const VggNormalization& n, double activation_scale) {
  if (IsSeedInput(n)) return "seed-input";
  if (IsTorchvisionInput(n) && activation_scale == 1.0) return "torchvision";
  if (IsTorchvisionInput(n) && activation_scale == kSeedBalancedActivationScale) {
    return "seed-balanced";
  }
  return "custom";
}

std::string DescribeInput(const VggNormalization& n) {
  std::ostringstream out;
  out << "input 0.." << n.input_scale << " minus mean " << n.mean[0] << "/" << n.mean[1] << "/"
      << n.mean[2];
  if (n.std != std::array<double, 3>{1.0, 1.0, 1.0}) {
    out << ", divided by std " << n.std[0] << "/" << n.std[1] << "/" << n.std[2];
  }
  return out.str();
}

}  // namespace

bool VggConvention::BalancesSeedWeights() const {
  // A file named seed-balanced must also carry the seed-balanced scale: the
  // name alone could be copied onto any weights.
  if (name == "seed-balanced") {
    return std::fabs(activation_scale / kSeedBalancedActivationScale - 1) < 1e-6;
  }
  return name == "seed-input" || name == "random";
}

std::string Vgg16::DescribeConvention() const {
  std::ostringstream out;
  out << convention_.name << ": " << DescribeInput(norm_);
  if (is_random_) {
    out << " as the seed's VGG (built-in random network, for tests and demos)";
    return out.str();
  }
  out << "; activations x" << convention_.activation_scale
      << (convention_.recorded ? " (recorded in the file)"
                               : " (the file records no convention: inferred from its input)");
  return out.str();
}

std::string Vgg16::SeedBalanceWarning() const {
  if (convention_.BalancesSeedWeights()) return "";
  // Content grows with the activation scale squared, style with its fourth
  // power: their balance moves by the square of the scale ratio.
  const double ratio = kSeedBalancedActivationScale / convention_.activation_scale;
  const double factor = ratio * ratio;
  std::ostringstream out;
  out << "the loss network is in the '" << convention_.name << "' convention (activations x"
      << convention_.activation_scale
      << "), not seed-balanced: with loss weights in the seed's scale (stylefleet's defaults, "
         "seed-style files, configs/) the style term is about "
      << std::setprecision(3) << (factor >= 1 ? factor : 1 / factor) << "x "
      << (factor >= 1 ? "weaker" : "stronger")
      << " against the content term than with the seed's network"
      << (factor >= 1 ? ", so a model learns to copy its input" : "")
      << ". Convert torchvision's VGG-16 with launch/convert_vgg16.py's default (activation "
         "scale "
      << kSeedBalancedActivationScale << ", convention seed-balanced)";
  if (!convention_.recorded) {
    out << "; this file records no convention: a file converted with --activation-scale "
           "before it was recorded needs converting again";
  }
  return out.str();
}

namespace {
// True when `value` stays finite as the float32 the network computes with.
bool FiniteAsFloat(double value) { return std::isfinite(static_cast<float>(value)); }

// The tensor under `key` of the weights file `spec` as contiguous float32.
torch::Tensor RequiredTensor(const TensorDict& dict, const std::string& spec,
                             const std::string& key) {
  const torch::Tensor* found = FindTensor(dict, key);
  if (found == nullptr) throw DataError(spec + ": missing key '" + key + "'");
  return found->to(torch::kFloat32).contiguous();
}

// The 13 convolutions of a random network: Kaiming normal with fan_in keeps
// activation variance through the ReLU stack, so deep layers (and their style
// losses) are not vanishingly small as with torchvision's fan_out init.
void RandomLayers(const std::string& spec, std::vector<torch::Tensor>* weights,
                  std::vector<torch::Tensor>* biases) {
  const std::optional<uint64_t> seed = RandomNetworkSeed(spec);
  if (!seed) {
    throw ConfigError({"loss network '" + spec +
                       "': expected random:SEED with SEED a non-negative integer of at most "
                       "18 digits"});
  }
  auto generator = at::make_generator<at::CPUGeneratorImpl>(*seed);
  for (int l = 0; l < kVggConvLayerCount; ++l) {
    const int64_t fan_in = VggLayerInChannels(l) * 9;
    weights->push_back(at::normal(0.0, std::sqrt(2.0 / double(fan_in)),
                                  {VggLayerChannels(l), VggLayerInChannels(l), 3, 3}, generator));
    biases->push_back(torch::zeros({VggLayerChannels(l)}));
  }
}

// The 13 convolutions of a weights file (torchvision's features.N names; a
// whole-model state dict works: classifier keys are unused), each checked for
// its shape and for values finite as float32.
void FileLayers(const TensorDict& dict, const std::string& spec,
                std::vector<torch::Tensor>* weights, std::vector<torch::Tensor>* biases) {
  for (int l = 0; l < kVggConvLayerCount; ++l) {
    const std::string prefix = "features." + std::to_string(kTorchvisionIndex[l]);
    torch::Tensor w = RequiredTensor(dict, spec, prefix + ".weight");
    torch::Tensor b = RequiredTensor(dict, spec, prefix + ".bias");
    const std::vector<int64_t> expected_w = {VggLayerChannels(l), VggLayerInChannels(l), 3, 3};
    if (w.sizes() != torch::IntArrayRef(expected_w)) {
      std::ostringstream m;
      m << spec << ": key '" << prefix << ".weight' has shape " << w.sizes() << ", expected "
        << torch::IntArrayRef(expected_w);
      throw DataError(m.str());
    }
    if (b.sizes() != torch::IntArrayRef({VggLayerChannels(l)})) {
      std::ostringstream m;
      m << spec << ": key '" << prefix << ".bias' has shape " << b.sizes() << ", expected ["
        << VggLayerChannels(l) << "]";
      throw DataError(m.str());
    }
    // Checked as the float32 the network computes in: a float64 1e300 is
    // finite in the file and infinite here, and a NaN weight turns every
    // loss into NaN, every step skipped, and nothing learned.
    for (const auto& [key, t] :
         {std::pair<std::string, const torch::Tensor&>{prefix + ".weight", w},
          {prefix + ".bias", b}}) {
      if (!torch::isfinite(t).all().item<bool>()) {
        throw DataError(spec + ": key '" + key +
                        "' holds NaN or infinite values (as float32): not a usable loss "
                        "network");
      }
    }
    weights->push_back(w);
    biases->push_back(b);
  }
}

// The input normalisation a weights file records (stylefleet.input_scale,
// .mean, .std), over the defaults of `norm`.
void FileNormalization(const TensorDict& dict, const std::string& spec, VggNormalization* norm) {
  if (FindTensor(dict, "stylefleet.input_scale") != nullptr) {
    norm->input_scale = RequiredTensor(dict, spec, "stylefleet.input_scale").item<double>();
    if (!(norm->input_scale > 0) || !FiniteAsFloat(norm->input_scale))
      throw DataError(spec + ": stylefleet.input_scale must be a finite number > 0");
  }
  for (const char* key : {"stylefleet.mean", "stylefleet.std"}) {
    if (FindTensor(dict, key) == nullptr) continue;
    torch::Tensor t = RequiredTensor(dict, spec, key);
    if (t.numel() != 3) throw DataError(spec + ": key '" + key + "' must hold 3 values");
    auto& target = std::string(key) == "stylefleet.mean" ? norm->mean : norm->std;
    for (int c = 0; c < 3; ++c) target[c] = t[c].item<double>();
    for (double v : target) {
      if (!FiniteAsFloat(v)) {
        throw DataError(spec + ": key '" + key + "' holds NaN or infinite values (as float32)");
      }
    }
  }
  for (double s : norm->std) {
    // 1/std is what the network multiplies by.
    if (!(s > 0) || !FiniteAsFloat(1.0 / s)) {
      throw DataError(spec +
                      ": stylefleet.std values must be > 0 and not so small that 1/std "
                      "overflows float32");
    }
  }
}

// The convention a weights file records (stylefleet.activation_scale and
// .convention), or the one its normalisation implies.
void FileConvention(const TensorDict& dict, const std::string& spec, const VggNormalization& norm,
                    VggConvention* convention) {
  if (const torch::Tensor* scale = FindTensor(dict, "stylefleet.activation_scale")) {
    if (scale->numel() != 1) {
      throw DataError(spec + ": key 'stylefleet.activation_scale' must hold 1 value");
    }
    convention->activation_scale = scale->to(torch::kFloat64).item<double>();
    if (!(convention->activation_scale > 0) || !FiniteAsFloat(convention->activation_scale)) {
      throw DataError(spec + ": stylefleet.activation_scale must be a finite number > 0");
    }
  }
  if (const torch::Tensor* name = FindTensor(dict, "stylefleet.convention")) {
    if (name->scalar_type() != torch::kUInt8 || name->dim() != 1 || name->numel() == 0) {
      throw DataError(spec + ": key 'stylefleet.convention' must hold a name as uint8 bytes");
    }
    convention->name = TensorToString(*name);
    convention->recorded = true;
  } else {
    convention->name = InferConventionName(norm, convention->activation_scale);
  }
}

}  // namespace

Vgg16 Vgg16::Load(const std::string& spec) {
  Vgg16 net;
  if (spec.rfind("random:", 0) == 0) {
    RandomLayers(spec, &net.weights_, &net.biases_);
    net.is_random_ = true;
    // The seed's TF-slim VGG-16 convention: RGB 0..255 minus the ImageNet mean
    // pixel. The seed's loss weights (content 1, style ~100) were tuned for
    // activations of that scale; 0..1 inputs would make the style term vanish.
    net.norm_.input_scale = 255.0;
    net.norm_.mean = {123.68, 116.78, 103.94};
    net.norm_.std = {1.0, 1.0, 1.0};
    net.convention_ = {"random", 1.0, true};
  } else {
    const TensorDict dict = LoadTensorDict(spec);
    FileLayers(dict, spec, &net.weights_, &net.biases_);
    FileNormalization(dict, spec, &net.norm_);
    FileConvention(dict, spec, net.norm_, &net.convention_);
  }
  net.mean_ =
      torch::tensor({net.norm_.mean[0], net.norm_.mean[1], net.norm_.mean[2]}, torch::kFloat32)
          .view({1, 3, 1, 1});
  net.inv_std_ =
      (1.0 / torch::tensor({net.norm_.std[0], net.norm_.std[1], net.norm_.std[2]}, torch::kFloat64))
          .to(torch::kFloat32)
          .view({1, 3, 1, 1});
  for (auto& w : net.weights_) w.requires_grad_(false);
  for (auto& b : net.biases_) b.requires_grad_(false);
  net.MakeBf16Copies();
  return net;
}

void Vgg16::UseChannelsLast() {
  channels_last_ = true;
  for (auto* set : {&weights_, &weights_bf16_}) {
    for (auto& w : *set) w = w.contiguous(at::MemoryFormat::ChannelsLast);
  }
}

void Vgg16::MakeBf16Copies() {
  weights_bf16_.clear();
  biases_bf16_.clear();
  for (const auto& w : weights_) weights_bf16_.push_back(w.to(torch::kBFloat16));
  for (const auto& b : biases_) biases_bf16_.push_back(b.to(torch::kBFloat16));
}

std::vector<std::pair<std::string, torch::Tensor>> Vgg16::LayersUpTo(
    int deepest, const std::string& prefix) const {
  SF_CHECK(deepest >= 0 && deepest < kVggConvLayerCount, "no such loss-network layer");
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (int l = 0; l <= deepest; ++l) {
    const std::string name = prefix + "features." + std::to_string(kTorchvisionIndex[l]);
    const size_t k = static_cast<size_t>(l);
    out.emplace_back(name + ".weight", weights_[k].to(torch::kCPU, torch::kFloat32).contiguous());
    out.emplace_back(name + ".bias", biases_[k].to(torch::kCPU, torch::kFloat32).contiguous());
  }
  const auto triple = [](const std::array<double, 3>& v) {
    return torch::tensor({v[0], v[1], v[2]}, torch::kFloat64);
  };
  out.emplace_back(prefix + "input_scale", torch::tensor(norm_.input_scale, torch::kFloat64));
  out.emplace_back(prefix + "mean", triple(norm_.mean));
  out.emplace_back(prefix + "std", triple(norm_.std));
  return out;
}

void Vgg16::To(const torch::Device& device) {
  for (auto& w : weights_) w = w.to(device);
  for (auto& b : biases_) b = b.to(device);
  mean_ = mean_.to(device);
  inv_std_ = inv_std_.to(device);
  MakeBf16Copies();
}

std::map<int, torch::Tensor> Vgg16::Forward(const torch::Tensor& image,
                                            const std::vector<int>& layers,
                                            torch::ScalarType compute_type) const {
  std::map<int, torch::Tensor> out;
  if (layers.empty()) return out;
  SF_CHECK(compute_type == torch::kFloat32 || compute_type == torch::kBFloat16,
           "the loss network computes in float32 or bfloat16");
  const bool bf16 = compute_type == torch::kBFloat16;
  const auto& weights = bf16 ? weights_bf16_ : weights_;
  const auto& biases = bf16 ? biases_bf16_ : biases_;
  const int deepest = *std::max_element(layers.begin(), layers.end());
  torch::Tensor x = (image.to(torch::kFloat32) * (norm_.input_scale / 255.0) - mean_) * inv_std_;
  if (bf16) x = x.to(torch::kBFloat16);
  auto wanted = [&](int l) { return std::find(layers.begin(), layers.end(), l) != layers.end(); };
  // A convolution's backward needs no output, so each ReLU can be in place.
  x = torch::conv2d(x, weights[0], biases[0], 1, 1).relu_();  // 3 channels: LibTorch's
  if (wanted(0)) out[0] = x;
  if (deepest == 0) return out;
  if (VggPoolAfter(0)) x = torch::max_pool2d(x, 2, 2);
  if (!channels_last_ && BlockedWinogradApplies(x)) {
    // float32 on CPU: the rest of the chain in oneDNN's blocked layout with
    // Winograd convolutions; only the requested layers come back to NCHW.
    torch::Tensor blocked = ToBlocked(x);
    for (int l = 1; l <= deepest; ++l) {
      blocked = Conv3x3Blocked(blocked, weights[l], biases[l], 1).relu_();
      if (wanted(l)) out[l] = FromBlocked(blocked);
      if (VggPoolAfter(l) && l < deepest) blocked = MaxPool2x2Blocked(blocked);
    }
    return out;
  }
  for (int l = 1; l <= deepest; ++l) {
    x = Conv3x3(x, weights[l], biases[l], 1).relu_();
    if (wanted(l)) out[l] = x;
    if (VggPoolAfter(l) && l < deepest) x = torch::max_pool2d(x, 2, 2);
  }
  return out;
}

std::vector<int> VggLayerIndices(const std::vector<std::string>& names) {
  std::vector<int> out;
  for (const auto& name : names) {
    const auto index = VggLayerIndex(name);
    if (!index) throw ConfigError({"unknown layer '" + name + "'"});
    out.push_back(*index);
  }
  return out;
}

}  // namespace stylefleet
