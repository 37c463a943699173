#include "checkpoint/model_file.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <sstream>

#include "checkpoint/checkpoint_files.h"
#include "common/error.h"
#include "common/fnv1a.h"
#include "common/vgg_layers.h"

namespace stylefleet {
namespace fs = std::filesystem;

namespace {
constexpr const char* kChecksumKey = "stylefleet.checksum";
constexpr const char* kArbitraryNetworkKind = "arbitrary";

torch::Tensor Scalar(int64_t v) { return torch::tensor(v, torch::kInt64); }

// FNV-1a over every entry but the checksum: key, dtype, shape and bytes. A
// flipped bit anywhere in the tensors or a swapped entry changes it.
uint64_t DictChecksum(const TensorDict& dict) {
  uint64_t hash = Fnv1a("");
  for (const auto& [key, tensor] : dict) {
    if (key == kChecksumKey) continue;
    const torch::Tensor t = tensor.detach().cpu().contiguous();
    std::string header = key + "|" + std::string(c10::toString(t.scalar_type())) + "|";
    for (int64_t d : t.sizes()) header += std::to_string(d) + ",";
    hash = Fnv1a(header, hash);
    hash = Fnv1a(std::string(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size()),
                 hash);
  }
  return hash;
}

TensorDict WithChecksum(TensorDict dict) {
  const uint64_t checksum = DictChecksum(dict);
  dict.emplace_back(kChecksumKey, Scalar(static_cast<int64_t>(checksum)));
  return dict;
}

// A damaged or poisoned file must never be trained on or stylized with: its
// checksum must match (files written before checksums existed have none), and
// every floating-point tensor must be finite, as the float32 it is used as:
// the network and its optimizer state are float32, and a float64 1e300 is
// finite until converted. Only the log windows stay float64.
void VerifyDict(const TensorDict& dict, const std::string& path) {
  if (const torch::Tensor* stored = FindTensor(dict, kChecksumKey)) {
    if (stored->numel() != 1 ||
        static_cast<uint64_t>(stored->item<int64_t>()) != DictChecksum(dict)) {
      throw DataError(path +
                      ": checksum mismatch: the file is damaged (a flipped bit or a "
                      "partial copy)");
    }
  }
  for (const auto& [key, tensor] : dict) {
    if (!tensor.is_floating_point()) continue;
    if (!torch::isfinite(tensor).all().item<bool>()) {
      throw DataError(path + ": '" + key + "' holds NaN or infinite values");
    }
    const bool narrowed =
        tensor.scalar_type() == torch::kFloat64 && key.rfind("stylefleet.log_window.", 0) != 0;
    if (narrowed && !torch::isfinite(tensor.to(torch::kFloat32)).all().item<bool>()) {
      throw DataError(path + ": '" + key +
                      "' holds values beyond float32's range (they would become infinite)");
    }
  }
}

// What marks an arbitrary-style network's file, beside its parameters (the
// predictor's under `predictor.`): the kind, the styles it trained on, the
// predictor's summary layers, and how stylize summarizes a style image.
void AppendArbitraryEntries(const PredictedNorms& shape, const ModelInfo& info, TensorDict& dict) {
  std::string names;
  for (const std::string& name : info.styles) names += (names.empty() ? "" : "\n") + name;
  dict.emplace_back("stylefleet.network", StringToTensor(kArbitraryNetworkKind));
  dict.emplace_back("stylefleet.styles", StringToTensor(names));
  dict.emplace_back(
      "stylefleet.predictor_layers",
      torch::tensor(std::vector<int64_t>(shape.summary_layers.begin(), shape.summary_layers.end()),
                    torch::kInt64));
  dict.emplace_back("stylefleet.loss_network", StringToTensor(info.loss_network));
  dict.emplace_back("stylefleet.style_image_size", Scalar(info.style_image_size));
}

}  // namespace

PredictedNorms ReadPredictedNorms(const TensorDict& dict, const std::string& path) {
  const torch::Tensor* layers = FindTensor(dict, "stylefleet.predictor_layers");
  if (layers == nullptr || layers->dim() != 1 || layers->scalar_type() != torch::kInt64 ||
      layers->numel() < 1 || layers->numel() > kVggConvLayerCount) {
    throw DataError(path +
                    ": an arbitrary-style network's 'stylefleet.predictor_layers' is "
                    "missing or not a list of 1 to 13 loss-network layer indices");
  }
  PredictedNorms shape;
  shape.summary_layers.clear();
  for (int64_t i = 0; i < layers->numel(); ++i) {
    const int64_t layer = (*layers)[i].item<int64_t>();
    if (layer < 0 || layer >= kVggConvLayerCount ||
        std::count(shape.summary_layers.begin(), shape.summary_layers.end(), layer) > 0) {
      throw DataError(path + ": 'stylefleet.predictor_layers' holds " + std::to_string(layer) +
                      ", not a loss-network layer index (0 to 12) given once");
    }
    shape.summary_layers.push_back(static_cast<int>(layer));
  }
  // The shapes are checked before the network is built: a file's claimed
  // bottleneck would otherwise size the allocation (the job's limit is 4096).
  const torch::Tensor* bottleneck = FindTensor(dict, "predictor.bottleneck.weight");
  if (bottleneck == nullptr || bottleneck->dim() != 2 || bottleneck->size(0) < 1 ||
      bottleneck->size(0) > 4096) {
    throw DataError(path +
                    ": an arbitrary-style network without a style predictor of 1 to 4096 "
                    "embedding numbers ('predictor.bottleneck.weight')");
  }
  shape.embedding_size = bottleneck->size(0);
  const std::vector<std::pair<std::string, std::vector<int64_t>>> expected = {
      {"predictor.bottleneck.weight", {shape.embedding_size, shape.SummarySize()}},
      {"predictor.bottleneck.bias", {shape.embedding_size}},
      {"predictor.to_norms.weight", {NormParameterCount(), shape.embedding_size}},
      {"predictor.to_norms.bias", {NormParameterCount()}}};
  for (const auto& [key, sizes] : expected) {
    const torch::Tensor* t = FindTensor(dict, key);
    if (t == nullptr || t->sizes() != c10::IntArrayRef(sizes)) {
      throw DataError(path + ": '" + key + "' is " +
                      (t == nullptr ? std::string("missing") : "of another shape") +
                      "; the predictor of its summary layers and embedding needs " +
                      c10::str(c10::IntArrayRef(sizes)));
    }
  }
  return shape;
}

namespace {

TensorDict ModelEntries(TransformerNet& net, const ModelInfo& info) {
  TensorDict dict;
  for (const auto& item : net->named_parameters()) dict.emplace_back(item.key(), item.value());
  dict.emplace_back("stylefleet.head", StringToTensor(kTransformerHead));
  dict.emplace_back("stylefleet.job", StringToTensor(info.job));
  dict.emplace_back("stylefleet.style", StringToTensor(info.style));
  dict.emplace_back("stylefleet.image_size", Scalar(info.image_size));
  if (net->styles() > 0) {
    SF_CHECK(static_cast<int64_t>(info.styles.size()) == net->styles(),
             "a conditional network's file names each of its styles");
    AppendConditionalEntries(info.styles, dict);
  }
  if (net->predicts_norms()) AppendArbitraryEntries(net->predicted_norms(), info, dict);
  return dict;
}

int64_t ReadInt(const TensorDict& dict, const std::string& key, const std::string& path) {
  const torch::Tensor* t = FindTensor(dict, key);
  if (t == nullptr || t->numel() != 1) throw DataError(path + ": checkpoint lacks '" + key + "'");
  // A float would be truncated without a word: CheckpointDict writes int64.
  if (t->scalar_type() != torch::kInt64) {
    throw DataError(path + ": '" + key + "' is " + std::string(c10::toString(t->scalar_type())) +
                    ", expected Long (int64)");
  }
  return t->item<int64_t>();
}

// `value` of `key` must lie in [low, high]; `why` says where the bound comes from.
void CheckRange(int64_t value, int64_t low, int64_t high, const std::string& key,
                const std::string& why, const std::string& path) {
  if (value < low || value > high) {
    throw DataError(path + ": '" + key + "' is " + std::to_string(value) + ", outside [" +
                    std::to_string(low) + ", " + std::to_string(high) + "] (" + why + ")");
  }
}

// The optimizer state stored for `param`, checked before anything is restored:
// a wrong shape or dtype would be broadcast or converted without a word, and a
// negative second moment makes the next step's square root NaN.
const torch::Tensor& AdamState(const TensorDict& dict, const std::string& key,
                               const torch::Tensor& param, const std::string& path) {
  const torch::Tensor* t = FindTensor(dict, key);
  if (t == nullptr) throw DataError(path + ": checkpoint lacks optimizer state '" + key + "'");
  if (t->sizes() != param.sizes() || t->scalar_type() != param.scalar_type()) {
    std::ostringstream message;
    message << path << ": optimizer state '" << key << "' is " << t->scalar_type() << " "
            << t->sizes() << ", its parameter " << param.scalar_type() << " " << param.sizes();
    throw DataError(message.str());
  }
  if (key.rfind("stylefleet.adam.exp_avg_sq.", 0) == 0 && (*t < 0).any().item<bool>()) {
    throw DataError(path + ": optimizer state '" + key +
                    "' holds negative values (a mean of squares cannot)");
  }
  return *t;
}

// The RNG state must fit the CPU generator. It is tried on a scratch generator
// first: LibTorch's own check throws a c10::Error with a backtrace, and a
// rejected file must leave the default generator as it was.
void CheckRngState(const torch::Tensor& rng, const std::string& path) {
  const torch::Tensor current = at::detail::getDefaultCPUGenerator().get_state();
  if (rng.scalar_type() != current.scalar_type() || rng.dim() != 1 ||
      rng.numel() != current.numel()) {
    std::ostringstream message;
    message << path << ": 'stylefleet.rng' is " << rng.scalar_type() << " " << rng.sizes()
            << ", expected the CPU generator's state, " << current.scalar_type() << " "
            << current.sizes();
    throw DataError(message.str());
  }
  try {
    at::Generator scratch = at::detail::createCPUGenerator();
    scratch.set_state(rng);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw DataError(path + ": 'stylefleet.rng' is not a valid generator state (" +
                    what.substr(0, what.find('\n')) + ")");
  }
}
}  // namespace

TensorDict ModelDict(TransformerNet& net, const ModelInfo& info) {
  return WithChecksum(ModelEntries(net, info));
}

TensorDict CheckpointDict(TransformerNet& net, Adam& adam, const RunPosition& position,
                          const ModelInfo& info,
                          const std::vector<std::vector<double>>& log_windows) {
  TensorDict dict = ModelEntries(net, info);
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
  for (size_t j = 0; j < log_windows.size(); ++j) {
    const std::vector<double>& sums = log_windows[j];
    dict.emplace_back("stylefleet.log_window." + std::to_string(j),
                      torch::tensor(sums, torch::kFloat64));
  }
  return WithChecksum(std::move(dict));
}

std::vector<std::vector<double>> ReadLogWindows(const TensorDict& dict, size_t count) {
  std::vector<std::vector<double>> windows(count);
  for (size_t j = 0; j < count; ++j) {
    const torch::Tensor* t = FindTensor(dict, "stylefleet.log_window." + std::to_string(j));
    if (t == nullptr || t->dim() != 1) continue;
    const torch::Tensor values = t->to(torch::kFloat64).contiguous();
    windows[j].assign(values.data_ptr<double>(), values.data_ptr<double>() + values.numel());
  }
  return windows;
}

RunPosition RestoreCheckpoint(const TensorDict& dict, const std::string& path, TransformerNet& net,
                              Adam& adam) {
  VerifyDict(dict, path);
  // Everything is checked before anything is restored, so that a rejected
  // file leaves the network, optimizer and generator for the next one to fill.
  RunPosition position;
  position.step = ReadInt(dict, "stylefleet.step", path);
  position.epoch = ReadInt(dict, "stylefleet.epoch", path);
  position.batch = ReadInt(dict, "stylefleet.batch", path);
  const int64_t adam_steps = ReadInt(dict, "stylefleet.adam.steps", path);
  const int64_t max = std::numeric_limits<int64_t>::max();
  CheckRange(position.step, 0, max, "stylefleet.step", "steps done", path);
  // Each step moves the position by one batch at most (a content set that
  // shrank folds batches into epochs), so neither passes the step count; a
  // negative batch would index before the data set.
  CheckRange(position.epoch, 0, position.step, "stylefleet.epoch", "at most one per step", path);
  CheckRange(position.batch, 0, position.step, "stylefleet.batch", "at most one per step", path);
  // Adam's bias correction divides by 1 - beta^steps: zero after a negative count.
  CheckRange(adam_steps, 0, max, "stylefleet.adam.steps", "updates done", path);
  std::vector<const torch::Tensor*> states;
  for (const auto& [name, param] : TrainableParameters(net)) {
    for (const char* kind : {"exp_avg.", "exp_avg_sq."}) {
      states.push_back(
          &AdamState(dict, std::string("stylefleet.adam.") + kind + name, param, path));
    }
  }
  const torch::Tensor* rng = FindTensor(dict, "stylefleet.rng");
  if (rng != nullptr) CheckRngState(*rng, path);

  LoadTransformerParameters(net, dict, path);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < states.size() / 2; ++i) {
    adam.exp_avg(i).copy_(*states[2 * i]);
    adam.exp_avg_sq(i).copy_(*states[2 * i + 1]);
  }
  adam.set_steps(adam_steps);
  if (rng != nullptr) {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(*rng);
  }
  return position;
}

TensorDict RecomputeChecksum(TensorDict dict) {
  dict.erase(std::remove_if(dict.begin(), dict.end(),
                            [](const auto& entry) { return entry.first == kChecksumKey; }),
             dict.end());
  return WithChecksum(std::move(dict));
}

void AppendConditionalEntries(const std::vector<std::string>& styles, TensorDict& dict) {
  std::string names;
  for (const std::string& name : styles) names += (names.empty() ? "" : "\n") + name;
  dict.emplace_back("stylefleet.network", StringToTensor("conditional"));
  dict.emplace_back("stylefleet.styles", StringToTensor(names));
}

ModelOwner ReadModelOwner(const TensorDict& dict) {
  ModelOwner owner;
  if (const torch::Tensor* job = FindTensor(dict, "stylefleet.job"))
    owner.job = TensorToString(*job);
  if (const torch::Tensor* style = FindTensor(dict, "stylefleet.style")) {
    owner.style = TensorToString(*style);
  }
  return owner;
}

std::vector<std::string> ModelStyleNames(const TensorDict& dict) {
  std::vector<std::string> names;
  const torch::Tensor* stored = FindTensor(dict, "stylefleet.styles");
  if (stored == nullptr) return names;
  std::istringstream lines(TensorToString(*stored));
  for (std::string name; std::getline(lines, name, '\n');) names.push_back(name);
  return names;
}

namespace {
// The style folders of a conditional or arbitrary job hold metrics and
// previews but no model: the network is their sibling `conditional` or
// `arbitrary` (the job's default layout), where a user who points at a
// style's folder should look instead.
std::string ConditionalNetworkHint(const std::string& style_folder) {
  fs::path folder = fs::path(style_folder).lexically_normal();
  if (folder.filename().empty()) folder = folder.parent_path();
  for (const std::string kind : {"conditional", kArbitraryNetworkKind}) {
    const fs::path network = folder.parent_path() / kind;
    std::error_code ec;
    if (folder.filename() == kind || (!fs::is_regular_file(network / "model.pt", ec) &&
                                      ListCheckpoints(network.string()).empty())) {
      continue;
    }
    if (kind == kArbitraryNetworkKind) {
      return "; if it is a style of the arbitrary-style network in " + network.string() +
             ", give that folder and a style image: --model " + network.string() +
             " --style-image PATH";
    }
    return "; if it is a style of the conditional network in " + network.string() +
           ", give that folder and the style: --model " + network.string() + " --style " +
           folder.filename().string() + " (`stylefleet info " + network.string() +
           "` lists its styles)";
  }
  return "";
}
}  // namespace

LoadedModel LoadModel(const std::string& path) {
  std::string file = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path model = fs::path(path) / "model.pt";
    if (fs::is_regular_file(model, ec)) {
      file = model.string();
    } else {
      const auto checkpoints = ListCheckpoints(path);
      if (checkpoints.empty()) {
        throw DataError(path + ": folder holds neither model.pt nor checkpoints/step-*.pt" +
                        ConditionalNetworkHint(path));
      }
      file = checkpoints.front();
    }
  }
  const TensorDict dict = LoadTensorDict(file);
  VerifyDict(dict, file);
  LoadedModel loaded;
  loaded.file = file;
  const torch::Tensor* kind = FindTensor(dict, "stylefleet.network");
  if (kind != nullptr && TensorToString(*kind) == kArbitraryNetworkKind) {
    loaded.net = TransformerNet(ReadPredictedNorms(dict, file));
    LoadTransformerParameters(loaded.net, dict, file);
    loaded.net->eval();
    loaded.trained_styles = ModelStyleNames(dict);
    if (const torch::Tensor* loss = FindTensor(dict, "stylefleet.loss_network"))
      loaded.loss_network = TensorToString(*loss);
    loaded.style_image_size = ReadInt(dict, "stylefleet.style_image_size", file);
    CheckRange(loaded.style_image_size, 16, 4096, "stylefleet.style_image_size",
               "a training style image size", file);
    return loaded;
  }
  loaded.styles = ModelStyleNames(dict);
  const torch::Tensor* rows = FindTensor(dict, "in1.weight");
  if (!loaded.styles.empty() && (rows == nullptr || rows->dim() != 2 ||
                                 rows->size(0) != static_cast<int64_t>(loaded.styles.size()))) {
    throw DataError(file + ": lists " + std::to_string(loaded.styles.size()) +
                    " style names but its instance norms do not hold one row per style");
  }
  // --style and --blend choose rows by name: an empty or repeated name
  // (a hand-edited file) would leave a row that no name reaches.
  for (size_t i = 0; i < loaded.styles.size(); ++i) {
    const auto first = std::find(loaded.styles.begin(), loaded.styles.end(), loaded.styles[i]);
    if (loaded.styles[i].empty() || first != loaded.styles.begin() + static_cast<long>(i)) {
      throw DataError(file + ": 'stylefleet.styles' names row " + std::to_string(i) + " '" +
                      loaded.styles[i] + "', " +
                      (loaded.styles[i].empty() ? "an empty name" : "a name given twice") +
                      "; each row needs its own name");
    }
  }
  if (loaded.styles.empty() && rows != nullptr && rows->dim() == 2) {
    throw DataError(file + ": conditional network without 'stylefleet.styles' (its style names)");
  }
  loaded.net = TransformerNet(static_cast<int64_t>(loaded.styles.size()));
  LoadTransformerParameters(loaded.net, dict, file);
  loaded.net->eval();
  return loaded;
}

TransformerNet LoadTransformer(const std::string& path, std::string* resolved) {
  LoadedModel loaded = LoadModel(path);
  if (!loaded.styles.empty()) {
    std::string names;
    for (const std::string& name : loaded.styles) names += (names.empty() ? "" : ", ") + name;
    throw DataError(loaded.file + ": a conditional network of " +
                    std::to_string(loaded.styles.size()) + " styles (" + names +
                    "); choose one with --style NAME or mix them with --blend NAME=W,...");
  }
  if (resolved != nullptr) *resolved = loaded.file;
  return loaded.net;
}

}  // namespace stylefleet
