// Files of stylefleet's job format: the sections and the list of styles (a
// mapping each, or the path of a seed-format file).
// Part of the job loader (src/config), not for use outside it.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <vector>

#include "config/job_config.h"
#include "config/overrides.h"
#include "config/problems.h"
#include "config/sweeps.h"

namespace stylefleet::job_loader {

// Reads the job-wide sections of `root` (not `styles` or `sweep`); relative
// paths against `base`. `overrides` name the keys the command line sets, so
// that a key it sets is not reported as missing.
void ReadJobFile(const YAML::Node& root, JobConfig& job, Origins& origins,
                 const std::filesystem::path& base, const std::vector<Override>& overrides,
                 Problems& problems);

// Training keys whose default is another section's value take it before the
// styles copy the defaults, so that every loaded style holds concrete values.
void ResolveTrainingDefaults(JobConfig& job);

// Reads the `styles:` list into job.styles, each style swept by its own sweep
// or else by `job_sweep`.
void ReadStyles(const YAML::Node& list, JobConfig& job, const std::filesystem::path& base,
                const Sweep& job_sweep, Problems& problems);

}  // namespace stylefleet::job_loader
