// What the command-line tool runs. Torch-free on purpose: src/cli includes
// only this header and compiles without LibTorch's headers.
#pragma once

#include <string>
#include <vector>

#include "config/job_config.h"
#include "dist/world.h"
#include "metrics/training_metrics.h"

namespace stylefleet {

struct TrainRunOptions {
  /// Intra-op threads for LibTorch; 0 means one per core.
  int threads = 0;
  /// Train only these styles (by name); empty trains all.
  std::vector<std::string> only_styles;
  /// Show a one-line progress display when stdout is a terminal.
  bool progress = true;
  /// Where losses and training health go; nullptr reports nowhere.
  TrainingMetrics* metrics = nullptr;
  /// Test-only fault injection, entries "STYLE:STEP": the loss of that style's
  /// step (1-based) is made NaN on this rank (`stylefleet train --test-inject-nan`).
  std::vector<std::string> inject_nan;
};

/// How a TrainJob call ended when it did not throw.
struct TrainOutcome {
  /// A stop signal arrived: every running style wrote a checkpoint; rerunning resumes.
  bool stopped = false;
  /// Styles stopped by numerical faults (max_bad_steps); the others trained.
  std::vector<std::string> failed_styles;
};

/// Trains the styles of `job`, resuming each from its newest checkpoint; a
/// style already finished is skipped. Collective over `world`: the styles are
/// laid onto groups of ranks (see train/style_schedule.h), each group trains
/// its styles one after another, data-parallel. Throws Error (or DataError,
/// ConfigError) when a style cannot be trained, on every rank of its group.
TrainOutcome TrainJob(const JobConfig& job, const TrainRunOptions& options, World& world);

/// The same in a world of one process.
TrainOutcome TrainJob(const JobConfig& job, const TrainRunOptions& options);

struct StylizeOptions {
  std::string model;                ///< model.pt, a checkpoint, a style's folder, or an exported/PyTorch-example .pth
  std::vector<std::string> inputs;  ///< image files or folders of images
  std::string output_dir;
  std::string format = "jpg";       ///< jpg or png
  /// Images with a side longer than this are stylized in overlapping tiles of
  /// this size (bounded memory); 0 never tiles.
  int tile_size = 1024;
  int tile_overlap = 64;
  int threads = 0;
};

/// Stylizes every input; returns the paths written. Throws on a bad model; a
/// bad input image is reported and skipped, and counts as a failure in the result.
struct StylizeResult {
  std::vector<std::string> written;
  std::vector<std::string> failed;
};
StylizeResult StylizeImages(const StylizeOptions& options);

/// Writes the transformer of `model` as a plain state dict with the PyTorch
/// example's parameter names, loadable by `torch.load` + `load_state_dict`.
void ExportModel(const std::string& model, const std::string& output);

struct LossesOptions {
  std::string loss_network;  ///< weights file or random:SEED
  std::string model;         ///< transformer to stylize the content with; empty: the content itself
  std::string content;
  std::string style;
  int image_size = 256;
  const JobConfig* job = nullptr;  ///< layers and weights from here when set (first style's weights)
};

/// The seed's loss terms for one content image as a JSON document.
std::string ComputeLossesJson(const LossesOptions& options);

}  // namespace stylefleet
