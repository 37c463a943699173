// What every rank of a launch must agree on before training: the job's
// rank-invariant settings (from the config tables), the styles selected on
// the command line, and the content files each rank sees.
#pragma once

#include <string>
#include <vector>

#include "config/job_config.h"
#include "dist/communicator.h"

namespace stylefleet {

/// A hash (16 hex digits) of `files`' paths relative to `dir` and their sizes:
/// a node whose copy of the folder lacks a file, or holds another one under
/// the same name, gives another value.
std::string ContentListHash(const std::string& dir, const std::vector<std::string>& files);

/// Collective over `all`: compares every setting of `job` whose Agreement is
/// not kPerRank (values at full precision), the `--style` selection in order,
/// and the content list (count, and a hash of the relative paths and sizes).
/// Throws ConfigError on every rank naming what differs and which ranks hold
/// which value, before any rank calls a training collective.
void CheckRanksAgreeOnJob(Communicator& all, const JobConfig& job,
                          const std::vector<std::string>& selected_styles,
                          const std::vector<std::string>& content_files);

}  // namespace stylefleet
