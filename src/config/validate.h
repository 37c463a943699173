// Rules across keys and checks of the files a job names, after every value is
// read.
// Part of the job loader (src/config), not for use outside it.
#pragma once

#include "config/job_config.h"
#include "config/problems.h"

namespace stylefleet::job_loader {

// Adds every broken rule of `job` to `problems`: training settings, style
// names and folders, text recorded in JSON, a conditional network's rules, and
// (when options.check_files) the files and folders on disk.
void Validate(const JobConfig& job, const Origins& origins, const LoadOptions& options,
              Problems& problems);

}  // namespace stylefleet::job_loader
