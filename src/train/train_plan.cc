#include "train/train_plan.h"

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <set>

#include "common/error.h"
#include "common/image_names.h"
#include "common/log.h"
#include "common/utf8.h"
#include "data/dataset.h"
#include "train/preflight.h"
#include "train/rank_agreement.h"

namespace stylefleet {
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxHeldOutStyles = 64;

// job.held_out_styles as images: each file, or a folder's image files in
// order, named after the file. Adds to `problems` what cannot be a held-out
// style; whether each file decodes is DecodeStyleImages' to say.
std::vector<HeldOutStyle> ListHeldOutStyles(const JobConfig& job,
                                            std::vector<std::string>& problems) {
  const std::string key = "job.held_out_styles: ";
  std::vector<HeldOutStyle> out;
  for (const std::string& path : job.held_out_styles) {
    std::error_code ec;
    std::vector<fs::path> images = {fs::path(path)};
    if (fs::is_directory(path, ec)) {
      images = ImageFilesIn(path, ec);
      if (ec) {
        problems.push_back(key + path + ": cannot list the folder (" + ec.message() + ")");
        continue;
      }
      if (images.empty()) {
        problems.push_back(key + path + ": holds no " + kImageExtensionList +
                           " files (sub-folders are not read)");
        continue;
      }
    }
    for (const fs::path& image : images) {
      out.push_back({image.stem().string(), image.lexically_normal().string()});
    }
  }
  if (out.size() > kMaxHeldOutStyles) {
    problems.push_back(key + std::to_string(out.size()) + " images; at most " +
                       std::to_string(kMaxHeldOutStyles));
    return {};
  }
  std::set<std::string> names;
  for (const HeldOutStyle& held : out) {
    // The name keys its numbers in held_out.jsonl: JSON text.
    if (!IsUtf8(held.name) || std::any_of(held.name.begin(), held.name.end(), [](char c) {
          return static_cast<unsigned char>(c) < 0x20;
        })) {
      problems.push_back(key + EscapeForMessage(held.image) +
                         ": its file name must be UTF-8 text without control characters (it "
                         "names the image's numbers); rename the file");
    } else if (!names.insert(held.name).second) {
      problems.push_back(key + "two images are named '" + held.name + "' (" + held.image +
                         " and another); rename one");
    }
  }
  return out;
}

}  // namespace

std::string TrainPlan::ContentList() const {
  return DescribeContentList(content_files.size(), content_list_hash);
}

JobInputs TrainPlan::Inputs() const {
  JobInputs inputs =
      ReadJobInputs(job, content_files.size(), content_list_hash, style_image_hashes);
  // Only the root measures the held-out styles, but a rank that lists or
  // reads others is running another job: compared like the styles' images.
  for (const HeldOutStyle& held : held_out) {
    const auto decoded = style_image_hashes.find(held.image);
    inputs.file_hashes.emplace_back(
        "the held-out style image " + held.image + " (size and bytes, hashed)",
        decoded != style_image_hashes.end() ? decoded->second : "not decoded");
  }
  return inputs;
}

const RgbImage& TrainPlan::StyleImageOf(const StyleSpec& style) const {
  const auto found = style_images.find({style.image, style.training.style_image_size});
  SF_CHECK(found != style_images.end(),
           "style '" + style.name + "': its image " + style.image + " was not decoded");
  return found->second;
}

void TrainPlan::KeepStyleImagesOfRank(int rank) {
  std::set<std::pair<std::string, int>> kept;
  const auto keep = [&](const StyleSpec& style) {
    kept.insert({style.image, style.training.style_image_size});
  };
  if (OneNetworkForAllStyles(job)) {
    for (const StyleSpec& style : job.styles) keep(style);
    for (const HeldOutStyle& held : held_out) {
      kept.insert({held.image, job.styles.front().training.style_image_size});
    }
  } else {
    for (int run : schedule.styles_of_group[static_cast<size_t>(schedule.GroupOf(rank))]) {
      keep(*runs[static_cast<size_t>(run)]);
    }
  }
  for (auto it = style_images.begin(); it != style_images.end();) {
    it = kept.count(it->first) > 0 ? std::next(it) : style_images.erase(it);
  }
}

std::unique_ptr<TrainPlan> PlanTraining(const JobConfig& job,
                                        const std::vector<std::string>& only_styles, World& world) {
  auto plan = std::make_unique<TrainPlan>();
  plan->job = job;
  plan->only_styles = only_styles;
  plan->runs = SelectRuns(plan->job, only_styles);
  plan->content_files = ListImageFiles(plan->job.data.content_dir);
  plan->content_list_hash = ContentListHash(plan->job.data.content_dir, plan->content_files);
  const std::vector<std::string> bad_images = DecodeStyleImages(plan.get());
  // Every rank must run the same job on the same data (the style images as
  // decoded): compared before a rank's own failure can leave the others waiting.
  CheckRanksAgreeOnJob(world.all(), plan->job, only_styles, plan->Inputs());
  if (!bad_images.empty()) throw DataError(bad_images.front());
  plan->schedule =
      PlanStyles(static_cast<int>(plan->runs.size()), world.info().size, RanksPerRun(plan->job));
  plan->KeepStyleImagesOfRank(world.info().rank);
  return plan;
}

std::vector<std::string> DecodeStyleImages(TrainPlan* plan) {
  const JobConfig& job = plan->job;
  const bool conditional = OneNetworkForAllStyles(job);
  const auto trains = [&](const StyleSpec& style) {
    return conditional ||
           std::find(plan->runs.begin(), plan->runs.end(), &style) != plan->runs.end();
  };
  // The sides each image is cropped to, by file, in job order.
  std::vector<std::pair<std::string, std::vector<int>>> files;
  for (const StyleSpec& style : job.styles) {
    if (!trains(style)) continue;
    auto file = std::find_if(files.begin(), files.end(),
                             [&](const auto& f) { return f.first == style.image; });
    if (file == files.end()) file = files.insert(files.end(), {style.image, {}});
    file->second.push_back(style.training.style_image_size);
  }
  std::vector<std::string> held_out_problems;
  plan->held_out = ListHeldOutStyles(job, held_out_problems);
  for (const HeldOutStyle& held : plan->held_out) {
    // An arbitrary network's styles share one style_image_size.
    files.push_back({held.image, {job.styles.front().training.style_image_size}});
  }
  std::map<std::string, std::string> why;  // per file: why it does not decode
  for (const auto& [path, sides] : files) {
    try {
      const DecodeOptions decode{job.data.max_image_pixels, 0};
      const std::vector<uint8_t> bytes = ReadImageFile(path, decode);
      const RgbImage image = DecodeImage(bytes, path, decode);
      if (job.network == kArbitraryNetworkName &&
          std::min(image.width, image.height) < kMinArbitraryStyleImageSide) {
        throw DataError(path + ": " + std::to_string(image.width) + "x" +
                        std::to_string(image.height) + " pixels; an arbitrary-style network's " +
                        "style images need at least " +
                        std::to_string(kMinArbitraryStyleImageSide) +
                        " on each side (the predictor reads statistics of the image enlarged "
                        "to training.style_image_size)");
      }
      plan->style_image_hashes[path] = BytesContentHash(bytes);
      SF_LOG(kDebug) << "decoded style image " << path;
      for (int side : sides) {
        if (plan->style_images.count({path, side}) == 0) {
          plan->style_images.emplace(std::make_pair(path, side), ResizeCenterCrop(image, side));
        }
      }
    } catch (const DataError& e) {
      why[path] = e.what();
    }
  }
  std::vector<std::string> problems;
  for (const StyleSpec& style : job.styles) {
    const auto bad = why.find(style.image);
    if (bad == why.end() || !trains(style)) continue;
    problems.push_back(style.origin + ": style '" + style.name +
                       "': bad style image: " + bad->second);
  }
  for (const HeldOutStyle& held : plan->held_out) {
    const auto bad = why.find(held.image);
    if (bad != why.end()) {
      problems.push_back("job.held_out_styles: '" + held.name +
                         "': bad style image: " + bad->second);
      continue;
    }
    // By content: a copy, a link or another spelling of a training image is
    // one the network trains on.
    for (const StyleSpec& style : job.styles) {
      const auto hash = plan->style_image_hashes.find(style.image);
      if (hash != plan->style_image_hashes.end() &&
          hash->second == plan->style_image_hashes.at(held.image)) {
        problems.push_back("job.held_out_styles: " + held.image +
                           " holds the same bytes as the image of training style '" + style.name +
                           "' (" + style.image +
                           "); a held-out style is one the network never trains on");
        break;
      }
    }
  }
  problems.insert(problems.end(), held_out_problems.begin(), held_out_problems.end());
  return problems;
}

}  // namespace stylefleet
