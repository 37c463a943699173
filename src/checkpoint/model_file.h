// Training state that goes into checkpoints and model files: the transformer,
// its optimizer, and where in the data the run stands.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "model/tensor_file.h"
#include "model/transformer_net.h"
#include "optim/adam.h"

namespace stylefleet {

/// Where a run stands: `step` updates done; the next batch is `batch` of `epoch`.
struct RunPosition {
  int64_t step = 0;
  int64_t epoch = 0;
  int64_t batch = 0;
};

/// Metadata stored with every checkpoint and model.
struct ModelInfo {
  std::string job;
  std::string style;  ///< a conditional network's: the name of its job's network folder
  int64_t image_size = 0;
  /// A conditional network's style names, in row order (`stylefleet.styles`,
  /// joined by newlines); empty for a per-style network.
  std::vector<std::string> styles{};  // {}: lets {job, style, size} leave it empty
  /// An arbitrary-style network's loss network (`stylefleet.loss_network`:
  /// its weights file or random:SEED) and the side its style images were
  /// resized to for their summaries (`stylefleet.style_image_size`): what
  /// stylize needs to summarize a new style image as training did.
  std::string loss_network{};
  int64_t style_image_size = 0;
};

/// Appends what marks a conditional network's file: `stylefleet.network`
/// ("conditional") and `stylefleet.styles` (`styles` joined by newlines).
void AppendConditionalEntries(const std::vector<std::string>& styles, TensorDict& dict);

/// The style predictor's shape an arbitrary-style network's model or
/// checkpoint file records (its summary layers as VGG indices, in order, and
/// its embedding size), checked against the predictor's tensors before
/// anything is built. Throws DataError naming `path` and the key.
PredictedNorms ReadPredictedNorms(const TensorDict& dict, const std::string& path);

/// The style names a model or checkpoint file's dict lists (`stylefleet.styles`);
/// empty for a per-style network.
std::vector<std::string> ModelStyleNames(const TensorDict& dict);

/// The job and style a model or checkpoint file was written for
/// (`stylefleet.job`, `stylefleet.style`); empty strings where it has none.
struct ModelOwner {
  std::string job, style;
};
ModelOwner ReadModelOwner(const TensorDict& dict);

/// The transformer's parameters under the PyTorch example's names, plus
/// `stylefleet.*` metadata (head, job, style, image size; for a conditional
/// network `stylefleet.network` = "conditional" and the style names) and a
/// checksum of it all.
TensorDict ModelDict(TransformerNet& net, const ModelInfo& info);

/// ModelDict plus optimizer state (for TrainableParameters, in that order),
/// position and RNG state, and `log_windows`: for a conditional network, each
/// style's sums of loss values since its last metrics line, so that the first
/// line after a resume covers the same steps as it would have without the stop.
TensorDict CheckpointDict(TransformerNet& net, Adam& adam, const RunPosition& position,
                          const ModelInfo& info,
                          const std::vector<std::vector<double>>& log_windows = {});

/// The first `count` log windows CheckpointDict stored in `dict`; an empty one
/// where the file holds none (written before they were kept, or empty).
std::vector<std::vector<double>> ReadLogWindows(const TensorDict& dict, size_t count);

/// Restores what CheckpointDict wrote. Throws DataError naming `path` and the
/// key, and when the file is damaged (its `stylefleet.checksum`, an FNV-1a of
/// every entry, does not match), holds NaN/Inf values, or a value out of range
/// (a negative or impossible position, optimizer state whose shape or dtype is
/// not its parameter's, an RNG state the CPU generator rejects): the caller
/// then falls back to an older checkpoint. A file it rejects leaves `net`,
/// `adam` and the generator as they were.
RunPosition RestoreCheckpoint(const TensorDict& dict, const std::string& path, TransformerNet& net,
                              Adam& adam);

/// `dict` with its `stylefleet.checksum` computed over its entries as they are
/// now: for tests and tools that change a file's entries on purpose.
TensorDict RecomputeChecksum(TensorDict dict);

/// A trained network as a file holds it.
struct LoadedModel {
  TransformerNet net{nullptr};  ///< in eval mode; conditional when `styles` is not empty
  std::vector<std::string> styles;
  std::string file;  ///< the file read
  /// An arbitrary-style network's (net->predicts_norms(); `styles` empty):
  /// the styles it was trained on, in job order, and its ModelInfo's
  /// loss network and style image size.
  std::vector<std::string> trained_styles{};
  std::string loss_network{};
  int64_t style_image_size = 0;
};

/// Loads a transformer, per-style, conditional or arbitrary-style, from a model file, a
/// checkpoint, an output folder (its model.pt, else its newest checkpoint) or
/// a PyTorch-example .pth. Throws DataError naming the file when it is
/// unreadable or damaged, or its style names do not match its rows.
LoadedModel LoadModel(const std::string& path);

/// LoadModel for the uses that need a per-style network (`losses --model`):
/// throws DataError for a conditional one, listing its styles.
TransformerNet LoadTransformer(const std::string& path, std::string* resolved = nullptr);

}  // namespace stylefleet
