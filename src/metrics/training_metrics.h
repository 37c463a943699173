// The narrow metrics interface the trainer reports to. Implementations: the
// Prometheus exporter (prometheus_metrics.h, the only prometheus-cpp user,
// whose lifecycle is the launcher's) and a null sink. Torch-free and vendor-free.
//
// Thread-safety: called from the training thread only; implementations may
// serve the values from other threads (an HTTP exposer) and synchronise inside.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "metrics/step_event.h"

namespace stylefleet {

/// Who this process is, for the `stylefleet_info` series.
struct MetricsIdentity {
  std::string job;
  int rank = 0;
  int local_rank = 0;
  std::string host;
};

/// A sink of step events (StepSink::OnStep: each style of the event that had
/// images in the step sets its series) and of the rest of training's health.
class TrainingMetrics : public StepSink {
 public:
  /// A style starts (or resumes) on this rank, in group `group`.
  /// `reports_losses`: this rank is its group's root and exports the style's
  /// series (the others would only duplicate the group averages). `labels`
  /// are added to every series of the style (a sweep run's `sweep` and its
  /// swept keys); their names must not be the exporter's own (style, layer,
  /// term, rank, ...).
  virtual void StyleStarted(
      const std::string& style, const std::vector<std::string>& layers, int group,
      bool reports_losses, const std::vector<std::pair<std::string, std::string>>& labels = {}) = 0;
  /// Content files that failed to decode (each counted once).
  virtual void ImagesSkipped(int64_t count) = 0;
  virtual void CheckpointWritten(const std::string& style, double unix_seconds) = 0;
  /// A step skipped because its loss or gradient was NaN or infinite.
  virtual void BadStep(const std::string& style) = 0;
  /// Collectives that waited past the stall warning (distributed.stall_warn_seconds).
  virtual void CollectiveStalls(int64_t count) = 0;
  virtual void StyleFinished(const std::string& style) = 0;
};

/// Reports nowhere.
std::unique_ptr<TrainingMetrics> MakeNullMetrics();

}  // namespace stylefleet
