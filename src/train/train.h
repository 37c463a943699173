// Training a job: what `stylefleet train` runs. Torch-free on purpose: src/cli
// includes only this header and compiles without LibTorch's headers.
#pragma once

#include <string>
#include <vector>

#include "comm/world.h"
#include "config/job_config.h"
#include "metrics/training_metrics.h"
#include "train/train_plan.h"

namespace stylefleet {

struct TrainRunOptions {
  /// Intra-op threads for LibTorch; 0 means one per core.
  int threads = 0;
  /// Train only these styles (by name); empty trains all.
  std::vector<std::string> only_styles;
  /// Show a one-line progress display when stdout is a terminal.
  bool progress = true;
  /// Resume a style even when settings that change what it learns (OnResume::
  /// kMustMatch) differ from those recorded with its checkpoints; the
  /// differences are logged. When false such a resume throws ConfigError.
  bool allow_changed_settings = false;
  /// Where losses and training health go; nullptr reports nowhere.
  TrainingMetrics* metrics = nullptr;
  /// Test-only fault injection, entries "STYLE:STEP:KIND": that style's step
  /// (1-based) gets fault KIND on this rank, one of nan-loss, inf-loss,
  /// nan-gradient, inf-gradient (step/injected_fault.h)
  /// (`stylefleet train --test-inject-fault`; `--test-inject-nan STYLE:STEP`
  /// is STYLE:STEP:nan-loss).
  std::vector<std::string> inject_faults;
  /// Test-only, entries "STYLE": this rank builds that style's initial model
  /// from another seed, as a rank with a wrong seed would; only the root's
  /// state broadcast makes the replicas equal again.
  std::vector<std::string> reseed_initial_model;
  /// Test-only fault injection, entries "STYLE:STEP": after that step's update
  /// this rank's replica is perturbed (the first parameter moves by 1e-3), as
  /// a broken rank or network would (`--test-perturb-replica`).
  std::vector<std::string> perturb_replica;
  /// When set, each rank writes a Chrome-trace JSON of its step phases (data,
  /// transformer forward, loss network, loss, backward, allreduce, optimizer)
  /// here; under mpirun the rank number goes before the extension
  /// (trace.json -> trace.rank1.json). Open it in Perfetto or chrome://tracing.
  std::string trace_path;
};

/// How a TrainJob call ended when it did not throw.
struct TrainOutcome {
  /// A stop signal arrived: every running style wrote a checkpoint; rerunning resumes.
  bool stopped = false;
  /// Styles stopped by numerical faults (max_bad_steps); the others trained.
  std::vector<std::string> failed_styles;
};

/// Trains the runs of `plan` (train/train_plan.h), resuming each from its
/// newest checkpoint; a style already finished is skipped. Checks, the ranks'
/// agreement and locks are the caller's (train/preflight.h: Preflight gives
/// the plan, LockStyleFolders compares the ranks and is held while it runs),
/// as `stylefleet train` does (train/launch.h). Collective over `world`, of
/// the size the plan was laid out for: the runs are laid onto groups of ranks
/// (see train/style_schedule.h), each group trains its runs one after another,
/// data-parallel. Throws Error (or DataError, ConfigError) when a style
/// cannot be trained, on every rank of its group.
TrainOutcome TrainJob(const TrainPlan& plan, const TrainRunOptions& options, World& world);

/// The same from a job, without a preflight: plans the runs of
/// options.only_styles (PlanTraining: the ranks' agreement included) with the
/// test hooks of `options` (train/test_hooks.h), then trains.
TrainOutcome TrainJob(const JobConfig& job, const TrainRunOptions& options, World& world);

/// The same in a world of one process.
TrainOutcome TrainJob(const JobConfig& job, const TrainRunOptions& options);

}  // namespace stylefleet
