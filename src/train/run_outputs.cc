#include "train/run_outputs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/log.h"
#include "common/writable_file.h"
#include "data/image.h"
#include "data/image_tensor.h"
#include "model/stylize.h"

namespace stylefleet {
namespace fs = std::filesystem;
namespace {

// Validation photos when data.validation_images is empty: what previews always showed.
constexpr size_t kDefaultValidationPhotos = 4;

// Final images whose longer side is at most this many times image_size run in
// one pass; longer ones in tiles of twice image_size (the same result), so
// that a panorama needs no more memory than a couple of training images.
constexpr int kFinalTileFactor = 2;

// `image` resized so that its shorter side is exactly `size`, the aspect kept.
RgbImage ResizeShorterSide(const RgbImage& image, int size) {
  const auto scaled = [size](int side, int shorter) {
    return static_cast<int>(std::max<int64_t>(1, std::llround(double(side) * size / shorter)));
  };
  if (image.width <= image.height) {
    return Resize(image, size, scaled(image.height, image.width));
  }
  return Resize(image, scaled(image.width, image.height), size);
}

// final/07-beach.png: two digits, a dash, any stem, .png.
bool IsFinalImageName(const std::string& name) {
  return name.size() > 7 && std::isdigit(static_cast<unsigned char>(name[0])) &&
         std::isdigit(static_cast<unsigned char>(name[1])) && name[2] == '-' &&
         name.compare(name.size() - 4, 4, ".png") == 0;
}

nlohmann::json RecordJson(const StepEvent& e, const StyleStepEvent& s,
                          const std::vector<std::string>& style_layers) {
  const LossValues& window = *s.window;
  nlohmann::json record;
  record["step"] = e.step;
  record["total_steps"] = e.total_steps;
  record["epoch"] = e.epoch;
  record["content_loss"] = window.content;
  record["style_loss"] = window.style;
  record["tv_loss"] = window.tv;
  record["total_loss"] = window.total;
  nlohmann::json layers;
  for (size_t i = 0; i < style_layers.size(); ++i) layers[style_layers[i]] = window.style_layers[i];
  record["style_loss_by_layer"] = layers;
  // What the losses are a mean over: the style's images since its previous
  // record (in the steps that updated the network). One step's values are
  // noise with small batches; they stay here and in the Prometheus gauges.
  record["images"] = window.images;
  if (s.step.images > 0) {
    record["step_losses"] = {{"content_loss", s.step.content},
                             {"style_loss", s.step.style},
                             {"tv_loss", s.step.tv},
                             {"total_loss", s.step.total},
                             {"images", s.step.images}};
  }
  record["images_per_second"] = e.window_images_per_second;
  record["eta_seconds"] = e.eta_seconds;
  record["skipped_images"] = e.skipped_images;
  record["ranks"] = e.ranks;
  record["time"] =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return record;
}

}  // namespace

RunOutputs::RunOutputs(std::string style_dir, std::string style_name,
                       std::vector<std::string> style_layers)
    : style_dir_(std::move(style_dir)),
      style_name_(std::move(style_name)),
      style_layers_(std::move(style_layers)) {}

namespace {
// Drops the records of `folder`/`file` past `step`, and a torn last line.
void TrimRecords(const std::string& folder, const char* file, int64_t step) {
  const fs::path path = fs::path(folder) / file;
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
  // Replaced whole (temporary file, then rename): a full disk must not leave
  // an emptied file behind.
  ReplaceFileDurably(path.string(), kept.str());
}
}  // namespace

void RunOutputs::TrimMetrics(int64_t step) const {
  for (const char* file : {"metrics.jsonl", "held_out.jsonl"}) TrimRecords(style_dir_, file, step);
}

void RunOutputs::AppendHeldOutLine(const std::string& line, int64_t step) {
  AppendRecordLine("held_out.jsonl", line, step, held_out_bytes_);
}

void RunOutputs::OnStep(const StepEvent& e) {
  const auto mine = std::find_if(e.styles.begin(), e.styles.end(), [&](const StyleStepEvent& s) {
    return s.style == style_name_ && s.window.has_value();
  });
  if (mine == e.styles.end()) return;
  AppendRecordLine("metrics.jsonl", RecordJson(e, *mine, style_layers_).dump() + "\n", e.step,
                   metrics_bytes_);

  const LossValues& window = *mine->window;
  std::ostringstream layer_text;
  for (size_t i = 0; i < style_layers_.size(); ++i) {
    layer_text << (i ? " " : "") << style_layers_[i] << "=" << std::setprecision(4)
               << window.style_layers[i];
  }
  std::ostringstream line;
  line << std::setprecision(4) << "[" << style_name_ << "] step " << e.step << "/" << e.total_steps
       << " | content " << window.content << " | style " << window.style << " (" << layer_text.str()
       << ") | tv " << window.tv << " | total " << window.total << " | " << std::setprecision(3)
       << e.window_images_per_second << " img/s | ETA " << FormatDuration(e.eta_seconds);
  SF_LOG(kInfo) << line.str();
}

// One write() per record with O_APPEND, so a record is never torn by a crash;
// a short write (full disk) is cut back off and reported. A file that shrank
// or vanished since the last record (deleted, truncated by hand) is noticed.
void RunOutputs::AppendRecordLine(const char* file, const std::string& line, int64_t step,
                                  int64_t& bytes) {
  const std::string path = (fs::path(style_dir_) / file).string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path + ": cannot open for appending (" + std::strerror(errno) + ")");
  struct stat info {};
  ::fstat(fd, &info);
  const int64_t before = info.st_size;
  if (bytes >= 0 && before < bytes) {
    SF_LOG(kWarning) << "[" << style_name_ << "] " << path << " was deleted or truncated during "
                     << "the run (" << before << " bytes, " << bytes
                     << " expected); records before step " << step << " are missing from it";
  }
  const ssize_t written = ::write(fd, line.data(), line.size());
  const int error = errno;
  if (written != static_cast<ssize_t>(line.size())) {
    if (written > 0 && ::ftruncate(fd, before) != 0) {
      SF_LOG(kError) << path << ": could not remove a partial record";
    }
    ::close(fd);
    throw Error(path + ": cannot append the record of step " + std::to_string(step) + " (" +
                (written < 0 ? std::strerror(error) : "short write: the disk may be full") +
                "); training stops so that no step goes unrecorded");
  }
  ::close(fd);
  bytes = before + static_cast<int64_t>(line.size());
}

void RunOutputs::PrepareValidation(const DataOptions& data,
                                   const std::vector<std::string>& content_files,
                                   const torch::Device& device) {
  validation_photos_.clear();
  preview_inputs_ = torch::Tensor();
  image_size_ = data.image_size;
  max_image_pixels_ = data.max_image_pixels;
  device_ = device;
  const bool configured = !data.validation_images.empty();
  const std::vector<std::string>& candidates = configured ? data.validation_images : content_files;
  const size_t wanted = configured ? candidates.size() : kDefaultValidationPhotos;
  DecodeOptions decode;
  decode.max_pixels = data.max_image_pixels;
  std::vector<torch::Tensor> images;
  for (size_t i = 0; i < candidates.size() && images.size() < wanted; ++i) {
    try {
      images.push_back(
          ImageToTensor(ResizeCenterCrop(LoadImageFile(candidates[i], decode), image_size_)));
      validation_photos_.push_back(candidates[i]);
    } catch (const DataError& e) {
      if (configured) {
        SF_LOG(kWarning) << "[" << style_name_ << "] validation photo left out: " << e.what();
      }
    }
  }
  if (!images.empty()) preview_inputs_ = torch::cat(images).to(device);
}

torch::Tensor RunOutputs::PreviewGrid(const std::vector<TransformerNet*>& nets) const {
  if (!preview_inputs_.defined()) return {};
  std::vector<torch::Tensor> rows = {torch::cat(preview_inputs_.unbind(0), 2)};
  torch::NoGradGuard no_grad;
  for (TransformerNet* net : nets) {
    const torch::Tensor output = (*net)->forward(preview_inputs_).clamp(0, 255);
    rows.push_back(torch::cat(output.unbind(0), 2));
  }
  return torch::cat(rows, 1);
}

void RunOutputs::WritePreviewGrid(const torch::Tensor& grid, int64_t step) const {
  if (!grid.defined()) return;
  char name[40];
  std::snprintf(name, sizeof(name), "step-%08lld.png", static_cast<long long>(step));
  const fs::path dir = fs::path(style_dir_) / "previews";
  // Previews are for people: a full disk or a read-only folder costs a
  // warning, not the run (checkpoints and metrics.jsonl do stop it).
  try {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw DataError(dir.string() + ": cannot create folder (" + ec.message() + ")");
    SaveImageFile(TensorToImage(grid), (dir / name).string());
  } catch (const DataError& e) {
    SF_LOG(kWarning) << "[" << style_name_ << "] preview of step " << step
                     << " not written: " << e.what();
  }
}

// Below this spread (standard deviation of a channel on 0..255) an image is
// "nearly uniform": a photo's is tens; 4 levels is a faint texture at most.
constexpr double kFlatSpread = 4.0;

namespace {

// A validation photo as its final image stylizes it: the shorter side resized
// to `image_size`. Throws DataError when it does not decode or would then
// exceed `max_pixels`.
RgbImage FinalImageInput(const std::string& photo, int image_size, int64_t max_pixels) {
  DecodeOptions decode;
  decode.max_pixels = max_pixels;
  const RgbImage input = LoadImageFile(photo, decode);
  const int shorter = std::min(input.width, input.height);
  const double scale = double(image_size) / shorter;
  if (double(input.width) * scale * double(input.height) * scale > double(max_pixels)) {
    throw DataError(photo + ": resized to a shorter side of " + std::to_string(image_size) +
                    " px it would exceed data.max_image_pixels");
  }
  return ResizeShorterSide(input, image_size);
}

}  // namespace

void RunOutputs::WriteFinalImages(TransformerNet& net) const {
  const fs::path dir = fs::path(style_dir_) / "final";
  std::set<std::string> written;
  // The largest spread (standard deviation of a channel, 0..255) of the
  // photos and of their stylizations: a model that learned little writes
  // near-uniform images of photos that are not (issue 32: an old seed file's
  // 16 steps at learning rate 0.001 wrote dark squares, exit 0, no word).
  double photo_spread = 0, styled_spread = 0;
  const auto spread = [](const torch::Tensor& image) {
    return image.clamp(0, 255).reshape({3, -1}).std(1).max().item<double>();
  };
  // Final images are for people, as previews are: a photo that cannot be
  // stylized or written costs a warning, never the trained run.
  for (size_t i = 0; i < validation_photos_.size(); ++i) {
    const std::string& photo = validation_photos_[i];
    char prefix[8];
    std::snprintf(prefix, sizeof(prefix), "%02d-", static_cast<int>(i + 1));
    const std::string name = prefix + fs::path(photo).stem().string() + ".png";
    try {
      const torch::Tensor image =
          ImageToTensor(FinalImageInput(photo, image_size_, max_image_pixels_)).to(device_);
      const torch::Tensor styled =
          StylizeTensor(net, image, int64_t{kFinalTileFactor} * image_size_);
      std::error_code ec;
      fs::create_directories(dir, ec);
      if (ec) throw DataError(dir.string() + ": cannot create folder (" + ec.message() + ")");
      SaveImageFile(TensorToImage(styled), (dir / name).string());
      written.insert(name);
      photo_spread = std::max(photo_spread, spread(image));
      styled_spread = std::max(styled_spread, spread(styled));
    } catch (const std::exception& e) {
      // DataError from decoding or writing, c10::Error from LibTorch (out of
      // memory on a large photo).
      const std::string what = e.what();
      SF_LOG(kWarning) << "[" << style_name_ << "] final image " << name
                       << " not written: " << what.substr(0, what.find('\n'));
    }
  }
  if (!written.empty() && photo_spread >= kFlatSpread * 4 && styled_spread < kFlatSpread) {
    char spreads[96];
    std::snprintf(spreads, sizeof(spreads), "spread %.2g of 255, against %.0f in the photos",
                  styled_spread, photo_spread);
    SF_LOG(kWarning) << "[" << style_name_
                     << "] the model's output is still nearly uniform over the validation photos ("
                     << spreads
                     << "): it has learned little. Train longer (training.max_steps or epochs), "
                        "raise training.learning_rate (0.001, as in the seed's files, is slow for "
                        "a short run), or check the loss weights and the loss network "
                        "(`stylefleet losses`)";
  }
  // Final images of photos no longer in the set would pass as this model's.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    if (IsFinalImageName(file) && !written.count(file) && entry.is_regular_file(ec)) {
      fs::remove(entry.path(), ec);
    }
  }
}

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--:--";
  const auto total = static_cast<long long>(seconds + 0.5);
  char text[32];
  std::snprintf(text, sizeof(text), "%02lld:%02lld:%02lld", total / 3600, (total / 60) % 60,
                total % 60);
  return text;
}

void ProgressLine::OnStep(const StepEvent& e) {
  std::printf("\r[%s] step %lld/%lld  loss %.4g  %.2f img/s  ETA %s   ", e.run.c_str(),
              static_cast<long long>(e.step), static_cast<long long>(e.total_steps), e.total_loss,
              double(e.images) / std::max(e.step_seconds, 1e-9),
              FormatDuration(e.eta_seconds).c_str());
  if (e.record) std::printf("\n");
  std::fflush(stdout);
}

}  // namespace stylefleet
