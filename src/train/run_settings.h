// The settings each style's checkpoints were trained with, kept next to them
// (<style folder>/settings.json), so that a resume notices a job that changed
// underneath it. Which changes matter comes from the config tables
// (OnResume), not from a list here. Torch-free.
#pragma once

#include <string>
#include <vector>

#include "config/job_config.h"
#include "config/job_settings.h"

namespace stylefleet {

/// What `style` of `job` trains with on groups of `group_ranks` ranks: the
/// config's StyleRunSettings plus the group size and the images per step
/// (kImagesPerStepKey: batch_size x ranks, which must match on resume while
/// the group size and batch_size may change with it), and `content_list`
/// (DescribeContentList of the content files; left out when empty): photos
/// added or removed change the epochs' order, safe to continue with but said.
std::vector<Setting> RunSettings(const JobConfig& job, const StyleSpec& style, int group_ranks,
                                 const std::string& content_list);

/// The key of RunSettings' images per step (batch_size x ranks), which must
/// match on resume while the two it multiplies may change.
inline constexpr const char* kImagesPerStepKey = "images per step (batch_size x ranks)";
/// training.batch_size's upper limit (the config tables').
constexpr int kMaxBatchSize = 1024;

/// The batch a resumed run takes on another number of ranks.
struct ElasticBatch {
  int batch_size = 0;     ///< per rank
  int micro_batches = 0;  ///< parts of batch_size
  bool changed = false;   ///< differs from the style's training options
  std::string note;       ///< what changed and why, for the log; empty when nothing did
  std::string problem;    ///< why the images per step cannot be kept; empty when they can
};

/// Elastic resume: a run whose <output_dir>/settings.json says it was trained
/// on groups of R ranks of batch b and that now trains on groups of
/// `group_ranks` (M) keeps the b*R images per step: each rank takes
/// batch_size b*R/M, in micro-batches of the job's images per pass where that
/// divides it (4 ranks x 2 -> 2 ranks x 4 in 2 micro-batches -> 1 x 8 in 4).
/// With power-of-two counts and micro-batches of the recorded size the
/// update is bit for bit the recorded set-up's (GradientTree). `problem` is
/// set when M does not divide b*R (or b*R/M is above kMaxBatchSize). A run
/// without a record, or with the same group size, keeps its options. Reads
/// only.
ElasticBatch KeepImagesPerStep(const StyleSpec& style, int group_ranks);

/// Writes `settings` to <style_dir>/settings.json (replacing it atomically).
/// Throws Error when it cannot.
void RecordRunSettings(const std::string& style_dir, const std::vector<Setting>& settings);

/// One key whose recorded value differs from the current one.
struct SettingChange {
  std::string key;
  std::string recorded;
  std::string now;
  OnResume on_resume = OnResume::kMustMatch;  ///< as the current tables say
};

/// The keys of `now` whose value differs from <style_dir>/settings.json.
/// Keys missing on either side (written by another version) are not compared,
/// except a key newer than the file whose earlier behaviour is one value
/// (training.style_luminance_only: false), compared as that value.
/// Sets `*found` to whether a record exists. Throws Error when it is unreadable.
std::vector<SettingChange> CompareRunSettings(const std::string& style_dir,
                                              const std::vector<Setting>& now, bool* found);

}  // namespace stylefleet
