// What `train` checks before it serves metrics or writes a file, and what
// `check` reports with the same code: a job can pass `check` and still be
// refused by `train` only for reasons that arise later (a broken image, a
// folder taken in between). Torch-free: src/cli includes it.
#pragma once

#include <string>
#include <vector>

#include "comm/world.h"
#include "common/file_lock.h"
#include "config/job_config.h"
#include "train/train_plan.h"

namespace stylefleet {

/// The styles of `job` selected by `--style` (all when `names` is empty), in
/// job order. Each name is a style or sweep-run name, a swept style's name
/// (all its runs), or a shell pattern such as `candy/*` or `*style_weight=50*`.
/// Throws ConfigError for a name that selects nothing, listing the styles.
std::vector<const StyleSpec*> SelectStyles(const JobConfig& job,
                                           const std::vector<std::string>& names);

/// What `train` trains, one entry per network: the styles SelectStyles picks,
/// or for a conditional job (job.network) its one network run
/// (job.conditional_run), which holds all its styles: `--style` cannot pick
/// among them (ConfigError).
std::vector<const StyleSpec*> SelectRuns(const JobConfig& job,
                                         const std::vector<std::string>& names);

/// The ranks_per_style that lays `job`'s runs onto the ranks: the job's, or 0
/// (all ranks in one group) for a conditional network.
int RanksPerRun(const JobConfig& job);

/// Why the network in `base_file` (its styles `base_styles`, in row order)
/// cannot be `job`'s job.base_model: a per-style network (no styles) or an
/// arbitrary-style one (`base_is_arbitrary`); for a conditional job a style
/// name the base already holds; for an arbitrary-style job with
/// job.distill_steps, no style name in common. Empty when it can be. Shared by
/// the preflight and the run that builds the network.
std::vector<std::string> BaseModelStyleProblems(const JobConfig& job, const std::string& base_file,
                                                const std::vector<std::string>& base_styles,
                                                bool base_is_arbitrary);

struct PreflightOptions {
  std::vector<std::string> only_styles;  ///< the `--style` selection; empty: all
  int world = 1;                         ///< ranks of the launch
  /// `train --allow-changed-settings`: changed settings of a resumed style are
  /// logged (when `log_changes`) instead of reported as problems.
  bool allow_changed_settings = false;
  bool log_changes = true;  ///< false on all ranks but one, so a launch logs them once
  /// Processes of the launch on this host, whose steps share its memory; 0
  /// skips the memory check (tensors on GPUs).
  int processes_on_host = 1;
};

/// Why a checkpoint (`checkpoint`) of a network whose rows hold `held` styles
/// cannot resume a run whose rows are `rows` (a conditional network's styles
/// in order, after job.base_model's); empty when they are the same.
std::string NetworkStylesProblem(const std::string& checkpoint,
                                 const std::vector<std::string>& held,
                                 const std::vector<std::string>& rows);

/// What `train` would meet, worked out before anything is written. Reads only.
/// Elastic resume first: each selected run that resumes (it has checkpoints)
/// on another number of ranks per style takes the batch KeepImagesPerStep
/// (run_settings.h) gives, so that its images per step stay those its
/// checkpoints were trained with; `job` is the job with those batches and
/// `notes` says what changed. A run whose images per step `options.world`
/// ranks cannot keep is a problem (unless options.allow_changed_settings: it
/// then resumes as configured, and the settings check warns). Then, on `job`,
/// the problems that would certainly stop `train`: unknown style names, a
/// content folder without images or with fewer than one step needs, a style
/// image that does not decode (DecodeStyleImages), a ranks_per_style that
/// does not divide the world, a style output folder that belongs to another
/// job or style, a base_model that does not load or does not fit the job
/// (BaseModelStyleProblems), a conditional
/// network whose checkpoints hold other styles (NetworkStylesProblem), a style
/// whose checkpoints were trained with settings that must match
/// (run_settings.h) but differ, and steps that need more memory than the host
/// has (train/memory_budget.h).
/// Without problems, `plan` is what `train` works from: `job`, its runs laid
/// onto options.world ranks, the content listing and the decoded style images.
struct Preflight {
  Preflight(const JobConfig& job, const PreflightOptions& options);
  JobConfig job;
  std::vector<std::string> notes;
  std::vector<std::string> problems;  ///< empty when none
  std::unique_ptr<TrainPlan> plan;    ///< null when there are problems
};

/// Preflight(job, options).problems: for callers that need only the problems.
std::vector<std::string> PreflightProblems(const JobConfig& job, const PreflightOptions& options);

/// Collective over `world`: first the ranks check that they run the same job
/// on the same photos and see the same output folders (train/rank_agreement.h),
/// so that a rank with another job or another folder never claims one; then each group root claims
/// and locks (common/file_lock.h) the output folder of every run of its group in `plan`, for as
/// long as the returned locks live: a second run that would train one of them fails at once. Throws
/// ConfigError when the ranks disagree, Error naming the folder and the holder's host and pid when
/// a folder is locked. The plan's trainer (TrainJob(plan, ...)) does not compare again.
std::vector<FileLock> LockStyleFolders(const TrainPlan& plan, World& world);

}  // namespace stylefleet
