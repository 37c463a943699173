// One style's training run inside a group of ranks: its model, optimizer and
// state, and what happens around each step (metrics, logs, previews,
// checkpoints, replica checks). The step itself is step/training_step.h.
#pragma once

#include <torch/torch.h>

#include <atomic>
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
#include "train/background_writer.h"
#include "train/held_out_styles.h"
#include "train/network_styles.h"
#include "train/run_outputs.h"
#include "train/train.h"

namespace stylefleet {

/// What every style run of a group shares. Not owned; outlives the runs.
struct StyleRunContext {
  /// The job, its content files (the same on every rank) and its decoded style images.
  const TrainPlan* plan = nullptr;
  const Vgg16* vgg = nullptr;
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
///
/// A run trains one network: a style's own, or for a conditional job
/// (job.network) the one network of all its styles, given as the job's
/// `conditional_run`; the styles of either are its NetworkStyles
/// (train/network_styles.h). The network's model and checkpoints go to the
/// run's folder; each style keeps its metrics, previews and final images in
/// its own folder (a per-style network's is the run's), and its own metrics
/// series.
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
  bool conditional() const { return styles_.conditional(); }
  std::vector<torch::Tensor> GramsOf(const StyleSpec& style, const std::vector<int>& layers) const;
  void ComputeStyleGrams();
  void CheckPredictorLayers(const TensorDict& dict, const std::string& path) const;
  void BuildModel();
  ModelInfo Info() const;
  // The logging windows a checkpoint keeps, one per style of the network, so
  // that a resumed run's records equal an uninterrupted run's.
  std::vector<std::vector<double>> LogWindows() const;
  void PrepareValidation();
  void WriteFinalImages();
  // Root only: the run's previews (a conditional network's: each style's, and
  // one with a row per style), computed here and written in the background.
  void SubmitPreviews(int64_t step);
  // Root only: an arbitrary-style network's held-out styles (job.held_out_styles),
  // their Gram targets and summaries computed once; null when it has none.
  void PrepareHeldOut();
  // Root only: their losses now, recorded in held_out.jsonl and logged.
  void MeasureHeldOut(int64_t step);
  // Root only: a snapshot of the network and optimizer, written in the background.
  void SubmitCheckpoint(const RunPosition& position);
  // Root only: counts the checkpoints written since the last call in the metrics.
  void ReportWrittenCheckpoints();
  RunPosition Resume();
  void CheckCheckpointBelongsHere(const TensorDict& dict, const std::string& path,
                                  const RunPosition& position) const;
  void BroadcastRootState();
  void CheckReplicasAgree(int64_t step);
  // This step for the sinks: the run's style, or each of a conditional
  // network's, with the windows since their last record when `record`.
  StepEvent MakeStepEvent(const RunPosition& position, const StyleStepValues& values,
                          const StepTiming& timing, bool record) const;
  void RecordStep(const StepEvent& event);
  void CountBadStep(int64_t step, bool bad);
  // Writes `dict` as the checkpoint of `step` and prunes the old ones; on the
  // background writer's thread or, for a stop signal, on the training thread.
  void WriteCheckpoint(const TensorDict& dict, int64_t step);
  void WriteModel();
  bool Due(int64_t step, int64_t every) const;

  StyleRunContext context_;
  const JobConfig& job_;
  const StyleSpec& style_;
  Communicator& control_;
  Communicator& tensors_;
  const bool root_;
  LossNetworkUse loss_use_;
  LossWeights weights_;
  RunOutputs outputs_;
  ProgressLine progress_;
  NetworkStyles styles_;    // after outputs_, which it may point at
  ConditionalBatch batch_;  // a conditional network's, its rows this step's (ForStep)
  TransformerNet net_{nullptr};
  std::unique_ptr<Adam> adam_;
  std::unique_ptr<GradientBuckets> buckets_;
  std::unique_ptr<HeldOutStyles> held_out_;  // root only
  RunPosition position_;
  int64_t per_epoch_ = 0;
  int64_t total_steps_ = 0;
  int bad_in_a_row_ = 0;
  int64_t steps_this_run_ = 0;
  double window_seconds_ = 0;
  int64_t window_images_ = 0;
  std::chrono::steady_clock::time_point run_start_;
  // Set by the background writer's checkpoint tasks.
  std::atomic<int64_t> checkpoints_written_{0};
  std::atomic<double> last_checkpoint_unix_{0};
  int64_t checkpoints_reported_ = 0;
  // Root only; declared last, so that it drains before the state its tasks
  // name (outputs_, the style) is destroyed.
  std::unique_ptr<BackgroundWriter> writer_;
};

/// bf16 where it pays: always on GPUs, on CPUs with BF16 dot-product
/// instructions (else fp32, with one warning).
Precision EffectivePrecision(const std::string& configured, const torch::Device& device);

}  // namespace stylefleet
