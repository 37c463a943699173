// One step of one training run as every sink sees it: the metrics.jsonl
// record and its log line (train/run_outputs.h), the Prometheus series
// (metrics/training_metrics.h) and the progress line on a terminal. The run
// (train/style_run.cc) fills one event per step; each sink takes from it what
// it shows. Torch-free and vendor-free.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace stylefleet {

/// Loss values averaged over `images` images of a group: the seed's
/// unweighted terms.
struct LossValues {
  double content = 0, style = 0, tv = 0, total = 0;
  std::vector<double> style_layers;  ///< one per style layer, in the style's order
  int64_t images = 0;
};

/// One style's part of a step: a per-style run has one, a conditional
/// network one per style it trains.
struct StyleStepEvent {
  std::string style;
  /// This step's group averages; `images` 0 when the step held none of the
  /// style's images (a conditional network's style).
  LossValues step;
  /// On a step that writes a record (training.log_every_steps): the mean
  /// over the style's images since its previous record, in the steps that
  /// updated the network (`images` 0 when none did). Unset on other steps, and
  /// for a conditional network's style that had no image since its record.
  std::optional<LossValues> window;
  double content_weight = 0, style_weight = 0, tv_weight = 0;
  double learning_rate = 0;
};

struct StepEvent {
  std::string run;  ///< the run's name: the style's, or the conditional network's
  int64_t step = 0;
  int64_t total_steps = 0;
  int64_t epoch = 0;          ///< the epoch the step is in
  double epoch_position = 0;  ///< fractional epoch position after the step
  int64_t images = 0;         ///< images the step consumed across the group
  double total_loss = 0;      ///< the run's weighted total this step
  bool bad = false;           ///< NaN or Inf: the update was skipped
  bool record = false;        ///< the step writes records (training.log_every_steps)
  std::vector<StyleStepEvent> styles;
  double step_seconds = 0;       ///< wall time of the step on this rank
  double data_wait_seconds = 0;  ///< of which waiting for the loader
  double allreduce_seconds = 0;  ///< of which in the gradient allreduce
  double eta_seconds = 0;
  /// Images per second over the window since the previous record (set on
  /// record steps).
  double window_images_per_second = 0;
  int64_t skipped_images = 0;  ///< content files skipped so far (undecodable)
  int ranks = 1;               ///< ranks of the group
};

/// A consumer of step events.
class StepSink {
 public:
  virtual ~StepSink() = default;
  virtual void OnStep(const StepEvent& event) = 0;
};

}  // namespace stylefleet
