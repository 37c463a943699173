#include "config/seed_format.h"

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

namespace {

// A seed-file key that sets a loss weight, a batch, epoch or image size, the
// loss layers or the loss model into `job`; false for any other key.
bool ReadSeedSetting(const std::string& key, const Value& v, JobConfig& job) {
  if (key == "content_weight") {
    TrainingFields()[0].read(job.training, v);
  } else if (key == "style_weight") {
    TrainingFields()[1].read(job.training, v);
  } else if (key == "tv_weight") {
    TrainingFields()[2].read(job.training, v);
  } else if (key == "batch_size") {
    FindField(TrainingFields(), "batch_size")->read(job.training, v);
  } else if (key == "epoch") {
    FindField(TrainingFields(), "epochs")->read(job.training, v);
  } else if (key == "image_size") {
    FindField(DataFields(), "image_size")->read(job.data, v);
  } else if (key == "content_layers") {
    v.ReadLayers(&job.loss_network.content_layers);
  } else if (key == "style_layers") {
    v.ReadLayers(&job.loss_network.style_layers);
  } else if (key == "loss_model") {
    std::string model;
    if (v.ReadString(&model) && model != "vgg_16") {
      v.Fail("only 'vgg_16' is supported, got '" + model + "'");
    }
  } else {
    return false;
  }
  return true;
}

}  // namespace

void ReadSeedFile(const YAML::Node& root, JobConfig& job, StyleSpec& style, Origins& origins,
                  Problems& problems) {
  const fs::path cwd = fs::current_path();
  std::set<std::string> seen;
  std::string naming, model_path = "models";
  for (auto it = root.begin(); it != root.end(); ++it) {
    const YAML::Node key_node = it->first;
    const YAML::Node value_node = it->second;
    if (!key_node.IsScalar()) {
      problems.At(key_node.Mark(), "keys must be plain names");
      continue;
    }
    const std::string key = key_node.Scalar();
    if (!seen.insert(key).second) {
      problems.At(key_node.Mark(), "duplicate key '" + key + "'");
      continue;
    }
    const Value v{value_node, key, problems, ""};
    if (key == "style_image") {
      if (v.ReadString(&style.image)) style.image = ResolvePath(style.image, cwd);
      style.origin = problems.file() + ":" + std::to_string(value_node.Mark().line + 1) + ":" +
                     std::to_string(value_node.Mark().column + 1);
    } else if (key == "naming") {
      v.ReadString(&naming);
    } else if (key == "model_path") {
      v.ReadString(&model_path);
      origins.output_dir = value_node.Mark();
    } else if (ReadSeedSetting(key, v, job)) {
      // a loss weight, size or layer list, read into the job
    } else if (key == "loss_model_file") {
      if (v.ReadString(&job.loss_network.weights)) {
        job.loss_network.weights = ResolvePath(job.loss_network.weights, cwd);
      }
      origins.weights = value_node.Mark();
    } else if (key == "checkpoint_exclude_scopes") {
      // TF-slim detail (which variables not to restore); meaningless here.
    } else {
      problems.At(key_node.Mark(), UnknownKeyMessage("", key, SeedKeys()));
    }
  }
  for (const char* required : {"style_image", "naming"}) {
    if (!seen.count(required)) {
      problems.At(root.Mark(), std::string("missing required key '") + required + "'");
    }
  }
  style.name = naming;
  if (!naming.empty() && naming.find_first_of("/\\") != std::string::npos) {
    problems.At(root.Mark(), "naming must not contain '/' or '\\', got '" + naming + "'");
  }
  job.output_dir = ResolvePath(model_path, cwd);
  style.output_dir = (fs::path(job.output_dir) / naming).lexically_normal().string();
  if (style.origin.empty()) style.origin = problems.file();
}

}  // namespace stylefleet::job_loader
