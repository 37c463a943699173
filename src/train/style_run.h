// One style's training run inside a group of ranks: its model, optimizer and
// state, and what happens around each step (metrics, logs, previews,
// checkpoints, replica checks). The step itself is step/training_step.h.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/model_file.h"
#include "common/error.h"
#include "config/job_config.h"
#include "metrics/training_metrics.h"
#include "model/vgg16.h"
#include "optim/adam.h"
#include "runtime/rank_runtime.h"
#include "step/training_step.h"
#include "train/run_outputs.h"
#include "train/train.h"

namespace stylefleet {

/// What every style run of a group shares. Not owned; outlives the runs.
struct StyleRunContext {
  const JobConfig* job = nullptr;
  const Vgg16* vgg = nullptr;
  const std::vector<std::string>* files = nullptr;  ///< the content files, same on every rank
  const TrainRunOptions* options = nullptr;
  RankRuntime* runtime = nullptr;
  int group_index = 0;
  TrainingMetrics* metrics = nullptr;
};

/// What a step cost, shared by the styles trained in it.
struct StepTiming {
  double seconds = 0;          ///< wall time of the step
  double average_seconds = 0;  ///< moving average, for the ETA
  double data_wait = 0;
  double allreduce_seconds = 0;
  int images = 0;    ///< per style, over the group
  double epoch = 0;  ///< fractional
  int64_t skipped_files = 0;
  bool tty = false;       ///< draw the progress line
  bool stopping = false;  ///< a stop signal: StopHere writes the checkpoint
};

/// A style stopped by numerical faults (training.max_bad_steps); the job's
/// other styles go on.
class NumericalFault : public Error {
 public:
  using Error::Error;
};

/// Every method is collective over the group (runtime->control() and
/// runtime->tensors()); only the group root writes files. Not thread-safe.
class StyleRun {
 public:
  StyleRun(const StyleRunContext& context, const StyleSpec& style);

  /// Claims the output folder, computes the style grams, builds the model (or
  /// resumes it from the newest readable checkpoint) and gives every rank the
  /// root's state. Returns false when the style is already trained (its model
  /// is then written again).
  bool Prepare();
  /// Announces the run, starts its metrics and previews.
  void Start(int styles_together);
  /// The style as the next step (1-based `step`) trains it.
  StepStyle ForStep(int64_t step);
  /// Everything after a step: metrics, progress, replica check, log record,
  /// preview, fault count (throws NumericalFault past max_bad_steps) and
  /// checkpoint.
  void AfterStep(const RunPosition& position, const StyleStepValues& values,
                 const StepTiming& timing);
  /// A stop signal: a checkpoint at the current position.
  void StopHere();
  /// The end of training: the final model.
  void Finish();

  const StyleSpec& style() const { return style_; }
  const RunPosition& position() const { return position_; }
  int64_t total_steps() const { return total_steps_; }
  const LossNetworkUse& loss_use() const { return loss_use_; }

 private:
  void ComputeStyleGrams();
  void BuildModel();
  RunPosition Resume();
  void BroadcastRootState();
  void CheckReplicasAgree(int64_t step);
  void ReportStep(const RunPosition& position, const StyleStepValues& values,
                  const StepTiming& timing, double eta);
  void CountBadStep(int64_t step, bool bad);
  void WriteCheckpoint(const RunPosition& position);
  void WriteModel();
  bool Due(int64_t step, int64_t every) const;
  bool Injected(const std::vector<std::string>& faults, int64_t step) const;
  InjectedFault FaultAt(int64_t step) const;

  StyleRunContext context_;
  const JobConfig& job_;
  const StyleSpec& style_;
  Communicator& control_;
  Communicator& tensors_;
  const bool root_;
  LossNetworkUse loss_use_;
  LossWeights weights_;
  RunOutputs outputs_;
  std::vector<torch::Tensor> style_grams_;
  TransformerNet net_{nullptr};
  std::unique_ptr<Adam> adam_;
  std::unique_ptr<GradientBuckets> buckets_;
  RunPosition position_;
  int64_t per_epoch_ = 0;
  int64_t total_steps_ = 0;
  int bad_in_a_row_ = 0;
  int64_t steps_this_run_ = 0;
  double window_seconds_ = 0;
  int64_t window_images_ = 0;
  std::chrono::steady_clock::time_point run_start_;
};

/// bf16 where it pays: always on GPUs, on CPUs with BF16 dot-product
/// instructions (else fp32, with one warning).
Precision EffectivePrecision(const std::string& configured, const torch::Device& device);

}  // namespace stylefleet
