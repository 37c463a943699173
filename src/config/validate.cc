#include "config/validate.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/fnv1a.h"
#include "common/utf8.h"
#include "common/vgg_layers.h"
#include "config/job_schema.h"
#include "config/paths.h"

namespace stylefleet::job_loader {
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Cross-field rules and file checks, in one place.

namespace {

// Whether `name` can be written in a blend (`NAME=W,NAME=W`, names trimmed of
// spaces) and in the model file's newline-separated list of names.
bool BlendableStyleName(const std::string& name) {
  if (!name.empty() && (name.front() == ' ' || name.back() == ' ')) return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return c == ',' || c == '=' || byte < 0x20 || byte == 0x7f;
  });
}

// The styles of one conditional network train with one optimizer on one
// batch: only their loss weights and style image size may differ.
void ValidateConditional(const JobConfig& job, const LoadOptions& options, Problems& problems) {
  const std::string where = problems.file() + ": ";
  if (!OneNetworkForAllStyles(job) && !job.base_model.empty()) {
    problems.Add(where + "job.base_model is set but job.network is " + job.network +
                 " (a base model starts a conditional or arbitrary-style network)");
  }
  if (job.distill_steps != 0 && (job.network != "arbitrary" || job.base_model.empty())) {
    problems.Add(where +
                 "job.distill_steps fits an arbitrary-style network's predictor to the rows of "
                 "its job.base_model; this job " +
                 (job.network != "arbitrary" ? "trains network " + job.network
                                             : std::string("names no base_model")));
  }
  if (job.network != "arbitrary" &&
      (job.predictor_embedding_size != JobConfig{}.predictor_embedding_size ||
       job.predictor_layers != job.loss_network.style_layers)) {
    problems.Add(where +
                 "job.predictor_embedding_size and job.predictor_layers shape the style "
                 "predictor of job.network arbitrary; this job's network is " +
                 job.network);
  }
  if (job.network != "arbitrary" && !job.held_out_styles.empty()) {
    problems.Add(where +
                 "job.held_out_styles measures the style predictor of job.network arbitrary; "
                 "this job's network is " +
                 job.network);
  }
  if (job.network == "arbitrary" && job.styles.size() == 1) {
    problems.Add(job.styles.front().origin +
                 ": job.network is arbitrary but the job lists one style; an arbitrary-style "
                 "network learns from a set of style images: list at least 2");
  }
  if (!OneNetworkForAllStyles(job)) return;
  if (options.check_files && !job.base_model.empty()) {
    std::error_code ec;
    if (!fs::exists(job.base_model, ec)) {
      problems.Add(where + "job.base_model: '" + job.base_model + "' does not exist");
    }
  }
  const std::string network_dir = ConditionalNetworkDir(job);
  // An arbitrary-style network learns one mapping for every style image:
  // its styles share every training key, the loss weights included.
  const bool arbitrary = job.network == "arbitrary";
  const std::string kind = arbitrary ? "an arbitrary-style network" : "a conditional network";
  const std::set<std::string> may_differ =
      arbitrary ? std::set<std::string>{}
                : std::set<std::string>{"content_weight", "style_weight", "tv_weight",
                                        "style_image_size"};
  for (const StyleSpec& style : job.styles) {
    if (!style.sweep.empty()) {
      problems.Add(style.origin + ": style '" + style.sweep + "' is swept, which " + kind +
                   " (job.network) cannot do: its styles share one training; list the variants "
                   "as styles instead");
      return;
    }
    if (!BlendableStyleName(style.name)) {
      problems.Add(style.origin + ": style '" + style.name + "': " + kind +
                   "'s style names must not contain ',', '=' or "
                   "control characters (such as a newline) nor begin or end with a space: "
                   "--blend NAME=W,NAME=W and the model file's newline-separated list of names "
                   "could not tell them apart; rename the style");
    }
    if (style.output_dir == network_dir) {
      problems.Add(style.origin + ": style '" + style.name + "' writes to '" + network_dir +
                   "', the " + (arbitrary ? "arbitrary-style" : "conditional") +
                   " network's own folder; rename the style or set its output_dir");
    }
    for (const auto& field : TrainingFields()) {
      const std::string mine = field.show(style.training);
      const std::string first = field.show(job.styles.front().training);
      if (may_differ.count(field.key) || mine == first) continue;
      problems.Add(style.origin + ": style '" + style.name + "': training." + field.key + " is " +
                   mine + " but " + first + " for style '" + job.styles.front().name +
                   (arbitrary ? "'; the styles of an arbitrary-style network are one training "
                                "set, so none of their training keys may differ (set it in "
                                "the job's training section)"
                              : "'; the styles of a conditional network share one optimizer "
                                "and one batch, so only content_weight, style_weight, "
                                "tv_weight and style_image_size may differ"));
    }
  }
}

// Names and paths are recorded in JSON files (owner, settings, metrics), which
// hold UTF-8 only: a folder name in Latin-1 would fail the first write, after
// training had started. Names that come from a file name (the job file's, a
// style image's) are checked here; names written in the job at their key.
void ValidateRecordedText(const JobConfig& job, const Origins& origins, Problems& problems) {
  const std::string not_utf8 =
      "is not UTF-8 text; stylefleet records names and paths in JSON files, which hold UTF-8 "
      "only: rename it";
  // `where`: "file:line:column: " of the value, or of its style.
  auto check_path = [&](const std::string& where, const std::string& what,
                        const std::string& path) {
    if (!IsUtf8(path)) problems.Add(where + what + " '" + EscapeForMessage(path) + "' " + not_utf8);
  };
  if (!job.name.empty() && !ValidFolderName(job.name)) {
    problems.Add(problems.file() + ": job name '" + EscapeForMessage(job.name) + "' (from the " +
                 "file name; set job.name) " + kFolderNameRule);
  }
  check_path(ContentDirWhere(origins, problems), "data.content_dir:", job.data.content_dir);
  check_path(problems.Where(origins.weights), "loss_network.weights:", job.loss_network.weights);
  check_path(problems.Where(YAML::Mark::null_mark()), "job.base_model:", job.base_model);
  for (size_t i = 0; i < job.data.validation_images.size(); ++i) {
    check_path(problems.Where(i < origins.validation_images.size() ? origins.validation_images[i]
                                                                   : YAML::Mark::null_mark()),
               "data.validation_images[" + std::to_string(i) + "]:", job.data.validation_images[i]);
  }
  // A swept run's name holds a '/' (its folder is inside its style's): only
  // the text is checked here.
  for (const StyleSpec& style : job.styles) {
    if (!IsPlainText(style.name)) {
      problems.Add(style.origin + ": style name '" + EscapeForMessage(style.name) +
                   "' must be UTF-8 text without control characters (it names a folder)");
    }
    check_path(style.origin + ": ", "style image", style.image);
    check_path(style.origin + ": ", "output folder", style.output_dir);
  }
}

// Rules of the training settings, job-wide and per style, and of the
// distributed timeouts.
void ValidateTraining(const JobConfig& job, Problems& problems) {
  auto check_training = [&](const TrainingOptions& t, const std::string& who) {
    if (t.epochs == 0 && t.max_steps == 0 && !problems.AnyUnread({"epochs", "max_steps"})) {
      problems.Add(problems.file() + ": " + who +
                   "epochs and max_steps are both 0; set at least one to end training");
    }
    if (t.batch_size % t.micro_batches != 0 &&
        !problems.AnyUnread({"batch_size", "micro_batches"})) {
      problems.Add(problems.file() + ": " + who + "micro_batches (" +
                   std::to_string(t.micro_batches) + ") must divide batch_size (" +
                   std::to_string(t.batch_size) + ")");
    }
    if (t.content_weight == 0 && t.style_weight == 0 &&
        !problems.AnyUnread({"content_weight", "style_weight"})) {
      problems.Add(problems.file() + ": " + who +
                   "content_weight and style_weight are both 0; nothing would be learned");
    }
  };
  // The job's training section is each style's default: it is checked as
  // itself when a style trains with it unchanged (a job whose styles all set
  // max_steps may leave it at 0).
  if (std::any_of(job.styles.begin(), job.styles.end(), [&](const StyleSpec& style) {
        return SameTraining(style.training, job.training);
      })) {
    check_training(job.training, "training: ");
  }
  if (job.distributed.stall_warn_seconds > job.distributed.timeout_seconds) {
    problems.Add(problems.file() + ": distributed: stall_warn_seconds (" +
                 std::to_string(job.distributed.stall_warn_seconds) +
                 ") exceeds timeout_seconds (" + std::to_string(job.distributed.timeout_seconds) +
                 ")");
  }
  for (const auto& style : job.styles) {
    if (!SameTraining(style.training, job.training))
      check_training(style.training, "style '" + style.name + "': ");
  }
}

// Each style name once in the job, and each output folder written by one
// style only.
void ValidateStyleNames(const JobConfig& job, Problems& problems) {
  std::map<std::string, const StyleSpec*> by_name;
  std::map<std::string, const StyleSpec*> by_dir;
  // The names written in the job: a swept style's runs share its name (and its origin), so
  // two entries are told apart by origin; a run name could not repeat a style name otherwise.
  std::map<std::string, const StyleSpec*> by_written_name;
  std::set<std::string> duplicates_reported;  // one message per entry, not per run
  for (const auto& style : job.styles) {
    const std::string& written = style.sweep.empty() ? style.name : style.sweep;
    const auto first = by_written_name.emplace(written, &style).first;
    if (first->second->origin != style.origin) {
      if (duplicates_reported.insert(style.origin).second) {
        problems.Add(style.origin + ": duplicate style name '" + written + "' (first defined at " +
                     first->second->origin + ")");
      }
    } else if (!by_name.emplace(style.name, &style).second) {
      problems.Add(style.origin + ": duplicate style name '" + style.name + "' (first defined at " +
                   by_name[style.name]->origin + ")");
    } else if (!by_dir.emplace(style.output_dir, &style).second) {
      problems.Add(style.origin + ": style '" + style.name + "' writes to the same folder '" +
                   style.output_dir + "' as style '" + by_dir[style.output_dir]->name + "'");
    }
  }
}

// Each validation photo exists, and no photo is listed twice under two
// spellings.
void ValidateValidationPhotos(const JobConfig& job, const Origins& origins, Problems& problems) {
  auto at = [&](const YAML::Mark& mark, const std::string& message) { problems.At(mark, message); };
  std::error_code ec;
  for (size_t i = 0; i < job.data.validation_images.size(); ++i) {
    const std::string& photo = job.data.validation_images[i];
    const YAML::Mark mark = i < origins.validation_images.size() ? origins.validation_images[i]
                                                                 : YAML::Mark::null_mark();
    if (!fs::is_regular_file(photo, ec)) {
      at(mark, "data.validation_images[" + std::to_string(i) + "]: validation photo '" + photo +
                   "' does not exist or is not a file");
      continue;
    }
    // The same file spelled twice (./a.jpg and a.jpg, a link) would be shown twice.
    for (size_t j = 0; j < i; ++j) {
      if (fs::equivalent(photo, job.data.validation_images[j], ec)) {
        at(mark, "data.validation_images[" + std::to_string(i) + "]: '" + photo +
                     "' is the same photo as data.validation_images[" + std::to_string(j) + "] ('" +
                     job.data.validation_images[j] + "')");
        break;
      }
    }
  }
}

// loss_network.weights is random:SEED or a file that exists (and not a
// TensorFlow checkpoint).
void ValidateLossNetworkWeights(const JobConfig& job, const Origins& origins, Problems& problems) {
  auto at = [&](const YAML::Mark& mark, const std::string& message) { problems.At(mark, message); };
  std::error_code ec;
  const std::string& weights = job.loss_network.weights;
  if (weights.rfind("random:", 0) == 0) {
    if (!RandomNetworkSeed(weights)) {
      at(origins.weights,
         "loss_network.weights: expected random:SEED with SEED a non-negative "
         "integer, got '" +
             weights + "'");
    }
  } else if (!weights.empty()) {
    const std::string ext = fs::path(weights).extension().string();
    if (ext == ".ckpt" || ext == ".index" || ext == ".meta") {
      at(origins.weights,
         "loss_network.weights: '" + weights +
             "' is a TensorFlow checkpoint, which stylefleet cannot read; convert torchvision's "
             "VGG-16 with launch/convert_vgg16.py and pass --set loss_network.weights=FILE (or "
             "random:SEED for a test run)");
    } else if (!fs::is_regular_file(weights, ec)) {
      at(origins.weights, "loss_network.weights: weights file '" + weights +
                              "' does not exist (use random:SEED for a random network)");
    }
  }
}

// The only rules that look at the disk: the files and folders the job names
// exist (style images, content folder, validation photos, loss-network
// weights), no output folder lies inside the content folder, and no photo is
// listed twice under two spellings.
void ValidateFiles(const JobConfig& job, const Origins& origins, Problems& problems) {
  std::error_code ec;
  for (const auto& style : job.styles) {
    if (!style.image.empty() && !fs::is_regular_file(style.image, ec)) {
      problems.Add(style.origin + ": style '" + style.name + "': style image '" + style.image +
                   "' does not exist or is not a file");
    }
  }
  if (!job.data.content_dir.empty() && !fs::is_directory(job.data.content_dir, ec)) {
    problems.Add(ContentDirWhere(origins, problems) + "data.content_dir: content folder '" +
                 job.data.content_dir + "' does not exist or is not a folder" +
                 (job.seed_format ? " (seed-style files read train2014/ under the working "
                                    "directory; pass --content DIR)"
                                  : ""));
  }
  // The content folder is read with its sub-folders: outputs inside it (previews,
  // final images) would join the training photos of the next run.
  if (!job.data.content_dir.empty() && fs::is_directory(job.data.content_dir, ec)) {
    const fs::path content = fs::weakly_canonical(job.data.content_dir, ec);
    for (const StyleSpec& style : job.styles) {
      const fs::path out = fs::weakly_canonical(style.output_dir, ec);
      if (std::mismatch(content.begin(), content.end(), out.begin(), out.end()).first ==
          content.end()) {
        problems.Add(style.origin + ": style '" + style.name + "' writes to '" + style.output_dir +
                     "', inside data.content_dir '" + job.data.content_dir +
                     "', whose sub-folders are read too: its previews and final images would "
                     "become training photos; choose a job.output_dir outside it");
        break;
      }
    }
  }
  ValidateValidationPhotos(job, origins, problems);
  ValidateLossNetworkWeights(job, origins, problems);
}

}  // namespace

void Validate(const JobConfig& job, const Origins& origins, const LoadOptions& options,
              Problems& problems) {
  ValidateTraining(job, problems);
  ValidateStyleNames(job, problems);
  ValidateRecordedText(job, origins, problems);
  ValidateConditional(job, options, problems);
  if (options.check_files) ValidateFiles(job, origins, problems);
}

}  // namespace stylefleet::job_loader
