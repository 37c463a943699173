// The styles one network trains. A per-style network is the one-member case:
// its one style, whose folder is the run's. A conditional network
// (job.network) has one member per style of the job, each a row of its
// instance norms after a base model's rows, each with its own folder for its
// metrics, previews and final images; the network's own folder holds its
// model and checkpoints. An arbitrary-style network has the same members and
// folders; each member's norms are the predictor's of its style image.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "config/job_config.h"
#include "model/transformer_net.h"
#include "step/forward_pass.h"
#include "step/training_step.h"
#include "train/run_outputs.h"

namespace stylefleet {

struct LoadedModel;  // checkpoint/model_file.h

/// One style a network trains.
struct NetworkMember {
  const StyleSpec* spec = nullptr;
  /// Where its records, previews and final images go: the run's outputs for
  /// a per-style network, its own folder's for a conditional network's style.
  RunOutputs* outputs = nullptr;
  std::vector<torch::Tensor> grams;  ///< its Gram targets, one per style layer
  std::vector<int> style_layers;     ///< VGG indices of its style layers
  /// An arbitrary-style network's: its style image's StyleSummary at
  /// SummaryLayers(), [1 x S], what the predictor makes its norms from.
  torch::Tensor summary;
  /// Its values since the last record, image-weighted (AddWeightedValues): a
  /// conditional network's step may hold none of a style's images.
  std::vector<double> window_sums;
  std::unique_ptr<RunOutputs> own_outputs;  ///< a conditional network's style's
};

/// Not thread-safe. The job, the run's style and `run_outputs` outlive it.
class NetworkStyles {
 public:
  /// `run` is the job's `conditional_run` for its conditional network, else
  /// one of its styles; `run_outputs` writes to `run`'s folder.
  NetworkStyles(const JobConfig& job, const StyleSpec& run, RunOutputs* run_outputs);

  /// True for a conditional or arbitrary-style network (one for all styles).
  bool conditional() const { return conditional_; }
  /// True for an arbitrary-style network.
  bool arbitrary() const { return arbitrary_; }
  /// The loss-network layers (VGG indices) of an arbitrary-style network's
  /// style summaries; empty for the other kinds.
  std::vector<int> SummaryLayers() const;
  std::vector<NetworkMember>& members() { return members_; }
  const std::vector<NetworkMember>& members() const { return members_; }
  /// Every folder's outputs once: each member's, then a conditional network's own.
  std::vector<RunOutputs*> AllOutputs() const;

  /// Throws Error, before anything is claimed, when a member's folder belongs
  /// to a run of the other kind (checkpoint/checkpoint_files.h).
  void CheckFoldersFree() const;
  /// Root only: claims a conditional network's style folders (the run's own
  /// folder is claimed by the caller, for both kinds).
  void ClaimMemberFolders() const;

  /// The network, its initial weights drawn from `seed`: a per-style network,
  /// or a conditional one with one row per member, after job.base_model's
  /// rows (loaded here; its shared layers frozen) when the job names one, or
  /// an arbitrary-style one with the job's predictor (and job.base_model's
  /// convolutions, its predictor fitted for job.distill_steps to the base's
  /// rows of the members it also has, which need their summaries set).
  /// Throws ConfigError when the base model does not fit the job.
  TransformerNet Build(uint64_t seed);
  /// Every row's style, in row order, as model files list them; empty for a
  /// per-style network. Set by Build.
  const std::vector<std::string>& row_names() const { return row_names_; }

  /// Member `j`'s values in a step's: the step's own for a per-style network.
  const StyleStepValues& ValuesOf(const StyleStepValues& step, size_t j) const;
  /// Member `j` as a per-style network: `net` itself for a per-style network;
  /// for an arbitrary-style one, the norms predicted from its summary.
  TransformerNet MemberNet(TransformerNet& net, size_t j) const;

  /// A conditional network's batch before its rows: the members' targets (and
  /// an arbitrary-style network's members' summaries, which must be set).
  ConditionalBatch Batch() const;
  /// The style rows of this rank's `local` images at `step` (1-based), int64
  /// on the CPU. The group's images are dealt to the styles in turns of one
  /// image per style, each turn in an order drawn from the job seed, so that
  /// every style gets the same number of images (give or take one) whatever
  /// the batch size.
  torch::Tensor RowsAt(int64_t step, int64_t local, int world, int rank) const;

 private:
  const JobConfig& job_;
  const StyleSpec& run_;
  RunOutputs* run_outputs_;
  const bool conditional_;
  const bool arbitrary_;
  // job.base_model, loaded; ConfigError when it does not fit the job.
  LoadedModel LoadBaseModel() const;
  // Fits `net`'s predictor to `base`'s rows (job.distill_steps; see Build).
  void DistillPredictor(TransformerNet& net, LoadedModel& base) const;

  std::vector<NetworkMember> members_;
  int64_t first_row_ = 0;  // row of members_[0] (after a base model's styles)
  std::vector<std::string> row_names_;
};

}  // namespace stylefleet
