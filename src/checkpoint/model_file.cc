#include "checkpoint/model_file.h"

#include <filesystem>

#include "checkpoint/checkpoint_files.h"
#include "common/error.h"

namespace stylefleet {
namespace fs = std::filesystem;

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
