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
  std::string style;
  int64_t image_size = 0;
};

/// The transformer's parameters under the PyTorch example's names, plus
/// `stylefleet.*` metadata (head, job, style, image size) and a checksum of it all.
TensorDict ModelDict(TransformerNet& net, const ModelInfo& info);

/// ModelDict plus optimizer state (for TrainableParameters, in that order),
/// position and RNG state.
TensorDict CheckpointDict(TransformerNet& net, Adam& adam, const RunPosition& position,
                          const ModelInfo& info);

/// Restores what CheckpointDict wrote. Throws DataError naming `path` and the
/// key, and when the file is damaged (its `stylefleet.checksum`, an FNV-1a of
/// every entry, does not match) or holds NaN/Inf values: the caller then falls
/// back to an older checkpoint.
RunPosition RestoreCheckpoint(const TensorDict& dict, const std::string& path, TransformerNet& net,
                              Adam& adam);

/// Loads a transformer from a model file, a checkpoint, a style output folder
/// (its model.pt, else its newest checkpoint) or a PyTorch-example .pth.
TransformerNet LoadTransformer(const std::string& path, std::string* resolved = nullptr);

}  // namespace stylefleet
