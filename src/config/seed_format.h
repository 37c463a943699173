// Files of the seed TensorFlow project's format (conf/*.yml: style_image,
// naming, model_path, ...), read as a one-style job.
// Part of the job loader (src/config), not for use outside it.
#pragma once

#include <yaml-cpp/yaml.h>

#include "config/job_config.h"
#include "config/problems.h"

namespace stylefleet::job_loader {

// Reads one seed-format file. The style it describes is returned in `style`;
// job-level keys (image size, layers, loss network, output folder) go to `job`.
// Relative paths are found against the working directory, as the seed does.
void ReadSeedFile(const YAML::Node& root, JobConfig& job, StyleSpec& style, Origins& origins,
                  Problems& problems);

}  // namespace stylefleet::job_loader
