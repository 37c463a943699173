// Using trained models: stylize, export, and the loss report.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "checkpoint/model_file.h"
#include "commands/commands.h"
#include "common/error.h"
#include "common/log.h"
#include "common/vgg_layers.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/image_tensor.h"
#include "loss/losses.h"
#include "model/stylize.h"
#include "model/vgg16.h"
#include "step/forward_pass.h"

namespace stylefleet {
namespace fs = std::filesystem;

StylizeResult StylizeImages(const StylizeOptions& options) {
  if (options.threads > 0) torch::set_num_threads(options.threads);
  if (options.tile_size != 0 && options.tile_size < 64) {
    throw ConfigError(
        {"--tile: expected 0 or at least 64, got " + std::to_string(options.tile_size)});
  }
  // Planned before the model loads: a refused run stops at once, having written nothing.
  const StylizePlan plan = PlanStylize(options);
  StylizeResult result;
  result.skipped = plan.skipped;
  for (const SkippedImage& skipped : plan.skipped) SF_LOG(kWarning) << DescribeSkip(skipped);
  std::string resolved;
  TransformerNet net = LoadTransformer(options.model, &resolved);
  SF_LOG(kInfo) << "model " << resolved;
  std::error_code ec;
  fs::create_directories(options.output_dir, ec);
  if (ec) throw Error(options.output_dir + ": cannot create output folder (" + ec.message() + ")");
  for (const StylizeTarget& target : plan.targets) {
    try {
      const RgbImage input = LoadImageFile(target.input);
      const torch::Tensor image = ImageToTensor(input);
      const auto start = std::chrono::steady_clock::now();
      const torch::Tensor out = StylizeTensor(net, image, options.tile_size);
      RgbImage styled = TensorToImage(out);
      styled.alpha = input.alpha;  // the network styles RGB; transparency stays the input's
      const fs::path folder = fs::path(target.output).parent_path();  // mirrors the input tree
      std::error_code folder_ec;
      if (!folder.empty()) fs::create_directories(folder, folder_ec);
      if (folder_ec) {
        throw DataError(folder.string() + ": cannot create folder (" + folder_ec.message() + ")");
      }
      SaveImageFile(styled, target.output);
      SF_LOG(kInfo)
          << target.input << " -> " << target.output << " (" << image.size(3) << "x"
          << image.size(2) << ", "
          << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
          << " s)";
      result.written.push_back(target.output);
    } catch (const DataError& e) {
      SF_LOG(kError) << e.what();
      result.failed.push_back(target.input);
    } catch (const c10::Error& e) {
      // A LibTorch failure on one image (its first line; the rest is a
      // backtrace) fails that image, not the run.
      const std::string what = e.what();
      SF_LOG(kError) << target.input << ": cannot stylize (" << what.substr(0, what.find('\n'))
                     << ")";
      result.failed.push_back(target.input);
    }
  }
  return result;
}

void ExportModel(const std::string& model, const std::string& output) {
  std::string resolved;
  TransformerNet net = LoadTransformer(model, &resolved);
  TensorDict dict;
  for (const auto& item : net->named_parameters()) dict.emplace_back(item.key(), item.value());
  SaveTensorDict(dict, output);
  SF_LOG(kInfo) << "exported " << resolved << " -> " << output << " (" << dict.size()
                << " tensors, PyTorch example TransformerNet names)";
}

namespace {

// What `losses` scores with: the job's settings (and one of its styles) when
// a job is given, else the job defaults; explicit options win over both.
struct LossSetup {
  std::vector<std::string> content_layers = LossNetworkOptions{}.content_layers;
  std::vector<std::string> style_layers = LossNetworkOptions{}.style_layers;
  LossWeights weights;
  int image_size = DataOptions{}.image_size;
  std::string style_image;
  std::string loss_network;
};

const StyleSpec& FindJobStyle(const JobConfig& job, const std::string& name) {
  std::string names;
  for (const auto& style : job.styles) {
    if (style.name == name || (name.empty() && job.styles.size() == 1)) return style;
    names += (names.empty() ? "" : ", ") + style.name;
  }
  throw ConfigError({(name.empty() ? std::string("--style NAME is needed: the job has several")
                                   : "--style " + name + ": the job has no such style") +
                     "; its styles: " + names});
}

LossSetup ResolveLossSetup(const LossesOptions& options) {
  LossSetup setup;
  TrainingOptions training;
  setup.style_image = options.style;
  setup.loss_network = options.loss_network;
  if (options.job != nullptr) {
    const JobConfig& job = *options.job;
    const StyleSpec& style = FindJobStyle(job, options.style);
    setup.content_layers = job.loss_network.content_layers;
    setup.style_layers = job.loss_network.style_layers;
    training = style.training;
    setup.image_size = job.data.image_size;
    setup.style_image = style.image;
    if (setup.loss_network.empty()) setup.loss_network = job.loss_network.weights;
  }
  if (setup.style_image.empty()) throw ConfigError({"losses: give --style IMAGE (or --job JOB)"});
  if (setup.loss_network.empty()) {
    throw ConfigError({"losses: give --loss-network FILE|random:SEED (or --job JOB)"});
  }
  setup.weights = {training.content_weight, training.style_weight, training.tv_weight};
  if (options.image_size > 0) setup.image_size = options.image_size;
  return setup;
}

}  // namespace

std::string ComputeLossesJson(const LossesOptions& options) {
  const LossSetup setup = ResolveLossSetup(options);
  const std::vector<std::string>& content_layers = setup.content_layers;
  const std::vector<std::string>& style_layers = setup.style_layers;
  const LossWeights& weights = setup.weights;
  const int image_size = setup.image_size;
  const Vgg16 vgg = Vgg16::Load(setup.loss_network);
  const std::vector<int> content_idx = VggLayerIndices(content_layers);
  const std::vector<int> style_idx = VggLayerIndices(style_layers);
  torch::NoGradGuard no_grad;
  const torch::Tensor content =
      ImageToTensor(ResizeCenterCrop(LoadImageFile(options.content), image_size));
  const torch::Tensor style =
      ImageToTensor(ResizeCenterCrop(LoadImageFile(setup.style_image), image_size));
  torch::Tensor generated = content;
  if (!options.model.empty()) {
    TransformerNet net = LoadTransformer(options.model);
    generated = net->forward(content);
  }
  const std::vector<torch::Tensor> grams = StyleGrams(vgg, style, style_idx, Precision::kFp32);
  const auto content_features = vgg.Forward(content, content_idx);
  std::vector<int> all = content_idx;
  all.insert(all.end(), style_idx.begin(), style_idx.end());
  const auto gen_features = vgg.Forward(generated, all);
  std::vector<torch::Tensor> gc, tc, gs;
  for (int l : content_idx) {
    gc.push_back(gen_features.at(l));
    tc.push_back(content_features.at(l));
  }
  for (int l : style_idx) gs.push_back(gen_features.at(l));
  const LossTerms terms = ComputeLosses(gc, tc, gs, grams, generated, weights);
  nlohmann::json out;
  out["content_loss"] = terms.content.item<double>();
  out["style_loss"] = terms.style.item<double>();
  nlohmann::json by_layer;
  for (size_t i = 0; i < style_layers.size(); ++i) {
    by_layer[VggLayerNames()[style_idx[i]]] = terms.style_layers[i].item<double>();
  }
  out["style_loss_by_layer"] = by_layer;
  out["tv_loss"] = terms.tv.item<double>();
  out["total_loss"] = terms.total.item<double>();
  out["weights"] = {{"content", weights.content}, {"style", weights.style}, {"tv", weights.tv}};
  out["image_size"] = image_size;
  out["loss_network"] = setup.loss_network;
  out["loss_network_convention"] = {{"name", vgg.convention().name},
                                    {"activation_scale", vgg.convention().activation_scale}};
  out["style_image"] = setup.style_image;
  out["generated_by"] = options.model.empty() ? "content image itself" : options.model;
  return out.dump(2);
}

LossNetworkReport DescribeLossNetwork(const std::string& weights) {
  const Vgg16 vgg = Vgg16::Load(weights);
  return {vgg.DescribeConvention(), vgg.SeedBalanceWarning()};
}

}  // namespace stylefleet
