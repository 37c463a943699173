// What a style's group root writes while training: metrics.jsonl records and
// their log line, preview grids, and the progress line on a terminal.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "config/job_config.h"
#include "metrics/step_event.h"
#include "model/transformer_net.h"
#include "step/training_step.h"

namespace stylefleet {

/// The files of one style's folder that grow during training. Used on the
/// group root only; throws Error when a file cannot be written.
class RunOutputs : public StepSink {
 public:
  RunOutputs(std::string style_dir, std::string style_name, std::vector<std::string> style_layers);

  /// Drops metrics.jsonl (and held_out.jsonl) records past `step` (written
  /// after the checkpoint a resume starts from) and a torn last line.
  void TrimMetrics(int64_t step) const;
  /// When `event` holds a window for this folder's style: appends its record
  /// to metrics.jsonl (whole, or not at all) and logs it as one line. Throws
  /// Error when it cannot be written (full disk, read-only folder): the run
  /// stops rather than train unrecorded.
  void OnStep(const StepEvent& event) override;

  /// Chooses and loads the validation photos that previews and final images
  /// show: data.validation_images, or when it is empty the first 4 readable
  /// `content_files` (the loader's sorted order). A listed photo that cannot
  /// be decoded is left out with a warning (broken content files are the
  /// loader's to report). Previews show them prepared like training images.
  void PrepareValidation(const DataOptions& data, const std::vector<std::string>& content_files,
                         const torch::Device& device);
  /// A preview in two halves, so that the image can be encoded and written
  /// on another thread: the grid (the validation photos on top, one row per
  /// network of `nets` below, e.g. a conditional network's styles in its
  /// order; undefined when there are no validation photos), and its file
  /// previews/step-NNNNNNNN.png. A preview that cannot be written is a
  /// warning, not an error.
  torch::Tensor PreviewGrid(const std::vector<TransformerNet*>& nets) const;
  void WritePreviewGrid(const torch::Tensor& grid, int64_t step) const;
  /// Writes final/NN-<stem>.png, `net`'s stylization of each validation photo
  /// (NN its position from 01) resized so that its shorter side is
  /// data.image_size, not cropped, and removes final images of photos no
  /// longer in the set. Never throws: what cannot be written is a warning.
  /// Warns, with what to change, when the stylizations are nearly uniform
  /// although the photos are not (a model that learned little).
  void WriteFinalImages(TransformerNet& net) const;
  /// The validation photos prepared as previews show them (V x 3 x S x S,
  /// 0..255, on the run's device); undefined when none decoded.
  const torch::Tensor& validation_batch() const { return preview_inputs_; }
  /// Appends `line`, an arbitrary-style network's held-out record of `step`
  /// (train/held_out_styles.h), to held_out.jsonl, as OnStep appends to
  /// metrics.jsonl (whole or not at all; throws Error when it cannot).
  void AppendHeldOutLine(const std::string& line, int64_t step);

 private:
  // Appends `line` to the folder's `file`; `bytes` is the file's size after
  // our last record (-1 before the first), to notice a file cut meanwhile.
  void AppendRecordLine(const char* file, const std::string& line, int64_t step, int64_t& bytes);

  std::string style_dir_;
  std::string style_name_;
  std::vector<std::string> style_layers_;
  std::vector<std::string> validation_photos_;  ///< those that decoded, in order
  int image_size_ = 0;
  int64_t max_image_pixels_ = 0;
  torch::Device device_{torch::kCPU};
  torch::Tensor preview_inputs_;
  int64_t metrics_bytes_ = -1;  ///< size after our last record; -1 before the first
  int64_t held_out_bytes_ = -1;
};

/// hh:mm:ss, or --:--:-- when unknown.
std::string FormatDuration(double seconds);

/// The one-line progress display on a terminal: each event redraws it
/// (carriage return), and a step that writes records ends it, so that their
/// log lines start on a line of their own.
class ProgressLine : public StepSink {
 public:
  void OnStep(const StepEvent& event) override;
};

}  // namespace stylefleet
