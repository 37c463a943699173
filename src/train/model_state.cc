#include "train/model_state.h"

#include <filesystem>

#include "common/error.h"
#include "common/vgg_layers.h"
#include "train/checkpoints.h"

namespace stylefleet {
namespace fs = std::filesystem;

Adam::Adam(std::vector<torch::Tensor> params, double learning_rate, double beta1, double beta2,
           double eps)
    : params_(std::move(params)), learning_rate_(learning_rate), beta1_(beta1), beta2_(beta2),
      eps_(eps) {
  for (const auto& p : params_) {
    exp_avg_.push_back(torch::zeros_like(p));
    exp_avg_sq_.push_back(torch::zeros_like(p));
  }
}

void Adam::ZeroGrad() {
  for (auto& p : params_) {
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
}

void Adam::Step() {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double bias_correction1 = 1 - std::pow(beta1_, double(steps_));
  const double bias_correction2 = 1 - std::pow(beta2_, double(steps_));
  const double step_size = learning_rate_ / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  for (size_t i = 0; i < params_.size(); ++i) {
    const torch::Tensor& grad = params_[i].grad();
    if (!grad.defined()) continue;
    // Same operations, in the same order, as torch.optim.Adam's single-tensor path.
    exp_avg_[i].mul_(beta1_).add_(grad, 1 - beta1_);
    exp_avg_sq_[i].mul_(beta2_).addcmul_(grad, grad, 1 - beta2_);
    const torch::Tensor denom = (exp_avg_sq_[i].sqrt() / bias_correction2_sqrt).add_(eps_);
    params_[i].addcdiv_(exp_avg_[i], denom, -step_size);
  }
}

namespace {
torch::Tensor Scalar(int64_t v) { return torch::tensor(v, torch::kInt64); }

int64_t ReadInt(const TensorDict& dict, const std::string& key, const std::string& path) {
  const torch::Tensor* t = FindTensor(dict, key);
  if (t == nullptr || t->numel() != 1) throw DataError(path + ": checkpoint lacks '" + key + "'");
  return t->item<int64_t>();
}
}  // namespace

TensorDict ModelDict(TransformerNet& net, const ModelInfo& info) {
  TensorDict dict;
  for (const auto& item : net->named_parameters()) dict.emplace_back(item.key(), item.value());
  dict.emplace_back("stylefleet.head", StringToTensor(kTransformerHead));
  dict.emplace_back("stylefleet.job", StringToTensor(info.job));
  dict.emplace_back("stylefleet.style", StringToTensor(info.style));
  dict.emplace_back("stylefleet.image_size", Scalar(info.image_size));
  return dict;
}

TensorDict CheckpointDict(TransformerNet& net, Adam& adam, const RunPosition& position,
                          const ModelInfo& info) {
  TensorDict dict = ModelDict(net, info);
  size_t i = 0;
  for (const auto& [name, param] : TrainableParameters(net)) {
    dict.emplace_back("stylefleet.adam.exp_avg." + name, adam.exp_avg(i));
    dict.emplace_back("stylefleet.adam.exp_avg_sq." + name, adam.exp_avg_sq(i));
    ++i;
  }
  dict.emplace_back("stylefleet.adam.steps", Scalar(adam.steps()));
  dict.emplace_back("stylefleet.step", Scalar(position.step));
  dict.emplace_back("stylefleet.epoch", Scalar(position.epoch));
  dict.emplace_back("stylefleet.batch", Scalar(position.batch));
  dict.emplace_back("stylefleet.rng", at::detail::getDefaultCPUGenerator().get_state());
  return dict;
}

RunPosition RestoreCheckpoint(const TensorDict& dict, const std::string& path, TransformerNet& net,
                              Adam& adam) {
  LoadTransformerParameters(net, dict, path);
  torch::NoGradGuard no_grad;
  size_t i = 0;
  for (const auto& [name, param] : TrainableParameters(net)) {
    for (const char* kind : {"exp_avg.", "exp_avg_sq."}) {
      const std::string key = std::string("stylefleet.adam.") + kind + name;
      const torch::Tensor* t = FindTensor(dict, key);
      if (t == nullptr || t->sizes() != param.sizes()) {
        throw DataError(path + ": checkpoint lacks optimizer state '" + key + "'");
      }
      (std::string(kind) == "exp_avg." ? adam.exp_avg(i) : adam.exp_avg_sq(i)).copy_(*t);
    }
    ++i;
  }
  adam.set_steps(ReadInt(dict, "stylefleet.adam.steps", path));
  if (const torch::Tensor* rng = FindTensor(dict, "stylefleet.rng")) {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(*rng);
  }
  RunPosition position;
  position.step = ReadInt(dict, "stylefleet.step", path);
  position.epoch = ReadInt(dict, "stylefleet.epoch", path);
  position.batch = ReadInt(dict, "stylefleet.batch", path);
  return position;
}

torch::Tensor ImageToTensor(const RgbImage& image) {
  torch::Tensor t = torch::empty({1, 3, image.height, image.width}, torch::kFloat32);
  ToPlanarFloat(image, t.data_ptr<float>());
  return t;
}

RgbImage TensorToImage(const torch::Tensor& image) {
  const torch::Tensor chw = image.dim() == 4 ? image.squeeze(0) : image;
  SF_CHECK(chw.dim() == 3 && chw.size(0) == 3, "expected one RGB image tensor");
  const torch::Tensor t = chw.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return FromPlanarFloat(t.data_ptr<float>(), static_cast<int>(t.size(2)),
                         static_cast<int>(t.size(1)));
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

TransformerNet LoadTransformer(const std::string& path, std::string* resolved) {
  std::string file = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path model = fs::path(path) / "model.pt";
    if (fs::is_regular_file(model, ec)) {
      file = model.string();
    } else {
      const auto checkpoints = ListCheckpoints(path);
      if (checkpoints.empty()) {
        throw DataError(path + ": folder holds neither model.pt nor checkpoints/step-*.pt");
      }
      file = checkpoints.front();
    }
  }
  TransformerNet net;
  LoadTransformerParameters(net, LoadTensorDict(file), file);
  net->eval();
  if (resolved != nullptr) *resolved = file;
  return net;
}

}  // namespace stylefleet
