// Using trained models: stylize, export, and the loss report.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint/model_file.h"
#include "commands/arbitrary_style.h"
#include "commands/commands.h"
#include "common/error.h"
#include "common/log.h"
#include "common/utf8.h"
#include "common/vgg_layers.h"
#include "common/writable_file.h"
#include "config/job_config.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/image_tensor.h"
#include "loss/losses.h"
#include "model/stylize.h"
#include "model/vgg16.h"
#include "model/winograd_conv.h"
#include "runtime/rank_runtime.h"
#include "step/forward_pass.h"

namespace stylefleet {
namespace fs = std::filesystem;

namespace {

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

std::string TrimSpaces(const std::string& text) {
  const size_t first = text.find_first_not_of(' ');
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(' ') - first + 1);
}

// `NAME=W,NAME=W` as one weight per style of `styles`; spaces around names
// and weights are ignored (`a=0.5, b=0.5`), as by python/stylefleet_torch.py.
torch::Tensor ParseBlend(const std::string& text, const std::vector<std::string>& styles) {
  torch::Tensor weights = torch::zeros({static_cast<int64_t>(styles.size())}, torch::kDouble);
  std::vector<bool> given(styles.size(), false);
  std::istringstream entries(text);
  double sum = 0;
  for (std::string entry; std::getline(entries, entry, ',');) {
    const size_t eq = entry.find('=');
    const std::string name = TrimSpaces(entry.substr(0, eq));
    if (eq == std::string::npos || name.empty()) {
      throw ConfigError(
          {"--blend: expected NAME=WEIGHT,NAME=WEIGHT, got '" + entry + "' in '" + text + "'"});
    }
    const std::string number = TrimSpaces(entry.substr(eq + 1));
    const auto it = std::find(styles.begin(), styles.end(), name);
    if (it == styles.end()) {
      throw ConfigError(
          {"--blend: the model has no style '" + name + "'; its styles: " + JoinNames(styles)});
    }
    const size_t row = static_cast<size_t>(it - styles.begin());
    if (given[row]) throw ConfigError({"--blend: style '" + name + "' is given twice"});
    given[row] = true;
    char* end = nullptr;
    const double w = std::strtod(number.c_str(), &end);
    if (number.empty() || end != number.c_str() + number.size() || !(w >= 0 && w <= 1)) {
      throw ConfigError({"--blend: the weight of '" + name +
                         "' must be a number from 0 to 1, got '" + number + "'"});
    }
    weights[static_cast<int64_t>(row)] = w;
    sum += w;
  }
  if (std::abs(sum - 1.0) > 1e-6) {
    std::ostringstream message;
    message << "--blend: the weights sum to " << sum
            << "; they must sum to 1 (a convex combination of the styles' rows)";
    throw ConfigError({message.str()});
  }
  return weights;
}

// The network that stylizes: a per-style model as it is; a conditional one
// as the per-style network of the chosen style or blend. An arbitrary-style
// model's depends on the photo (ArbitraryStyle).
TransformerNet StylizingNetwork(LoadedModel& model, const StylizeOptions& options) {
  const std::vector<std::string>& styles = model.styles;
  if (model.net->predicts_norms()) {
    throw ConfigError({model.file +
                       " is an arbitrary-style model: it stylizes with a style image "
                       "(`stylefleet stylize --style-image PATH`); this command takes per-style "
                       "and conditional models"});
  }
  if (!options.style_images.empty() || options.strength != 1.0) {
    throw ConfigError({"--style-image/--strength: " + model.file +
                       " is not an arbitrary-style model; they give the style of an "
                       "arbitrary-style model (job.network arbitrary)"});
  }
  if (styles.empty()) {
    if (!options.style.empty() || !options.blend.empty()) {
      throw ConfigError({"--style/--blend: " + model.file +
                         " is a per-style model (one style); they choose among the styles of a "
                         "conditional model"});
    }
    return model.net;
  }
  if (!options.style.empty() && !options.blend.empty()) {
    throw ConfigError({"--style and --blend: give one of them, not both"});
  }
  if (options.style.empty() && options.blend.empty()) {
    throw ConfigError({model.file + " is a conditional model of " + std::to_string(styles.size()) +
                       " styles (" + JoinNames(styles) +
                       "): give either --style NAME or --blend NAME=W,NAME=W"});
  }
  torch::Tensor weights;
  if (!options.style.empty()) {
    const auto it = std::find(styles.begin(), styles.end(), options.style);
    if (it == styles.end()) {
      throw ConfigError({"--style " + options.style +
                         ": the model has no such style; its styles: " + JoinNames(styles)});
    }
    weights = torch::zeros({static_cast<int64_t>(styles.size())});
    weights[it - styles.begin()] = 1.0;
  } else {
    weights = ParseBlend(options.blend, styles);
  }
  return BlendedTransformer(model.net, weights);
}

// The loss network that summarizes an arbitrary-style model's style images:
// `given` (--loss-network), else the one its file names.
Vgg16 LoadSummaryNetwork(const LoadedModel& model, const std::string& given) {
  const std::string spec = given.empty() ? model.loss_network : given;
  if (spec.empty()) {
    throw ConfigError({model.file +
                       " names no loss network; give the one it trained with: --loss-network "
                       "FILE (or random:SEED)"});
  }
  try {
    return Vgg16::Load(spec);
  } catch (const DataError& e) {
    throw DataError(std::string(e.what()) +
                    " (the loss network that summarizes style images; --loss-network FILE "
                    "gives another copy of it)");
  }
}

// The arbitrary-style model's network for each photo: the style images'
// embedding (their blend), moved toward the photo's own by --strength.
class ArbitraryStyle {
 public:
  ArbitraryStyle(LoadedModel& model, const StylizeOptions& options)
      : model_(model),
        vgg_(LoadSummaryNetwork(model, options.loss_network)),
        layers_(model.net->predicted_norms().summary_layers),
        strength_(options.strength) {
    const torch::Tensor weights = BlendWeights(options);
    std::vector<torch::Tensor> images;
    for (const std::string& path : options.style_images) {
      const RgbImage image = LoadImageFile(
          path, DecodeOptions{options.max_image_pixels, 0, "stylize --max-image-pixels"});
      if (std::min(image.width, image.height) < kMinArbitraryStyleImageSide) {
        throw DataError("style image " + path + ": " + std::to_string(image.width) + "x" +
                        std::to_string(image.height) + " pixels; the predictor needs at least " +
                        std::to_string(kMinArbitraryStyleImageSide) + " on each side");
      }
      images.push_back(Prepared(image));
    }
    torch::NoGradGuard no_grad;
    const torch::Tensor embeddings = Embed(torch::cat(images));
    style_embedding_ = weights.unsqueeze(0).matmul(embeddings);  // [1 x E]
  }

  /// Throws ConfigError for options an arbitrary-style model cannot take,
  /// before anything loads.
  static void CheckChoice(const StylizeOptions& options) {
    if (!options.style.empty()) {
      throw ConfigError({"--style: " + options.model +
                         " is an arbitrary-style model, which has no named styles; give the "
                         "style as an image: --style-image PATH"});
    }
    if (options.style_images.empty()) {
      throw ConfigError({options.model +
                         " is an arbitrary-style model: give the style as an image, "
                         "--style-image PATH (several blend; --strength S from 0 to 1)"});
    }
    if (!std::isfinite(options.strength) || options.strength < 0 || options.strength > 1) {
      throw ConfigError(
          {"--strength: expected a number from 0 to 1, got " + std::to_string(options.strength)});
    }
    BlendWeights(options);
  }

  /// The per-style network that stylizes `photo`.
  TransformerNet For(const RgbImage& photo) {
    torch::NoGradGuard no_grad;
    if (strength_ == 1.0) return FullStrength();
    return NetworkOf(strength_ * style_embedding_ + (1.0 - strength_) * Embed(Prepared(photo)));
  }

  /// The style images' network (strength 1), the same for every photo: built once.
  TransformerNet FullStrength() {
    torch::NoGradGuard no_grad;
    if (!full_strength_net_) full_strength_net_ = NetworkOf(style_embedding_);
    return full_strength_net_;
  }

 private:
  // One weight per style image: --blend's numbers in order, else equal.
  static torch::Tensor BlendWeights(const StylizeOptions& options) {
    const int64_t n = static_cast<int64_t>(options.style_images.size());
    if (options.blend.empty()) return torch::full({n}, 1.0 / double(n), torch::kFloat32);
    std::vector<float> weights;
    // Spaces around weights are ignored, as for a conditional model's blend;
    // a trailing comma is an empty weight.
    std::stringstream list(options.blend + ",");
    double sum = 0;
    for (std::string item; std::getline(list, item, ',');) {
      item = TrimSpaces(item);
      char* end = nullptr;
      const double w = std::strtod(item.c_str(), &end);
      if (item.empty() || end != item.c_str() + item.size() || !std::isfinite(w) || w < 0 ||
          w > 1) {
        throw ConfigError({"--blend " + options.blend + ": '" + item +
                           "' is not a weight from 0 to 1 (for an arbitrary-style model, one "
                           "number per --style-image, in order: 0.7,0.3)"});
      }
      weights.push_back(static_cast<float>(w));
      sum += w;
    }
    if (static_cast<int64_t>(weights.size()) != n || std::abs(sum - 1.0) > 1e-6) {
      throw ConfigError({"--blend " + options.blend + ": give " + std::to_string(n) +
                         " weight(s), one per --style-image, that sum to 1"});
    }
    return torch::tensor(weights, torch::kFloat32);
  }
  // An image as training summarized its style images: resized and
  // centre-cropped to the model's style image size.
  torch::Tensor Prepared(const RgbImage& image) const {
    return ImageToTensor(ResizeCenterCrop(image, static_cast<int>(model_.style_image_size)));
  }
  torch::Tensor Embed(const torch::Tensor& images) {
    return model_.net->predictor()->Embed(StyleImageSummary(vgg_, images, layers_));
  }
  TransformerNet NetworkOf(const torch::Tensor& embedding) const {
    return FixedNormsTransformer(model_.net, model_.net->predictor()->NormsOf(embedding)[0]);
  }

  LoadedModel& model_;
  Vgg16 vgg_;
  std::vector<int> layers_;
  double strength_;
  torch::Tensor style_embedding_;
  TransformerNet full_strength_net_{nullptr};
};

}  // namespace

TransformerNet ArbitraryStyleNetwork(LoadedModel& model, const StylizeOptions& options,
                                     const RgbImage& photo) {
  ArbitraryStyle::CheckChoice(options);
  return ArbitraryStyle(model, options).For(photo);
}

StylizeResult StylizeImages(const StylizeOptions& options) {
  UseIntraOpThreads(options.threads, /*ranks_on_host=*/1);
  if (options.tile_size != 0 && options.tile_size < 64) {
    throw ConfigError(
        {"--tile: expected 0 or at least 64, got " + std::to_string(options.tile_size)});
  }
  // Planned before the model loads: a refused run stops at once, having written nothing.
  const StylizePlan plan = PlanStylize(options);
  StylizeResult result;
  result.skipped = plan.skipped;
  for (const SkippedImage& skipped : plan.skipped) SF_LOG(kWarning) << DescribeSkip(skipped);
  const ScopedWinograd convolutions(options.convolution == "winograd");
  SF_LOG(kInfo) << DescribeConvolutions(options.convolution);
  LoadedModel model = LoadModel(options.model);
  std::unique_ptr<ArbitraryStyle> arbitrary;
  TransformerNet net{nullptr};
  if (model.net->predicts_norms()) {
    ArbitraryStyle::CheckChoice(options);
    arbitrary = std::make_unique<ArbitraryStyle>(model, options);
  } else {
    net = StylizingNetwork(model, options);
  }
  SF_LOG(kInfo) << "model " << model.file
                << (options.style.empty() ? "" : ", style " + options.style)
                << (options.style_images.empty()
                        ? ""
                        : ", " + std::to_string(options.style_images.size()) + " style image(s)")
                << (arbitrary != nullptr && options.strength != 1.0
                        ? ", strength " + std::to_string(options.strength)
                        : "")
                << (options.blend.empty() ? "" : ", blend " + options.blend)
                << (options.preserve_colour ? ", the photos' colours kept (luminance only)" : "");
  std::error_code ec;
  fs::create_directories(options.output_dir, ec);
  if (ec) throw Error(options.output_dir + ": cannot create output folder (" + ec.message() + ")");
  for (const StylizeTarget& target : plan.targets) {
    try {
      const RgbImage input = LoadImageFile(
          target.input, DecodeOptions{options.max_image_pixels, 0, "stylize --max-image-pixels"});
      const torch::Tensor image = ImageToTensor(input);
      const auto start = std::chrono::steady_clock::now();
      TransformerNet photo_net = arbitrary != nullptr ? arbitrary->For(input) : net;
      const torch::Tensor out = StylizeTensor(photo_net, image, options.tile_size);
      RgbImage styled = TensorToImage(out);
      if (options.preserve_colour) styled = WithChromaOf(styled, input);
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

namespace {

// An arbitrary-style model's export: what its model file holds (transformer,
// predictor, the kind's metadata) and, under `stylefleet.vgg.`, the loss
// network's layers down to the deepest the predictor reads, with its input
// convention. PyTorch can then summarize a style image without the loss
// network's file, which a `random:SEED` network does not have (LibTorch's
// generator draws its weights).
TensorDict ArbitraryExport(LoadedModel& loaded, const std::string& loss_network) {
  const Vgg16 vgg = LoadSummaryNetwork(loaded, loss_network);
  const TensorDict source = LoadTensorDict(loaded.file);
  const torch::Tensor* image_size = FindTensor(source, "stylefleet.image_size");
  ModelInfo info{ReadModelOwner(source).job, kArbitraryNetworkName,
                 image_size != nullptr && image_size->numel() == 1 &&
                         image_size->scalar_type() == torch::kInt64
                     ? image_size->item<int64_t>()
                     : 0,
                 loaded.trained_styles};
  // The export names the loss network whose layers it holds, so that
  // stylefleet's stylize of it summarizes as PyTorch does.
  info.loss_network = loss_network.empty() ? loaded.loss_network : loss_network;
  if (!loss_network.empty() && loss_network != loaded.loss_network) {
    SF_LOG(kWarning) << "export: --loss-network " << loss_network << " is not the loss network "
                     << loaded.file << " names (" << EscapeForMessage(loaded.loss_network)
                     << "); the export holds and names it: it stylizes as the model does only "
                        "if it is a copy of that network";
  }
  info.style_image_size = loaded.style_image_size;
  TensorDict dict = ModelDict(loaded.net, info);
  const std::vector<int>& layers = loaded.net->predicted_norms().summary_layers;
  for (auto& entry :
       vgg.LayersUpTo(*std::max_element(layers.begin(), layers.end()), "stylefleet.vgg.")) {
    dict.push_back(std::move(entry));
  }
  return RecomputeChecksum(std::move(dict));
}

}  // namespace

void ExportModel(const std::string& model, const std::string& output, bool overwrite,
                 bool keep_names, const std::string& loss_network) {
  std::error_code ec;
  if (fs::is_directory(output, ec)) {
    throw ConfigError({"--to " + output + ": is a folder; give the file to write"});
  }
  if (fs::exists(output, ec) && !overwrite) {
    throw ConfigError({"--to " + output + ": file exists; --overwrite replaces it"});
  }
  try {
    FileToReplace(output);  // a device or FIFO is never replaced by the model file
  } catch (const Error& e) {
    throw ConfigError({"--to " + std::string(e.what())});
  }
  LoadedModel loaded = LoadModel(model);
  if (fs::exists(output, ec) && fs::equivalent(output, loaded.file, ec)) {
    throw ConfigError({"--to " + output + ": is the model being exported; write elsewhere"});
  }
  if (loaded.net->predicts_norms()) {
    const TensorDict dict = ArbitraryExport(loaded, loss_network);
    SaveTensorDict(dict, output);
    SF_LOG(kInfo) << "exported " << loaded.file << " -> " << output << " (" << dict.size()
                  << " tensors, an arbitrary-style network with its loss network's layers "
                     "up to the deepest the predictor reads: python/stylefleet_torch.py "
                     "loads it)";
    return;
  }
  TensorDict dict;
  for (const auto& item : loaded.net->named_parameters())
    dict.emplace_back(item.key(), item.value());
  if (!loaded.styles.empty()) AppendConditionalEntries(loaded.styles, dict);
  // A per-style network's name lives in `stylefleet.*` entries, which the
  // PyTorch example's strict load_state_dict refuses: kept only when asked.
  std::string name_note;
  if (loaded.styles.empty()) {
    const TensorDict source = LoadTensorDict(loaded.file);
    const ModelOwner owner = ReadModelOwner(source);
    const torch::Tensor* step = FindTensor(source, "stylefleet.step");
    if (keep_names) {
      if (!owner.style.empty()) dict.emplace_back("stylefleet.style", StringToTensor(owner.style));
      if (!owner.job.empty()) dict.emplace_back("stylefleet.job", StringToTensor(owner.job));
      if (step != nullptr && step->numel() == 1 && step->scalar_type() == torch::kInt64) {
        dict.emplace_back("stylefleet.step", step->reshape({}).clone());
      }
      name_note = owner.style.empty() ? "; the model names no style to keep"
                                      : "; style '" + EscapeForMessage(owner.style) +
                                            "' kept: python/stylefleet_torch.py reads it, the "
                                            "PyTorch example's strict load refuses it";
    } else if (!owner.style.empty()) {
      name_note = "; style '" + EscapeForMessage(owner.style) +
                  "' left out (the PyTorch example refuses other keys): --keep-names keeps it";
    }
  }
  SaveTensorDict(dict, output);
  SF_LOG(kInfo) << "exported " << loaded.file << " -> " << output << " (" << dict.size()
                << (loaded.styles.empty()
                        ? " tensors, PyTorch example TransformerNet names" + name_note + ")"
                        : " tensors, a conditional network of " +
                              std::to_string(loaded.styles.size()) +
                              " styles: python/stylefleet_torch.py loads it)");
}

namespace {
// `info` of an arbitrary-style network: its predictor, its parameters, the
// styles it trained on and how a new style image is summarized.
std::string DescribeArbitraryModel(LoadedModel& loaded) {
  const PredictedNorms& shape = loaded.net->predicted_norms();
  int64_t predictor = 0, transformer = 0;
  for (const auto& item : loaded.net->named_parameters()) {
    (item.key().rfind("predictor.", 0) == 0 ? predictor : transformer) += item.value().numel();
  }
  std::string layers, styles;
  for (int layer : shape.summary_layers)
    layers += (layers.empty() ? "" : ", ") + VggLayerNames()[static_cast<size_t>(layer)];
  for (const std::string& name : loaded.trained_styles)
    styles += (styles.empty() ? "" : ", ") + name;
  std::ostringstream out;
  out << "network: arbitrary (any style image: stylize --style-image)\n"
      << "predictor: mean and deviation of " << layers << " (" << shape.SummarySize()
      << " numbers) -> embedding of " << shape.embedding_size << " -> " << NormParameterCount()
      << " norm parameters\n"
      << "parameters: " << transformer + predictor << " (" << transformer << " transformer, "
      << predictor << " predictor)\n"
      << "trained on " << loaded.trained_styles.size() << " styles: " << EscapeForMessage(styles)
      << "\n"
      << "style images summarized at " << loaded.style_image_size << " px by the loss network "
      << EscapeForMessage(loaded.loss_network) << "\n";
  return out.str();
}
}  // namespace

std::string DescribeModel(const std::string& model) {
  LoadedModel loaded = LoadModel(model);
  int64_t shared = 0, rows = 0;
  for (const auto& item : loaded.net->named_parameters()) {
    const bool row = !loaded.styles.empty() && IsStyleRowParameter(item.key());
    (row ? rows : shared) += item.value().numel();
  }
  std::error_code ec;
  const auto bytes = fs::file_size(loaded.file, ec);
  std::ostringstream out;
  // Names and paths go to a terminal: a control character in them is shown,
  // never sent (an escape sequence would rewrite the screen or its title).
  out << "file: " << EscapeForMessage(loaded.file) << " (" << (ec ? 0 : bytes) << " bytes)\n";
  if (loaded.net->predicts_norms()) return out.str() + DescribeArbitraryModel(loaded);
  if (loaded.styles.empty()) {
    out << "network: per_style (one style)\n";
    // LoadedModel keeps only the network: the style's name and step are read
    // from the file's metadata (a PyTorch-example .pth or an export has none).
    const TensorDict dict = LoadTensorDict(loaded.file);
    const ModelOwner owner = ReadModelOwner(dict);
    if (!owner.style.empty()) out << "style: " << EscapeForMessage(owner.style) << "\n";
    if (!owner.job.empty()) out << "job: " << EscapeForMessage(owner.job) << "\n";
    const torch::Tensor* step = FindTensor(dict, "stylefleet.step");
    if (step != nullptr && step->numel() == 1 && !step->is_floating_point()) {
      out << "step: " << step->item<int64_t>() << "\n";
    }
    out << "parameters: " << shared << "\n";
    return out.str();
  }
  const int64_t n = static_cast<int64_t>(loaded.styles.size());
  out << "network: conditional, " << n << " styles\n"
      << "parameters: " << shared + rows << " (" << shared << " shared, " << rows / n
      << " per style: its instance-norm scale and shift rows, " << rows / n * 4
      << " bytes in float32)\nstyles (row: name):\n";
  for (int64_t i = 0; i < n; ++i)
    out << "  " << i << ": " << EscapeForMessage(loaded.styles[static_cast<size_t>(i)]) << "\n";
  return out.str();
}

// "the 3 styles", or with job.base_model "the base network's 3 styles (a, b,
// c) and 1 new style (d)": what a conditional job's network holds, since the
// base network's styles are part of it. An arbitrary-style job's base gives
// only its convolutions (and, distilled, its rows' fit).
std::string DescribeNetworkStyles(const JobConfig& job) {
  const auto count = [](size_t n, const std::string& what) {
    return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
  };
  const auto names = [](const std::vector<std::string>& list) {
    std::string text;
    for (const std::string& name : list) text += (text.empty() ? "" : ", ") + name;
    return EscapeForMessage(text);  // a base file's names go to a terminal
  };
  if (job.base_model.empty()) return "the " + count(job.styles.size(), "style");
  if (job.network == "arbitrary") {
    return "the " + count(job.styles.size(), "style") + ", starting from the convolutions of " +
           EscapeForMessage(job.base_model) +
           (job.distill_steps > 0 ? " with the predictor fitted to its rows (" +
                                        std::to_string(job.distill_steps) + " steps)"
                                  : "");
  }
  std::vector<std::string> added;
  for (const StyleSpec& style : job.styles) added.push_back(style.name);
  const std::vector<std::string> base = LoadModel(job.base_model).styles;
  return "the base network's " + count(base.size(), "style") + " (" + names(base) + ") and " +
         count(added.size(), "new style") + " (" + names(added) + ")";
}

namespace {

// What `losses` scores with: the job's settings (and one of its styles) when
// a job is given, else the job defaults; explicit options win over both.
struct LossSetup {
  std::vector<std::string> content_layers = LossNetworkOptions{}.content_layers;
  std::vector<std::string> style_layers = LossNetworkOptions{}.style_layers;
  LossWeights weights;
  int image_size = DataOptions{}.image_size;
  int style_image_size = 0;  ///< 0: image_size
  std::string style_image;
  std::string loss_network;
  bool style_luminance_only = false;
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
    // The style's own layers and style image size, as its training uses them.
    setup.content_layers = job.loss_network.content_layers;
    setup.style_layers = style.training.style_layers;
    training = style.training;
    setup.image_size = job.data.image_size;
    setup.style_image_size = style.training.style_image_size;
    setup.style_image = style.image;
    if (setup.loss_network.empty()) setup.loss_network = job.loss_network.weights;
  }
  setup.style_luminance_only = options.style_luminance_only.value_or(training.style_luminance_only);
  if (setup.style_image.empty()) throw ConfigError({"losses: give --style IMAGE (or --job JOB)"});
  if (setup.loss_network.empty()) {
    throw ConfigError({"losses: give --loss-network FILE|random:SEED (or --job JOB)"});
  }
  setup.weights = {training.content_weight, training.style_weight, training.tv_weight};
  if (options.image_size > 0) setup.image_size = options.image_size;
  if (setup.style_image_size == 0) setup.style_image_size = setup.image_size;
  return setup;
}

}  // namespace

namespace {

// `losses --model`: the content stylized by the model (a conditional network
// as the job's style that --style names; an arbitrary-style one with its norms
// predicted from the style image scored against, at full strength).
torch::Tensor GeneratedForLosses(const LossesOptions& options, const std::string& style_image,
                                 const torch::Tensor& content) {
  LoadedModel model = LoadModel(options.model);
  StylizeOptions choice;
  if (model.net->predicts_norms()) {
    choice.style_images = {style_image};
    return ArbitraryStyle(model, choice).FullStrength()->forward(content);
  }
  if (!model.styles.empty()) {
    if (options.job == nullptr) {
      throw ConfigError({"losses: " + model.file + " is a conditional network of styles (" +
                         JoinNames(model.styles) +
                         "); give --job JOB and --style NAME to score one of them"});
    }
    choice.style = FindJobStyle(*options.job, options.style).name;
  }
  TransformerNet net = StylizingNetwork(model, choice);
  return net->forward(content);
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
      ImageToTensor(ResizeCenterCrop(LoadImageFile(setup.style_image), setup.style_image_size));
  const torch::Tensor generated =
      options.model.empty() ? content : GeneratedForLosses(options, setup.style_image, content);
  // With the style loss on luminance, both images' style features come from
  // their luma (LuminanceImage) and the content features from the colours.
  const bool luminance = setup.style_luminance_only;
  const std::vector<torch::Tensor> grams =
      StyleGrams(vgg, luminance ? LuminanceImage(style) : style, style_idx, Precision::kFp32);
  const auto content_features = vgg.Forward(content, content_idx);
  std::vector<int> all = content_idx;
  if (!luminance) all.insert(all.end(), style_idx.begin(), style_idx.end());
  const auto gen_features = vgg.Forward(generated, all);
  const auto gen_style_features =
      luminance ? vgg.Forward(LuminanceImage(generated), style_idx) : gen_features;
  std::vector<torch::Tensor> gc, tc, gs;
  for (int l : content_idx) {
    gc.push_back(gen_features.at(l));
    tc.push_back(content_features.at(l));
  }
  for (int l : style_idx) gs.push_back(gen_style_features.at(l));
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
  out["style_image_size"] = setup.style_image_size;
  out["style_luminance_only"] = luminance;
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
