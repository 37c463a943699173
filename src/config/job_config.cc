#include "config/job_config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "config/job_file.h"
#include "config/overrides.h"
#include "config/paths.h"
#include "config/problems.h"
#include "config/seed_format.h"
#include "config/sweeps.h"
#include "config/validate.h"
#include "config/yaml_guards.h"

namespace stylefleet {
namespace fs = std::filesystem;
using namespace job_loader;  // NOLINT: this file is the loader's front door

namespace {

// Job files are small; anything larger is a mistake (or an attack on the parser).
constexpr size_t kMaxJobFileBytes = 1 << 20;

}  // namespace

bool OneNetworkForAllStyles(const JobConfig& job) {
  return job.network == "conditional" || job.network == "arbitrary";
}

namespace {
const char* NetworkRunName(const JobConfig& job) {
  return job.network == "arbitrary" ? kArbitraryNetworkName : kConditionalNetworkName;
}
}  // namespace

std::string ConditionalNetworkDir(const JobConfig& job) {
  return (fs::path(job.output_dir) / NetworkRunName(job)).lexically_normal().string();
}

namespace {

// The top mapping of a job file's text. Throws ConfigError (through
// `problems`) for a file too large, not YAML, empty or not a mapping.
YAML::Node ParseJobRoot(const std::string& text, const std::string& path, Problems& problems) {
  if (text.size() > kMaxJobFileBytes) {
    problems.Add(path + ": job file is " + std::to_string(text.size()) +
                 " bytes; at most 1 MiB is accepted");
    problems.ThrowIfAny();
  }
  const YAML::Node root = ParseYaml(text, problems);
  problems.ThrowIfAny();
  if (root.IsNull()) {
    problems.Add(path +
                 ":1:1: job file is empty (expected a job with 'styles:', or a seed-style "
                 "file with 'style_image:')");
    problems.ThrowIfAny();
  }
  if (!root.IsMap()) {
    problems.At(root.Mark(),
                "expected a mapping at the top of the file (a job with 'styles:', "
                "or a seed-style file with 'style_image:')");
    problems.ThrowIfAny();
  }
  return root;
}

// A conditional job's one network run: named and placed as the network, with
// its first style's training settings.
StyleSpec ConditionalRun(const JobConfig& job) {
  StyleSpec run;
  run.name = NetworkRunName(job);
  run.output_dir = ConditionalNetworkDir(job);
  run.training = job.styles.front().training;
  run.origin = job.source_file;
  return run;
}

}  // namespace

JobConfig LoadJobFromString(const std::string& text, const std::string& path,
                            const LoadOptions& options) {
  Problems problems(path);
  const YAML::Node root = ParseJobRoot(text, path, problems);
  const std::vector<Override> overrides = ParseOverrides(options.overrides, problems);
  const fs::path cwd = fs::current_path();
  const fs::path base =
      fs::path(path).parent_path().empty() ? cwd : fs::absolute(fs::path(path).parent_path());
  JobConfig job;
  job.source_file = path;
  Origins origins;
  job.seed_format = root["style_image"].IsDefined() && !root["styles"].IsDefined();
  if (job.seed_format) {
    StyleSpec style;
    ReadSeedFile(root, job, style, origins, problems);
    job.name = style.name.empty() ? Stem(path) : style.name;
    job.data.content_dir = ResolvePath(
        options.content_dir.empty() ? std::string("train2014") : options.content_dir, cwd);
    if (!options.content_dir.empty()) origins.content_dir_given = "command line (--content)";
    ApplyJobOverrides(overrides, job, origins, cwd, problems);
    ResolveTrainingDefaults(job);
    style.training = job.training;
    if (!style.name.empty()) job.styles.push_back(style);
  } else {
    ReadJobFile(root, job, origins, base, overrides, problems);
    if (!options.content_dir.empty()) {
      job.data.content_dir = ResolvePath(options.content_dir, cwd);
      origins.content_dir = YAML::Mark::null_mark();
      origins.content_dir_given = "command line (--content)";
    }
    ApplyJobOverrides(overrides, job, origins, cwd, problems);
    ResolveTrainingDefaults(job);
    const Sweep job_sweep =
        root["sweep"].IsDefined() ? ReadSweep(root["sweep"], "sweep", problems) : Sweep{};
    if (root["styles"].IsDefined()) ReadStyles(root["styles"], job, base, job_sweep, problems);
  }
  ApplyStyleOverrides(overrides, job, cwd, problems);
  Validate(job, origins, options, problems);
  problems.ThrowIfAny();
  if (OneNetworkForAllStyles(job) && !job.styles.empty()) {
    job.conditional_run = ConditionalRun(job);
  }
  return job;
}

JobConfig LoadJob(const std::string& path, const LoadOptions& options) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw ConfigError({path + ": job file does not exist or is not a file"});
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError({path + ": cannot open job file"});
  std::string text;
  text.resize(kMaxJobFileBytes + 1);
  in.read(&text[0], static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return LoadJobFromString(text, path, options);
}

}  // namespace stylefleet
