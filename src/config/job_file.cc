#include "config/job_file.h"

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
#include "common/image_names.h"
#include "common/utf8.h"
#include "common/vgg_layers.h"
#include "config/job_schema.h"
#include "config/paths.h"
#include "config/seed_format.h"
#include "config/yaml_guards.h"

namespace stylefleet::job_loader {
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Job-format files.

namespace {

// One known section of a job file (a mapping) into `job`, noting where the
// keys that name files were given.
void ReadSection(const std::string& key, const YAML::Node& value, JobConfig& job, Origins& origins,
                 Problems& problems) {
  std::set<std::string> keys;
  ForEachSection(job, [&](const char* section, const auto& table, auto& part) {
    if (key == section) ReadMap(value, key, table, part, problems, &keys);
  });
  // Where the paths were given, for messages about them.
  if (key == "job" && value["output_dir"]) origins.output_dir = value["output_dir"].Mark();
  if (key == "data") {
    if (keys.count("content_dir")) origins.content_dir = value["content_dir"].Mark();
    const YAML::Node photos = value["validation_images"];
    if (photos && photos.IsSequence()) {
      for (const auto& photo : photos) origins.validation_images.push_back(photo.Mark());
    }
  }
  if (key == "loss_network" && value["weights"]) origins.weights = value["weights"].Mark();
}

// The paths of `job` made absolute against the job file's folder `base`; the
// job's name defaults to the file's stem, its output folder to runs/NAME.
void ResolveJobPaths(const fs::path& base, const std::string& file, JobConfig& job) {
  job.data.content_dir = ResolvePath(job.data.content_dir, base);
  job.loss_network.weights = ResolvePath(job.loss_network.weights, base);
  ResolvePathList(job.data.validation_images, base);
  ResolvePathList(job.held_out_styles, base);
  if (job.name.empty()) job.name = Stem(file);
  job.output_dir = job.output_dir.empty() ? ResolvePath("runs/" + job.name, base)
                                          : ResolvePath(job.output_dir, base);
  if (!job.base_model.empty()) job.base_model = ResolvePath(job.base_model, base);
}

// Whether `overrides` set SECTION.KEY.
bool Overridden(const std::vector<Override>& overrides, const char* section, const char* key) {
  return std::any_of(overrides.begin(), overrides.end(), [&](const Override& o) {
    return o.path.size() == 2 && o.path[0] == section && o.path[1] == key;
  });
}

}  // namespace

void ReadJobFile(const YAML::Node& root, JobConfig& job, Origins& origins, const fs::path& base,
                 const std::vector<Override>& overrides, Problems& problems) {
  std::set<std::string> seen;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const YAML::Node key_node = it->first;
    const YAML::Node value = it->second;
    if (!key_node.IsScalar()) {
      problems.At(key_node.Mark(), "keys must be plain names");
      continue;
    }
    const std::string key = key_node.Scalar();
    if (!seen.insert(key).second) {
      problems.At(key_node.Mark(), "duplicate section '" + key + "'");
      continue;
    }
    if (key == "styles" || key == "sweep") continue;  // read after the defaults are final
    const bool known =
        std::find(JobSections().begin(), JobSections().end(), key) != JobSections().end();
    if (!known) {
      problems.At(key_node.Mark(), UnknownKeyMessage("", key, JobSections()));
      continue;
    }
    if (!value.IsMap()) {
      problems.At(value.Mark(), "'" + key + "' must be a mapping of keys");
      continue;
    }
    ReadSection(key, value, job, origins, problems);
  }
  ResolveJobPaths(base, problems.file(), job);
  if (!seen.count("data") || job.data.content_dir.empty()) {
    if (!Overridden(overrides, "data", "content_dir")) {
      problems.At(root.Mark(), "missing required key 'data.content_dir'");
    }
  }
  if (job.loss_network.weights.empty() && !Overridden(overrides, "loss_network", "weights")) {
    problems.At(root.Mark(),
                "missing required key 'loss_network.weights' (a weights file or random:SEED)");
  }
  if (!seen.count("styles")) {
    problems.At(root.Mark(), "missing required section 'styles' (a list of styles to train)");
  }
}

// Training keys whose default is another section's value take it before the
// styles copy the defaults, so that every loaded style holds concrete values.
void ResolveTrainingDefaults(JobConfig& job) {
  if (job.training.style_image_size == 0) job.training.style_image_size = job.data.image_size;
  if (job.training.style_layers.empty()) job.training.style_layers = job.loss_network.style_layers;
  if (job.predictor_layers.empty()) job.predictor_layers = job.loss_network.style_layers;
}

namespace {

// A `folder:` style entry: one style per image file directly in the folder,
// in file-name order, each named after its file and given `style`'s training
// keys and `sweep`. A folder is one training set for network arbitrary.
void ReadStyleFolder(const YAML::Node& item, const StyleSpec& style, JobConfig& job,
                     const fs::path& base, const Sweep& sweep, Problems& problems) {
  const YAML::Node folder = item["folder"];
  const Value v{folder, "styles[].folder", problems, ""};
  std::string relative;
  if (!v.ReadString(&relative)) return;
  for (const char* key : {"image", "name", "output_dir"}) {
    if (item[key]) {
      problems.At(item.Mark(), std::string("a style entry with 'folder' takes no '") + key +
                                   "': each image in the folder is one style, named after its "
                                   "file and written under job.output_dir");
      return;
    }
  }
  const fs::path dir = ResolvePath(relative, base);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    v.Fail("style folder '" + dir.string() + "' does not exist or is not a folder");
    return;
  }
  const std::vector<fs::path> images = ImageFilesIn(dir, ec);
  if (ec) {
    v.Fail("cannot list style folder '" + dir.string() + "' (" + ec.message() + ")");
    return;
  }
  if (images.empty()) {
    v.Fail("style folder '" + dir.string() + "' holds no " + kImageExtensionList +
           " files (sub-folders are not read)");
    return;
  }
  if (job.styles.size() + images.size() > kMaxStyles) {
    v.Fail("style folder '" + dir.string() + "' holds " + std::to_string(images.size()) +
           " images: too many styles; at most " + std::to_string(kMaxStyles) + " in a job");
    return;
  }
  for (const fs::path& image : images) {
    StyleSpec one = style;
    one.image = image.lexically_normal().string();
    one.name = image.stem().string();
    if (!IsPlainText(one.name) || !ValidFolderName(one.name)) {
      v.Fail("style name '" + EscapeForMessage(one.name) + "' (from the image file '" +
             EscapeForMessage(image.string()) + "' in the folder) " + kFolderNameRule +
             "; rename the file, or list it as a style of its own with a name: key");
      continue;
    }
    one.output_dir = (fs::path(job.output_dir) / one.name).lexically_normal().string();
    AddStyleRuns(one, sweep, job, problems);
  }
}

void ReadStyleMap(const YAML::Node& item, JobConfig& job, const fs::path& base,
                  const Sweep& job_sweep, Problems& problems) {
  StyleSpec style;
  style.training = job.training;
  style.origin = problems.file() + ":" + std::to_string(item.Mark().line + 1) + ":" +
                 std::to_string(item.Mark().column + 1);
  StyleEntry entry;
  std::set<std::string> keys;
  // Style keys and training overrides share one mapping: read each with its table.
  std::vector<std::string> training_keys = KeysOf(TrainingFields());
  training_keys.push_back("sweep");
  training_keys.push_back("folder");
  ReadMap(item, "styles[]", StyleFields(), entry, problems, &keys, training_keys);
  std::vector<std::string> style_keys = KeysOf(StyleFields());
  for (auto it = item.begin(); it != item.end(); ++it) {
    if (!it->first.IsScalar()) continue;
    const Field<TrainingOptions>* field = FindField(TrainingFields(), it->first.Scalar());
    if (field != nullptr) {
      field->read(style.training,
                  Value{it->second, "styles[]." + field->key, problems, "", it->first.Mark()});
    }
  }
  const Sweep sweep =
      keys.count("sweep") ? ReadSweep(item["sweep"], "styles[].sweep", problems) : job_sweep;
  if (keys.count("folder")) {
    ReadStyleFolder(item, style, job, base, sweep, problems);
    return;
  }
  if (!keys.count("image")) {
    problems.At(item.Mark(),
                "style is missing required key 'image' (or 'folder', a folder of "
                "style images)");
    return;
  }
  style.image = ResolvePath(entry.image, base);
  style.name = entry.name.empty() ? Stem(entry.image) : entry.name;
  // A name from the image's file name follows the rules of a written one:
  // `...png` gave '..', whose outputs landed beside the job's output folder
  // (issue 32). Text that is not plain is said by ValidateRecordedText.
  if (entry.name.empty() && IsPlainText(style.name) && !ValidFolderName(style.name)) {
    problems.At(item.Mark(), "style name '" + style.name + "' (from the image file '" +
                                 EscapeForMessage(entry.image) + "') " + kFolderNameRule +
                                 "; set the style's name: key");
    return;
  }
  style.output_dir = entry.output_dir.empty()
                         ? (fs::path(job.output_dir) / style.name).lexically_normal().string()
                         : ResolvePath(entry.output_dir, base);
  AddStyleRuns(style, sweep, job, problems);
}

// A style given as the path of a seed-format file: its style, weights and
// training values become this style's; its job-level values must agree with the job.
void ReadSeedStyle(const YAML::Node& item, JobConfig& job, const fs::path& base,
                   const Sweep& job_sweep, Problems& problems) {
  std::string relative;
  const Value v{item, "styles[]", problems, ""};
  if (!v.ReadString(&relative)) return;
  const std::string path = ResolvePath(relative, base);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    v.Fail("cannot open seed-style file '" + path + "' (missing, or not a file)");
    return;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    v.Fail("cannot open seed-style file '" + path + "'");
    return;
  }
  std::stringstream text;
  text << in.rdbuf();
  Problems inner(path);
  const YAML::Node root = ParseYaml(text.str(), inner);
  if (inner.empty() && !root.IsMap()) {
    inner.Add(path + ":1:1: expected a mapping of seed keys (style_image, naming, ...)");
  }
  if (inner.empty()) {
    JobConfig seed_job;
    seed_job.training = job.training;
    seed_job.data = job.data;
    seed_job.loss_network = job.loss_network;
    StyleSpec style;
    Origins unused;
    ReadSeedFile(root, seed_job, style, unused, inner);
    if (inner.empty()) {
      auto differs = [&](const std::string& what) {
        v.Fail("seed-style file '" + relative + "' sets " + what +
               " differently from the job; one job shares one content pipeline and loss "
               "network, so put it in its own job");
      };
      if (seed_job.data.image_size != job.data.image_size) differs("image_size");
      if (seed_job.loss_network.content_layers != job.loss_network.content_layers)
        differs("content_layers");
      if (seed_job.loss_network.style_layers != job.loss_network.style_layers)
        differs("style_layers");
      style.training = seed_job.training;
      style.output_dir = (fs::path(job.output_dir) / style.name).lexically_normal().string();
      AddStyleRuns(style, job_sweep, job, problems);
    }
  }
  // Problems inside the listed file are reported with that file's positions.
  try {
    inner.ThrowIfAny();
  } catch (const ConfigError& e) {
    for (const auto& p : e.problems()) problems.Add(p);
  }
}

}  // namespace

void ReadStyles(const YAML::Node& list, JobConfig& job, const fs::path& base,
                const Sweep& job_sweep, Problems& problems) {
  if (!list.IsSequence() || list.size() == 0) {
    problems.At(list.Mark(), "'styles' must be a non-empty list of styles");
    return;
  }
  if (list.size() > kMaxStyles) {
    problems.At(list.Mark(), "too many styles (" + std::to_string(list.size()) + "); at most " +
                                 std::to_string(kMaxStyles));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node item = list[i];
    if (item.IsMap()) {
      ReadStyleMap(item, job, base, job_sweep, problems);
    } else if (item.IsScalar()) {
      ReadSeedStyle(item, job, base, job_sweep, problems);
    } else {
      problems.At(item.Mark(),
                  "each style must be a mapping (name, image, overrides) or the path of a "
                  "seed-style file");
    }
  }
}

}  // namespace stylefleet::job_loader
