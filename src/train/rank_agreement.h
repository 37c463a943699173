// What every rank of a launch must agree on before training: the job's
// rank-invariant settings (from the config tables), the styles selected on
// the command line, and the files each rank reads.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "config/job_config.h"

namespace stylefleet {

/// A hash (16 hex digits) of the size and bytes of the file at `path`: all
/// of them, or when `sampled` 16 spread blocks of 64 KiB (a 528 MB VGG-16 file
/// would take seconds to read whole). "missing" when it cannot be read.
std::string FileContentHash(const std::string& path, bool sampled);

/// What a rank reads of a job besides its settings: the content files
/// (their number and ContentListHash) and a hash of each other input file, by
/// its role: every style image (whole), the loss-network weights and
/// job.base_model (sampled). Files at the same path may differ between nodes.
struct JobInputs {
  size_t content_files = 0;
  std::string content_list_hash;
  std::vector<std::pair<std::string, std::string>> file_hashes;  ///< {role, hash}
};
/// FileContentHash(path, false) of a file that holds `bytes`.
std::string BytesContentHash(const std::vector<uint8_t>& bytes);

/// The inputs of `job` whose content folder lists as `content_files` files
/// with ContentListHash `content_list_hash`. A style image in `style_image_hashes` (file ->
/// BytesContentHash of the bytes a rank decoded: TrainPlan) takes that hash instead of the file's
/// now, so that the ranks compare what they train on.
JobInputs ReadJobInputs(const JobConfig& job, size_t content_files, std::string content_list_hash,
                        const std::map<std::string, std::string>& style_image_hashes = {});

/// Collective over `all`: compares every setting of `job` whose Agreement is
/// not kPerRank (values at full precision), the `--style` selection in order,
/// the content list (count, and a hash of the relative paths and sizes) and
/// the input files' hashes. Throws ConfigError on every rank naming what
/// differs and which ranks hold which value, before any rank calls a training
/// collective.
void CheckRanksAgreeOnJob(Communicator& all, const JobConfig& job,
                          const std::vector<std::string>& selected_styles, const JobInputs& inputs);

/// Collective over `all`: every rank's host name and local rank (`host`,
/// `local_rank`: this rank's) together name one process. Two ranks with the same
/// pair run on two machines that share a host name, which the logs, the metrics
/// endpoints (host:port) and the shared-folder check would confuse: throws
/// ConfigError on every rank naming them. A world of one returns at once.
void CheckRanksHaveDistinctHosts(Communicator& all, const std::string& host, int local_rank);

/// The folders the runs of `styles` write, as CheckRanksShareOutputFolders checks them: each
/// run's folder (a conditional network's also each of its styles'), one inside job.output_dir
/// counted as job.output_dir; each once, none inside another, no trailing separator.
std::vector<std::string> SharedOutputFolders(const JobConfig& job,
                                             const std::vector<const StyleSpec*>& styles);

/// Collective over `all`: proves that every rank sees each of SharedOutputFolders(job, styles)
/// as one folder it can write, as group roots on other hosts will. Each rank
/// writes a small file named after a nonce of rank 0 in the folder, or in its nearest existing
/// parent (nothing is created); every rank reads rank 0's file and rank 0 reads every rank's;
/// each removes its own. Throws ConfigError on every rank naming each rank and host (`host` is
/// this rank's) that cannot write there or cannot see the others' files, before anything is
/// claimed or trained. A world of one returns at once.
void CheckRanksShareOutputFolders(Communicator& all, const std::string& host, const JobConfig& job,
                                  const std::vector<const StyleSpec*>& styles);

}  // namespace stylefleet
