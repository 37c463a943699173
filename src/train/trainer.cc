// The training loop: every style of a job, one after another, in this process.
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "common/vgg_layers.h"
#include "data/batch_loader.h"
#include "data/dataset.h"
#include "data/image.h"
#include "loss/losses.h"
#include "model/vgg16.h"
#include "train/checkpoints.h"
#include "train/commands.h"
#include "train/model_state.h"

namespace stylefleet {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kPreviewImages = 4;

std::vector<int> LayerIndices(const std::vector<std::string>& names) {
  std::vector<int> out;
  for (const auto& name : names) {
    const auto index = VggLayerIndex(name);
    SF_CHECK(index.has_value(), "unvalidated layer " + name);
    out.push_back(*index);
  }
  return out;
}

torch::Tensor ImageTensor(const RgbImage& image) {
  torch::Tensor t = torch::empty({1, 3, image.height, image.width}, torch::kFloat32);
  ToPlanarFloat(image, t.data_ptr<float>());
  return t;
}

RgbImage TensorImage(const torch::Tensor& chw) {
  const torch::Tensor t = chw.detach().to(torch::kFloat32).contiguous();
  return FromPlanarFloat(t.data_ptr<float>(), static_cast<int>(t.size(2)),
                         static_cast<int>(t.size(1)));
}

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--:--";
  const auto total = static_cast<long long>(seconds + 0.5);
  char text[32];
  std::snprintf(text, sizeof(text), "%02lld:%02lld:%02lld", total / 3600, (total / 60) % 60,
                total % 60);
  return text;
}

uint64_t NameHash(const std::string& name) {
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : name) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

// The seed's losses for one batch given precomputed style grams.
struct StepLosses {
  LossTerms terms;
  torch::Tensor generated;
};

class StyleTrainer {
 public:
  StyleTrainer(const JobConfig& job, const StyleSpec& style, const Vgg16& vgg,
               const std::vector<std::string>& files, const TrainRunOptions& options)
      : job_(job), style_(style), vgg_(vgg), files_(files), options_(options),
        content_layers_(LayerIndices(job.loss_network.content_layers)),
        style_layers_(LayerIndices(job.loss_network.style_layers)) {
    all_layers_ = content_layers_;
    all_layers_.insert(all_layers_.end(), style_layers_.begin(), style_layers_.end());
    weights_ = {style.training.content_weight, style.training.style_weight, style.training.tv_weight};
  }

  void Run() {
    const auto& t = style_.training;
    ClaimOutputDir(style_.output_dir, job_.name, style_.name);
    ComputeStyleGrams();

    // Same initial weights for the same job seed and style name, wherever it runs.
    torch::manual_seed(job_.seed ^ NameHash(style_.name));
    net_ = TransformerNet();
    net_->train();
    adam_ = std::make_unique<Adam>(net_->parameters(), t.learning_rate);

    LoaderOptions loader_options;
    loader_options.image_size = job_.data.image_size;
    loader_options.batch_size = t.batch_size;
    loader_options.threads = job_.data.loader_threads;
    loader_options.prefetch_batches = job_.data.prefetch_batches;
    loader_options.max_image_pixels = job_.data.max_image_pixels;
    loader_options.seed = job_.seed;

    RunPosition position = Resume();
    const int64_t per_epoch = static_cast<int64_t>(files_.size()) / t.batch_size;
    total_steps_ = t.epochs > 0 ? t.epochs * per_epoch : INT64_MAX;
    if (t.max_steps > 0) total_steps_ = std::min(total_steps_, t.max_steps);
    if (position.step >= total_steps_) {
      SF_LOG(kInfo) << "[" << style_.name << "] already trained (" << position.step
                    << " steps); writing the final model";
      WriteModel();
      return;
    }
    SF_LOG(kInfo) << "[" << style_.name << "] training steps " << position.step + 1 << ".."
                  << total_steps_ << " (" << per_epoch << " per epoch, batch " << t.batch_size
                  << ", " << job_.data.image_size << " px) into " << style_.output_dir;
    BatchLoader loader(files_, loader_options, LoaderPosition{position.epoch, position.batch});
    TrimMetrics(position.step);
    PreparePreviews();

    const bool tty = options_.progress && isatty(STDOUT_FILENO);
    double step_seconds_avg = 0;
    const auto run_start = Clock::now();
    int64_t steps_this_run = 0;
    double window_seconds = 0;
    int64_t window_images = 0;
    while (position.step < total_steps_) {
      const auto step_start = Clock::now();
      Batch batch = loader.Next();
      const torch::Tensor content =
          torch::from_blob(batch.pixels.data(), {batch.count, 3, batch.size, batch.size},
                           torch::kFloat32);
      const LossTerms terms = TrainStep(content);
      ++position.step;
      ++steps_this_run;
      position.epoch = batch.epoch;
      position.batch = batch.batch_in_epoch + 1;
      if (position.batch == loader.batches_per_epoch()) {
        position.batch = 0;
        ++position.epoch;
      }
      const double seconds = std::chrono::duration<double>(Clock::now() - step_start).count();
      step_seconds_avg = steps_this_run == 1 ? seconds : 0.9 * step_seconds_avg + 0.1 * seconds;
      window_seconds += seconds;
      window_images += batch.count;
      const double eta = step_seconds_avg * double(total_steps_ - position.step);

      if (tty) {
        std::printf("\r[%s] step %lld/%lld  loss %.4g  %.2f img/s  ETA %s   ", style_.name.c_str(),
                    static_cast<long long>(position.step), static_cast<long long>(total_steps_),
                    terms.total.item<double>(), batch.count / std::max(seconds, 1e-9),
                    FormatDuration(eta).c_str());
        std::fflush(stdout);
      }
      const bool last = position.step == total_steps_;
      if (position.step % t.log_every_steps == 0 || last) {
        if (tty) std::printf("\n");
        Log(position, terms, window_images / std::max(window_seconds, 1e-9), eta,
            loader.skipped_files());
        window_seconds = 0;
        window_images = 0;
      }
      if (t.preview_every_steps > 0 && (position.step % t.preview_every_steps == 0 || last)) {
        WritePreview(position.step);
      }
      if (position.step % job_.checkpoint.every_steps == 0 || last) {
        WriteCheckpoint(position);
      }
    }
    WriteModel();
    SF_LOG(kInfo) << "[" << style_.name << "] done: " << steps_this_run << " steps in "
                  << FormatDuration(std::chrono::duration<double>(Clock::now() - run_start).count())
                  << "; model " << (fs::path(style_.output_dir) / "model.pt").string();
  }

 private:
  void ComputeStyleGrams() {
    DecodeOptions decode;
    decode.max_pixels = job_.data.max_image_pixels;
    RgbImage image;
    try {
      image = ResizeCenterCrop(LoadImageFile(style_.image, decode), job_.data.image_size);
    } catch (const DataError& e) {
      throw DataError("style '" + style_.name + "': bad style image: " + e.what());
    }
    torch::NoGradGuard no_grad;
    const auto features = vgg_.Forward(ImageTensor(image), style_layers_);
    style_grams_.clear();
    for (int layer : style_layers_) style_grams_.push_back(Gram(features.at(layer)));
  }

  LossTerms TrainStep(const torch::Tensor& content) {
    std::map<int, torch::Tensor> content_features;
    {
      // The content batch only needs the content layers, and no gradients.
      torch::NoGradGuard no_grad;
      content_features = vgg_.Forward(content, content_layers_);
    }
    adam_->ZeroGrad();
    const torch::Tensor generated = net_->forward(content);
    const auto generated_features = vgg_.Forward(generated, all_layers_);
    std::vector<torch::Tensor> gen_content, target_content, gen_style;
    for (int layer : content_layers_) {
      gen_content.push_back(generated_features.at(layer));
      target_content.push_back(content_features.at(layer));
    }
    for (int layer : style_layers_) gen_style.push_back(generated_features.at(layer));
    LossTerms terms =
        ComputeLosses(gen_content, target_content, gen_style, style_grams_, generated, weights_);
    if (!std::isfinite(terms.total.item<double>())) {
      throw Error("style '" + style_.name + "': loss became " +
                  std::to_string(terms.total.item<double>()) +
                  "; lower training.learning_rate or the loss weights");
    }
    terms.total.backward();
    adam_->Step();
    return terms;
  }

  RunPosition Resume() {
    for (const auto& path : ListCheckpoints(style_.output_dir)) {
      try {
        const TensorDict dict = LoadTensorDict(path);
        const RunPosition position = RestoreCheckpoint(dict, path, net_, *adam_);
        SF_LOG(kInfo) << "[" << style_.name << "] resuming from " << path << " (step "
                      << position.step << ")";
        return position;
      } catch (const DataError& e) {
        SF_LOG(kWarning) << "[" << style_.name << "] ignoring unreadable checkpoint: " << e.what();
      }
    }
    return RunPosition{};
  }

  // Drops records past `step` (written after the checkpoint a resume starts from).
  void TrimMetrics(int64_t step) {
    const fs::path path = fs::path(style_.output_dir) / "metrics.jsonl";
    std::error_code ec;
    if (!fs::exists(path, ec)) return;
    std::ifstream in(path);
    std::stringstream kept;
    for (std::string line; std::getline(in, line);) {
      try {
        if (nlohmann::json::parse(line).value("step", int64_t{0}) <= step) kept << line << "\n";
      } catch (const std::exception&) {
        // A torn last line from a crash: drop it.
      }
    }
    in.close();
    std::ofstream out(path, std::ios::trunc);
    out << kept.str();
  }

  void Log(const RunPosition& position, const LossTerms& terms, double images_per_second,
           double eta_seconds, int64_t skipped) {
    nlohmann::json record;
    record["step"] = position.step;
    record["total_steps"] = total_steps_;
    record["epoch"] = position.epoch;
    record["content_loss"] = terms.content.item<double>();
    record["style_loss"] = terms.style.item<double>();
    record["tv_loss"] = terms.tv.item<double>();
    record["total_loss"] = terms.total.item<double>();
    nlohmann::json layers;
    std::ostringstream layer_text;
    for (size_t i = 0; i < style_layers_.size(); ++i) {
      const double v = terms.style_layers[i].item<double>();
      layers[job_.loss_network.style_layers[i]] = v;
      layer_text << (i ? " " : "") << job_.loss_network.style_layers[i] << "=" << std::setprecision(4) << v;
    }
    record["style_loss_by_layer"] = layers;
    record["images_per_second"] = images_per_second;
    record["eta_seconds"] = eta_seconds;
    record["skipped_images"] = skipped;
    record["time"] = std::chrono::duration<double>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    std::ofstream out(fs::path(style_.output_dir) / "metrics.jsonl", std::ios::app);
    out << record.dump() << "\n";

    std::ostringstream line;
    line << std::setprecision(4) << "[" << style_.name << "] step " << position.step << "/"
         << total_steps_ << " | content " << terms.content.item<double>() << " | style "
         << terms.style.item<double>() << " (" << layer_text.str() << ") | tv "
         << terms.tv.item<double>() << " | total " << terms.total.item<double>() << " | "
         << std::setprecision(3) << images_per_second << " img/s | ETA "
         << FormatDuration(eta_seconds);
    SF_LOG(kInfo) << line.str();
  }

  void PreparePreviews() {
    preview_inputs_ = torch::Tensor();
    std::vector<torch::Tensor> images;
    for (size_t i = 0; i < files_.size() && images.size() < kPreviewImages; ++i) {
      try {
        images.push_back(ImageTensor(ResizeCenterCrop(LoadImageFile(files_[i]), job_.data.image_size)));
      } catch (const DataError&) {
        // Broken files are reported by the loader.
      }
    }
    if (!images.empty()) preview_inputs_ = torch::cat(images);
  }

  // A grid: the content images on top, the current model's output below.
  void WritePreview(int64_t step) {
    if (!preview_inputs_.defined()) return;
    torch::Tensor output;
    {
      torch::NoGradGuard no_grad;
      output = net_->forward(preview_inputs_).clamp(0, 255);
    }
    const torch::Tensor top = torch::cat(preview_inputs_.unbind(0), 2);
    const torch::Tensor bottom = torch::cat(output.unbind(0), 2);
    const torch::Tensor grid = torch::cat({top, bottom}, 1);
    char name[40];
    std::snprintf(name, sizeof(name), "step-%08lld.png", static_cast<long long>(step));
    const fs::path dir = fs::path(style_.output_dir) / "previews";
    fs::create_directories(dir);
    SaveImageFile(TensorImage(grid), (dir / name).string());
  }

  ModelInfo Info() const { return ModelInfo{job_.name, style_.name, job_.data.image_size}; }

  void WriteCheckpoint(const RunPosition& position) {
    const std::string path = CheckpointPath(style_.output_dir, position.step);
    SaveTensorDict(CheckpointDict(net_, *adam_, position, Info()), path);
    PruneCheckpoints(style_.output_dir, job_.checkpoint.keep);
    SF_LOG(kDebug) << "[" << style_.name << "] checkpoint " << path;
  }

  void WriteModel() {
    SaveTensorDict(ModelDict(net_, Info()), (fs::path(style_.output_dir) / "model.pt").string());
  }

  const JobConfig& job_;
  const StyleSpec& style_;
  const Vgg16& vgg_;
  const std::vector<std::string>& files_;
  const TrainRunOptions& options_;
  std::vector<int> content_layers_, style_layers_, all_layers_;
  LossWeights weights_;
  std::vector<torch::Tensor> style_grams_;
  TransformerNet net_{nullptr};
  std::unique_ptr<Adam> adam_;
  torch::Tensor preview_inputs_;
  int64_t total_steps_ = 0;
};

}  // namespace

void TrainJob(const JobConfig& job, const TrainRunOptions& options) {
  // LibTorch's OpenMP default can be 1 thread here even with 2 cores; be explicit.
  const int threads = options.threads > 0 ? options.threads
                                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  std::vector<const StyleSpec*> styles;
  for (const auto& style : job.styles) {
    if (options.only_styles.empty() ||
        std::find(options.only_styles.begin(), options.only_styles.end(), style.name) !=
            options.only_styles.end()) {
      styles.push_back(&style);
    }
  }
  for (const auto& name : options.only_styles) {
    if (std::none_of(job.styles.begin(), job.styles.end(),
                     [&](const StyleSpec& s) { return s.name == name; })) {
      throw ConfigError({"--style " + name + ": the job has no such style"});
    }
  }
  // Problems that would stop a style later are found before any training starts.
  const Vgg16 vgg = Vgg16::Load(job.loss_network.weights);
  if (vgg.is_random()) {
    SF_LOG(kWarning) << "loss network is random (" << job.loss_network.weights
                     << "): the machinery trains, but results are not artistic without real "
                        "VGG-16 weights (launch/convert_vgg16.py)";
  }
  for (const StyleSpec* style : styles) {
    try {
      LoadImageFile(style->image, DecodeOptions{job.data.max_image_pixels, 0});
    } catch (const DataError& e) {
      throw DataError("style '" + style->name + "': bad style image: " + e.what());
    }
  }
  const std::vector<std::string> files = ListImageFiles(job.data.content_dir);
  SF_LOG(kInfo) << "job " << job.name << ": " << styles.size() << " style(s), " << files.size()
                << " content images, " << torch::get_num_threads() << " threads";
  for (size_t i = 0; i < styles.size(); ++i) {
    SF_LOG(kInfo) << "style " << i + 1 << "/" << styles.size() << ": " << styles[i]->name;
    StyleTrainer(job, *styles[i], vgg, files, options).Run();
  }
}

}  // namespace stylefleet
