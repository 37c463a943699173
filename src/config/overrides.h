// Overrides from the command line (`--set section.key=value`, value in YAML),
// read like the file's values and reported as the command line's.
// Part of the job loader (src/config), not for use outside it.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <string>
#include <vector>

#include "config/job_config.h"
#include "config/problems.h"

namespace stylefleet::job_loader {

struct Override {
  std::string text;  // as given
  std::vector<std::string> path;
  YAML::Node value;
};

// Splits each `section.key=value` text; problems for malformed ones.
std::vector<Override> ParseOverrides(const std::vector<std::string>& texts, Problems& problems);

// Job-level overrides (every section but styles); relative paths against `cwd`.
void ApplyJobOverrides(const std::vector<Override>& overrides, JobConfig& job, Origins& origins,
                       const std::filesystem::path& cwd, Problems& problems);

// `styles.NAME.key=value`: NAME is a style, a run of a sweep (names may hold
// dots), or a swept style, which changes every run of its sweep.
void ApplyStyleOverrides(const std::vector<Override>& overrides, JobConfig& job,
                         const std::filesystem::path& cwd, Problems& problems);

}  // namespace stylefleet::job_loader
