// What every rank of a launch must agree on before training: the job's
// rank-invariant settings (from the config tables), the styles selected on
// the command line, and the files each rank reads.
#pragma once

#include <string>
#include <vector>

#include "config/job_config.h"
#include "dist/communicator.h"

namespace stylefleet {

/// A hash (16 hex digits) of the size and bytes of the file at `path`: all
/// of them, or when `sampled` 16 spread blocks of 64 KiB (a 528 MB VGG-16 file
/// would take seconds to read whole). "missing" when it cannot be read.
std::string FileContentHash(const std::string& path, bool sampled);

/// What a rank reads of a job besides its settings: the content files
/// (ListImageFiles) and a hash of each other input file, by its role: every
/// style image (whole), the loss-network weights and job.base_model
/// (sampled). Files at the same path may differ between nodes.
struct JobInputs {
  std::vector<std::string> content_files;
  std::vector<std::pair<std::string, std::string>> file_hashes;  ///< {role, hash}
};
JobInputs ReadJobInputs(const JobConfig& job);

/// Collective over `all`: compares every setting of `job` whose Agreement is
/// not kPerRank (values at full precision), the `--style` selection in order,
/// the content list (count, and a hash of the relative paths and sizes) and
/// the input files' hashes. Throws ConfigError on every rank naming what
/// differs and which ranks hold which value, before any rank calls a training
/// collective.
void CheckRanksAgreeOnJob(Communicator& all, const JobConfig& job,
                          const std::vector<std::string>& selected_styles, const JobInputs& inputs);

}  // namespace stylefleet
