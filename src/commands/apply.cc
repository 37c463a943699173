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
#include "model/vgg16.h"
#include "step/forward_pass.h"

namespace stylefleet {
namespace fs = std::filesystem;

namespace {

// Runs the network on an image of any size: reflection-pads to a multiple of 4
// (the network halves twice), then crops back.
torch::Tensor RunPadded(TransformerNet& net, const torch::Tensor& image) {
  const int64_t h = image.size(2), w = image.size(3);
  const int64_t pad_h = (4 - h % 4) % 4, pad_w = (4 - w % 4) % 4;
  torch::Tensor x = image;
  if (pad_h || pad_w) {
    // Reflection needs the pad smaller than the side; tiny images use replicate.
    torch::nn::functional::PadFuncOptions pad({0, pad_w, 0, pad_h});
    if (h > pad_h && w > pad_w) {
      pad.mode(torch::kReflect);
    } else {
      pad.mode(torch::kReplicate);
    }
    x = torch::nn::functional::pad(x, pad);
  }
  return net->forward(x).slice(2, 0, h).slice(3, 0, w);
}

// Weight of each pixel of a tile in the blend: rises linearly over `overlap`
// pixels from each edge, so neighbouring tiles cross-fade without seams.
torch::Tensor TileWeights(int64_t h, int64_t w, int64_t overlap) {
  auto ramp = [&](int64_t n) {
    torch::Tensor i = torch::arange(n, torch::kFloat32);
    torch::Tensor d = torch::minimum(i, (n - 1) - i);
    return ((d + 1) / float(overlap + 1)).clamp(1e-3, 1.0);
  };
  return torch::minimum(ramp(h).view({h, 1}), ramp(w).view({1, w})).view({1, 1, h, w});
}

std::vector<int64_t> TileStarts(int64_t length, int64_t tile, int64_t overlap) {
  std::vector<int64_t> starts;
  if (length <= tile) return {0};
  const int64_t stride = tile - overlap;
  for (int64_t s = 0;; s += stride) {
    if (s + tile >= length) {
      starts.push_back(length - tile);
      break;
    }
    starts.push_back(s);
  }
  return starts;
}

torch::Tensor Stylize(TransformerNet& net, const torch::Tensor& image, int tile, int overlap) {
  torch::NoGradGuard no_grad;
  const int64_t h = image.size(2), w = image.size(3);
  if (tile <= 0 || (h <= tile && w <= tile)) return RunPadded(net, image).clamp(0, 255);
  torch::Tensor sum = torch::zeros_like(image);
  torch::Tensor weight = torch::zeros({1, 1, h, w});
  const int64_t th = std::min<int64_t>(tile, h), tw = std::min<int64_t>(tile, w);
  for (int64_t y : TileStarts(h, th, overlap)) {
    for (int64_t x : TileStarts(w, tw, overlap)) {
      const torch::Tensor part = image.slice(2, y, y + th).slice(3, x, x + tw);
      const torch::Tensor out = RunPadded(net, part);
      const torch::Tensor wgt = TileWeights(th, tw, overlap);
      sum.slice(2, y, y + th).slice(3, x, x + tw).add_(out * wgt);
      weight.slice(2, y, y + th).slice(3, x, x + tw).add_(wgt);
    }
  }
  return (sum / weight).clamp(0, 255);
}

}  // namespace

StylizeResult StylizeImages(const StylizeOptions& options) {
  if (options.threads > 0) torch::set_num_threads(options.threads);
  if (options.tile_size != 0 && (options.tile_size < 64 || options.tile_overlap < 0 ||
                                 options.tile_overlap * 2 >= options.tile_size)) {
    throw ConfigError({"--tile: expected 0 or at least 64, with --overlap below half of it"});
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
      const torch::Tensor out = Stylize(net, image, options.tile_size, options.tile_overlap);
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
