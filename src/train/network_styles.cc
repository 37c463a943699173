#include "train/network_styles.h"

#include <ATen/CPUGeneratorImpl.h>

#include "checkpoint/checkpoint_files.h"
#include "checkpoint/model_file.h"
#include "common/error.h"
#include "common/fnv1a.h"
#include "common/log.h"
#include "common/vgg_layers.h"
#include "train/preflight.h"

namespace stylefleet {

namespace {

// Adam's learning rate for job.distill_steps. The predictor's maps divide by
// their input counts so that a step moves the norms by about this much. Two
// similar test images took 2,000 steps to fit to 1e-6 of the start's
// difference (300 left a fifth): the rows' common part fits at once, what
// tells the styles apart slowly. Each step is two small matrix products.
constexpr double kDistillLearningRate = 0.01;

}  // namespace

NetworkStyles::NetworkStyles(const JobConfig& job, const StyleSpec& run, RunOutputs* run_outputs)
    : job_(job),
      run_(run),
      run_outputs_(run_outputs),
      conditional_(&run == &job.conditional_run),
      arbitrary_(conditional_ && job.network == "arbitrary") {
  const auto add = [&](const StyleSpec& spec, RunOutputs* outputs) {
    NetworkMember m;
    m.spec = &spec;
    m.style_layers = VggLayerIndices(spec.training.style_layers);
    if (outputs == nullptr) {
      m.own_outputs =
          std::make_unique<RunOutputs>(spec.output_dir, spec.name, spec.training.style_layers);
      outputs = m.own_outputs.get();
    }
    m.outputs = outputs;
    members_.push_back(std::move(m));
  };
  if (!conditional_) {
    add(run, run_outputs);
    return;
  }
  for (const StyleSpec& member : job.styles) add(member, nullptr);
}

std::vector<RunOutputs*> NetworkStyles::AllOutputs() const {
  std::vector<RunOutputs*> all;
  for (const NetworkMember& m : members_) all.push_back(m.outputs);
  if (conditional_) all.push_back(run_outputs_);
  return all;
}

void NetworkStyles::CheckFoldersFree() const {
  if (!conditional_) {
    const std::string conflict = ConditionalStyleDirConflict(run_.output_dir);
    if (!conflict.empty()) throw Error("style '" + run_.name + "': " + conflict);
    return;
  }
  for (const NetworkMember& m : members_) {
    const std::string conflict = PerStyleRunConflict(m.spec->output_dir, job_.network);
    if (!conflict.empty()) throw Error("style '" + m.spec->name + "': " + conflict);
  }
}

void NetworkStyles::ClaimMemberFolders() const {
  if (!conditional_) return;
  for (const NetworkMember& m : members_) {
    ClaimConditionalStyleDir(m.spec->output_dir, job_.name, m.spec->name, job_.network);
  }
}

std::vector<int> NetworkStyles::SummaryLayers() const {
  return arbitrary_ ? VggLayerIndices(job_.predictor_layers) : std::vector<int>{};
}

TransformerNet NetworkStyles::Build(uint64_t seed) {
  if (!conditional_) {
    TransformerNet net;
    InitializeTransformer(net, seed);
    return net;
  }
  std::vector<std::string> names;
  for (const NetworkMember& m : members_) names.push_back(m.spec->name);
  if (arbitrary_) {
    const PredictedNorms shape{SummaryLayers(), job_.predictor_embedding_size};
    first_row_ = 0;
    row_names_ = names;
    if (job_.base_model.empty()) {
      TransformerNet net{shape};
      InitializeTransformer(net, seed);
      return net;
    }
    LoadedModel base = LoadBaseModel();
    TransformerNet net = ArbitraryTransformer(base.net, shape, seed);
    if (job_.distill_steps > 0) DistillPredictor(net, base);
    return net;
  }
  if (job_.base_model.empty()) {
    TransformerNet net(static_cast<int64_t>(members_.size()));
    InitializeTransformer(net, seed);
    first_row_ = 0;
    row_names_ = names;
    return net;
  }
  LoadedModel base = LoadBaseModel();
  first_row_ = static_cast<int64_t>(base.styles.size());
  TransformerNet net =
      ExtendedTransformer(base.net, first_row_ + static_cast<int64_t>(names.size()));
  FreezeSharedLayers(net);
  row_names_ = base.styles;
  row_names_.insert(row_names_.end(), names.begin(), names.end());
  return net;
}

LoadedModel NetworkStyles::LoadBaseModel() const {
  LoadedModel base = LoadModel(job_.base_model);
  const std::vector<std::string> problems =
      BaseModelStyleProblems(job_, base.file, base.styles, base.net->predicts_norms());
  if (!problems.empty()) throw ConfigError(problems);
  return base;
}

void NetworkStyles::DistillPredictor(TransformerNet& net, LoadedModel& base) const {
  std::vector<torch::Tensor> summaries, rows;
  for (const NetworkMember& m : members_) {
    const auto found = std::find(base.styles.begin(), base.styles.end(), m.spec->name);
    if (found == base.styles.end()) continue;
    SF_CHECK(m.summary.defined(), "the members' summaries are made before the network");
    summaries.push_back(m.summary.to(torch::kCPU));
    rows.push_back(ConditionalRowNorms(base.net, found - base.styles.begin()).unsqueeze(0));
  }
  SF_CHECK(!rows.empty(), "BaseModelStyleProblems ensures a style in common");
  const torch::Tensor inputs = torch::cat(summaries), targets = torch::cat(rows);
  StylePredictor predictor = net->predictor();
  const auto difference = [&] { return (predictor->forward(inputs) - targets).pow(2).mean(); };
  double before = 0;
  {
    torch::NoGradGuard no_grad;
    before = difference().item<double>();
  }
  torch::optim::Adam adam(predictor->parameters(), torch::optim::AdamOptions(kDistillLearningRate));
  for (int step = 0; step < job_.distill_steps; ++step) {
    adam.zero_grad();
    difference().backward();
    adam.step();
  }
  adam.zero_grad();
  torch::NoGradGuard no_grad;
  SF_LOG(kInfo) << "predictor fitted to " << base.file << "'s rows of " << rows.size()
                << " style(s) in " << job_.distill_steps << " steps: mean squared difference "
                << before << " -> " << difference().item<double>();
}

const StyleStepValues& NetworkStyles::ValuesOf(const StyleStepValues& step, size_t j) const {
  return conditional_ ? step.styles[j] : step;
}

TransformerNet NetworkStyles::MemberNet(TransformerNet& net, size_t j) const {
  if (!conditional_) return net;
  if (arbitrary_) {
    torch::NoGradGuard no_grad;
    return FixedNormsTransformer(net, net->predictor()->forward(members_[j].summary)[0]);
  }
  torch::Tensor one_hot = torch::zeros({net->styles()});
  one_hot[first_row_ + static_cast<int64_t>(j)] = 1.0;
  return BlendedTransformer(net, one_hot);
}

ConditionalBatch NetworkStyles::Batch() const {
  ConditionalBatch batch;
  batch.first_row = first_row_;
  for (const NetworkMember& m : members_) {
    const TrainingOptions& t = m.spec->training;
    batch.targets.push_back(StyleLossTarget{
        &m.grams, LossWeights{t.content_weight, t.style_weight, t.tv_weight}, &m.style_layers});
  }
  if (arbitrary_) {
    std::vector<torch::Tensor> summaries;
    for (const NetworkMember& m : members_) summaries.push_back(m.summary);
    batch.summaries = torch::cat(summaries);
  }
  return batch;
}

torch::Tensor NetworkStyles::RowsAt(int64_t step, int64_t local, int world, int rank) const {
  const int64_t styles = static_cast<int64_t>(members_.size());
  torch::Tensor rows = torch::empty({local}, torch::kLong);
  int64_t cycle = -1;
  torch::Tensor order;
  for (int64_t i = 0; i < local; ++i) {
    // Image i of this rank is image i*world + rank of the group's batch (the
    // loader's shards), so that the rows follow the images wherever they train.
    const int64_t position = (step - 1) * local * world + i * world + rank;
    if (position / styles != cycle) {
      cycle = position / styles;
      at::Generator generator = at::detail::createCPUGenerator(
          job_.seed ^ Fnv1a("conditional style order " + std::to_string(cycle)));
      order = torch::randperm(styles, generator, torch::kLong);
    }
    rows[i] = first_row_ + order[position % styles].item<int64_t>();
  }
  return rows;
}

}  // namespace stylefleet
