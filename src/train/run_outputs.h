// What a style's group root writes while training: metrics.jsonl records and
// their log line, preview grids, and the progress line on a terminal.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/transformer_net.h"
#include "step/training_step.h"

namespace stylefleet {

/// One logged step of one style.
struct StepRecord {
  int64_t step = 0;
  int64_t total_steps = 0;
  int64_t epoch = 0;
  StyleStepValues values;  ///< group averages
  double images_per_second = 0;
  double eta_seconds = 0;
  int64_t skipped_images = 0;
  int ranks = 1;
};

/// The files of one style's folder that grow during training. Used on the
/// group root only; throws Error when a file cannot be written.
class RunOutputs {
 public:
  RunOutputs(std::string style_dir, std::string style_name, std::vector<std::string> style_layers);

  /// Drops metrics.jsonl records past `step` (written after the checkpoint a
  /// resume starts from) and a torn last line.
  void TrimMetrics(int64_t step) const;
  /// Appends `record` to metrics.jsonl (whole, or not at all) and logs it as
  /// one line. Throws Error when it cannot be written (full disk, read-only
  /// folder): the run stops rather than train unrecorded.
  void Record(const StepRecord& record);

  /// Loads the first few readable content files, prepared like training
  /// images, as the inputs of every preview.
  void PreparePreviews(const std::vector<std::string>& files, int image_size,
                       const torch::Device& device);
  /// Writes previews/step-NNNNNNNN.png: the inputs on top, `net`'s output
  /// below. A preview that cannot be written is a warning, not an error.
  void WritePreview(TransformerNet& net, int64_t step) const;

 private:
  void AppendMetricsLine(const std::string& line, int64_t step);

  std::string style_dir_;
  std::string style_name_;
  std::vector<std::string> style_layers_;
  torch::Tensor preview_inputs_;
  int64_t metrics_bytes_ = -1;  ///< size after our last record; -1 before the first
};

/// hh:mm:ss, or --:--:-- when unknown.
std::string FormatDuration(double seconds);

/// Redraws the one-line progress display (carriage return, no newline).
void PrintProgress(const std::string& style, int64_t step, int64_t total_steps, double loss,
                   double images_per_second, double eta_seconds);

}  // namespace stylefleet
