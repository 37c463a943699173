// Training state that goes into checkpoints and model files: the transformer,
// its optimizer, and where in the data the run stands.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "data/image.h"
#include "model/tensor_file.h"
#include "model/transformer_net.h"

namespace stylefleet {

/// Adam (Kingma & Ba) with PyTorch's update order, so that a step matches
/// torch.optim.Adam. Owning the state (rather than torch::optim::Adam) keeps
/// checkpoints plain tensors that resume bit for bit.
class Adam {
 public:
  Adam(std::vector<torch::Tensor> params, double learning_rate, double beta1 = 0.9,
       double beta2 = 0.999, double eps = 1e-8);
  /// One update from the parameters' .grad().
  void Step();
  void ZeroGrad();
  int64_t steps() const { return steps_; }
  /// State as (name suffix -> tensor) for parameter i: exp_avg, exp_avg_sq.
  torch::Tensor& exp_avg(size_t i) { return exp_avg_[i]; }
  torch::Tensor& exp_avg_sq(size_t i) { return exp_avg_sq_[i]; }
  void set_steps(int64_t steps) { steps_ = steps; }
  void set_learning_rate(double lr) { learning_rate_ = lr; }
  const std::vector<torch::Tensor>& params() const { return params_; }

 private:
  std::vector<torch::Tensor> params_, exp_avg_, exp_avg_sq_;
  double learning_rate_, beta1_, beta2_, eps_;
  int64_t steps_ = 0;
};

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
/// `stylefleet.*` metadata (head, job, style, image size).
TensorDict ModelDict(TransformerNet& net, const ModelInfo& info);

/// ModelDict plus optimizer state (for TrainableParameters, in that order),
/// position and RNG state.
TensorDict CheckpointDict(TransformerNet& net, Adam& adam, const RunPosition& position,
                          const ModelInfo& info);

/// Restores what CheckpointDict wrote. Throws DataError naming `path` and the key.
RunPosition RestoreCheckpoint(const TensorDict& dict, const std::string& path, TransformerNet& net,
                              Adam& adam);

/// An image as a 1 x 3 x H x W float tensor, RGB 0..255 (CPU).
torch::Tensor ImageToTensor(const RgbImage& image);

/// One image from a 3 x H x W or 1 x 3 x H x W tensor (any device), clamped to 0..255.
RgbImage TensorToImage(const torch::Tensor& image);

/// Indices (0..12) of VGG-16 layer names; throws ConfigError naming an unknown one.
std::vector<int> VggLayerIndices(const std::vector<std::string>& names);

/// Loads a transformer from a model file, a checkpoint, a style output folder
/// (its model.pt, else its newest checkpoint) or a PyTorch-example .pth.
TransformerNet LoadTransformer(const std::string& path, std::string* resolved = nullptr);

}  // namespace stylefleet
