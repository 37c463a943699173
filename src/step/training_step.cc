#include "step/training_step.h"

#include <cmath>
#include <limits>

#include "common/error.h"

namespace stylefleet {
namespace {

// content, style, tv, total, then each style layer.
std::vector<double> TermValues(const LossTerms& terms) {
  std::vector<double> values = {terms.content.item<double>(), terms.style.item<double>(),
                                terms.tv.item<double>(), terms.total.item<double>()};
  for (const auto& layer : terms.style_layers) values.push_back(layer.item<double>());
  return values;
}

StyleStepValues ToStepValues(const std::vector<double>& values) {
  StyleStepValues out;
  out.content = values[0];
  out.style = values[1];
  out.tv = values[2];
  out.total = values[3];
  out.style_layers.assign(values.begin() + 4, values.end());
  return out;
}

// A share's terms as weighted values, summed over parts and ranks.
void AddStyleSums(const StyleShare& share, std::vector<double>& sums) {
  if (share.images == 0) return;
  StyleStepValues values = ToStepValues(TermValues(share.terms));
  values.images = share.images;
  AddWeightedValues(values, sums);
}

// The loss value only: a constant added to the loss leaves its gradients as they were.
void InjectLossFault(InjectedFault fault, torch::Tensor& total) {
  if (fault == InjectedFault::kNanLoss) total = total + std::numeric_limits<double>::quiet_NaN();
  if (fault == InjectedFault::kInfLoss) total = total + std::numeric_limits<double>::infinity();
}

// One element of the first gradient only.
void InjectGradientFault(InjectedFault fault, const Adam& adam) {
  if (fault != InjectedFault::kNanGradient && fault != InjectedFault::kInfGradient) return;
  torch::Tensor element = adam.params().front().grad();
  while (element.dim() > 0) element = element.select(0, 0);  // a view, written in place
  element.fill_(fault == InjectedFault::kNanGradient ? std::numeric_limits<double>::quiet_NaN()
                                                     : std::numeric_limits<double>::infinity());
}

// `index` (0..count-1, count a power of two) with its bits in reverse order:
// 1 of 4 -> 2. Parts run in this order so that GradientTree's neighbours are
// parts m and m + count/2, the units that ranks r and r + N/2 hold.
int BitReversed(int index, int count) {
  int reversed = 0;
  for (int bit = 1; bit < count; bit <<= 1) {
    reversed <<= 1;
    if ((index & bit) != 0) reversed |= 1;
  }
  return reversed;
}

// The parameters' gradients of one part, handed over; each .grad() is left at
// zero for the next part's backward (a missing gradient is zeros).
std::vector<torch::Tensor> TakeGradients(const Adam& adam) {
  std::vector<torch::Tensor> taken;
  for (const torch::Tensor& p : adam.params()) {
    torch::Tensor& grad = p.mutable_grad();
    taken.push_back(grad.defined() ? grad : torch::zeros_like(p));
    grad = torch::zeros_like(p);
  }
  return taken;
}

void PutGradients(std::vector<torch::Tensor> grads, const Adam& adam) {
  for (size_t i = 0; i < grads.size(); ++i) {
    adam.params()[i].mutable_grad() = std::move(grads[i]);
  }
}

// A conditional network's per-style sums (images, then each term times
// images), zero: sized ahead, so that a style absent on this rank still takes
// its place in the allreduce.
std::vector<std::vector<double>> ZeroStyleSums(const ConditionalBatch& batch,
                                               const LossNetworkUse& use) {
  std::vector<std::vector<double>> sums;
  for (const StyleLossTarget& target : batch.targets) {
    const size_t layers =
        target.style_layers != nullptr ? target.style_layers->size() : use.style_layers.size();
    sums.emplace_back(5 + layers, 0.0);
  }
  return sums;
}

// One backward for all styles of a micro-batch (`parts` of them): each
// network's gradient comes from its own loss only (with its injected fault).
void BackwardOfPart(const std::vector<StepStyle>& styles, int parts,
                    std::vector<LossTerms>& terms) {
  torch::Tensor total;
  for (size_t k = 0; k < styles.size(); ++k) {
    InjectLossFault(styles[k].fault, terms[k].total);
    // Scaling the loss by 1/M scales every gradient exactly when M is a power of 2.
    const torch::Tensor scaled = parts == 1 ? terms[k].total : terms[k].total * (1.0 / parts);
    total = k == 0 ? scaled : total + scaled;
  }
  total.backward();
}

// Adds network `k`'s values of each micro-batch (`own[part][k]`, and a
// conditional network's per-style `shares[part][k]`) to the step's, in part
// order: the mean over the parts, the sums.
void AddParts(const std::vector<std::vector<std::vector<double>>>& own,
              const std::vector<std::vector<std::vector<StyleShare>>>& shares, size_t k,
              std::vector<double>& mean, std::vector<std::vector<double>>& style_sums) {
  const int parts = static_cast<int>(own.size());
  for (size_t part = 0; part < own.size(); ++part) {
    const std::vector<double>& values = own[part][k];
    mean.resize(values.size(), 0.0);
    for (size_t i = 0; i < values.size(); ++i) mean[i] += values[i] / parts;
    for (size_t j = 0; j < shares[part][k].size(); ++j) {
      AddStyleSums(shares[part][k][j], style_sums[j]);
    }
  }
}

}  // namespace

void GradientTree::Add(std::vector<torch::Tensor> part) {
  torch::NoGradGuard no_grad;
  size_t level = 0;
  for (; level < levels_.size() && !levels_[level].empty(); ++level) {
    // a + b == b + a in IEEE arithmetic, so neither side's order matters here.
    for (size_t i = 0; i < part.size(); ++i) part[i] = levels_[level][i] + part[i];
    levels_[level].clear();
  }
  if (level == levels_.size()) levels_.emplace_back();
  levels_[level] = std::move(part);
}

std::vector<torch::Tensor> GradientTree::Total() {
  std::vector<torch::Tensor> total;
  for (auto& level : levels_) {
    if (level.empty()) continue;
    SF_CHECK(total.empty(), "a gradient tree needs a power-of-two number of parts");
    total = std::move(level);
  }
  levels_.clear();
  return total;
}

void AddWeightedValues(const StyleStepValues& values, std::vector<double>& sums) {
  if (values.images == 0) return;
  std::vector<double> flat = {values.content, values.style, values.tv, values.total};
  flat.insert(flat.end(), values.style_layers.begin(), values.style_layers.end());
  if (sums.empty()) sums.assign(1 + flat.size(), 0.0);
  SF_CHECK(sums.size() == 1 + flat.size(), "style value count");
  const double images = double(values.images);
  sums[0] += images;
  for (size_t i = 0; i < flat.size(); ++i) sums[1 + i] += flat[i] * images;
}

StyleStepValues WeightedMean(const std::vector<double>& sums) {
  StyleStepValues out;
  if (sums.empty() || sums[0] == 0) return out;
  std::vector<double> mean(sums.begin() + 1, sums.end());
  for (double& x : mean) x /= sums[0];
  out = ToStepValues(mean);
  out.images = static_cast<int64_t>(sums[0]);
  return out;
}

InjectedFault InjectedFaultNamed(const std::string& name) {
  if (name == "nan-loss") return InjectedFault::kNanLoss;
  if (name == "inf-loss") return InjectedFault::kInfLoss;
  if (name == "nan-gradient") return InjectedFault::kNanGradient;
  if (name == "inf-gradient") return InjectedFault::kInfGradient;
  throw ConfigError(
      {"unknown injected fault '" + name + "' (nan-loss, inf-loss, nan-gradient or inf-gradient)"});
}

TrainingStep::TrainingStep(const Vgg16& vgg, Communicator& control, Communicator& tensors,
                           const StepOptions& options, StepClock* clock)
    : vgg_(vgg), control_(control), tensors_(tensors), options_(options), clock_(clock) {
  SF_CHECK(options_.micro_batches >= 1, "micro_batches must be at least 1");
}

StepOutcome TrainingStep::Run(const torch::Tensor& content, const std::vector<StepStyle>& styles,
                              bool stop_requested) {
  SF_CHECK(!styles.empty(), "a step needs at least one style");
  std::vector<RankValues> values = ForwardBackward(content, styles);
  StepOutcome outcome;
  outcome.stop = AllReduceLossValues(values, stop_requested);
  for (size_t k = 0; k < styles.size(); ++k) {
    outcome.styles.push_back(ToStepValues(values[k].mean));
    StyleStepValues& v = outcome.styles.back();
    v.images = content.size(0) * control_.size();
    for (const auto& sums : values[k].style_sums) v.styles.push_back(WeightedMean(sums));
    // The averaged total is the same on every rank, so is this verdict: a NaN
    // must never reach the weights.
    v.bad =
        !std::isfinite(v.total) || !AverageAndUpdate(styles[k], outcome.gradient_allreduce_seconds);
  }
  if (clock_ != nullptr) clock_->End();
  return outcome;
}

std::vector<TrainingStep::RankValues> TrainingStep::ForwardBackward(
    const torch::Tensor& content, const std::vector<StepStyle>& styles) {
  std::vector<TransformerNet*> nets;
  std::vector<StyleLossTarget> targets;
  for (const StepStyle& s : styles) {
    s.adam->ZeroGrad();
    nets.push_back(s.net);
    targets.push_back(s.target);
  }
  const int parts = options_.micro_batches;
  std::vector<RankValues> values(styles.size());
  // Each part's copy of the conditional networks' batches: their rows follow the images.
  std::vector<ConditionalBatch> part_batches(styles.size());
  std::vector<ConditionalBatch*> conditional;
  for (size_t k = 0; k < styles.size(); ++k) {
    if (styles[k].conditional == nullptr) continue;
    conditional.resize(styles.size(), nullptr);
    conditional[k] = &part_batches[k];
    values[k].style_sums = ZeroStyleSums(*styles[k].conditional, options_.use);
  }
  // With a power-of-two count the parts' gradients are added in the fixed tree
  // GradientTree describes, so that any split of the same units over ranks and
  // parts gives the same bits (elastic resume); other counts accumulate in
  // autograd, part after part.
  const bool tree = parts > 1 && (parts & (parts - 1)) == 0;
  std::vector<GradientTree> trees(tree ? styles.size() : 0);
  // Each part's values, added in part order after the loop whatever order the parts ran in.
  std::vector<std::vector<std::vector<double>>> part_values(static_cast<size_t>(parts));
  std::vector<std::vector<std::vector<StyleShare>>> part_shares(static_cast<size_t>(parts));
  for (int turn = 0; turn < parts; ++turn) {
    const int part = tree ? BitReversed(turn, parts) : turn;
    // Part m takes images m, m+M, ... (strided like the shards of a group, so
    // M parts in one process reproduce M ranks bit for bit).
    auto take = [&](const torch::Tensor& t) {
      return parts == 1 ? t : t.slice(0, part, t.size(0), parts).contiguous();
    };
    const torch::Tensor images = take(content);
    for (size_t k = 0; k < styles.size(); ++k) {
      if (styles[k].conditional == nullptr) continue;
      part_batches[k] = *styles[k].conditional;
      part_batches[k].rows = take(styles[k].conditional->rows);
    }
    std::vector<LossTerms> terms =
        ForwardStyleLosses(nets, vgg_, images, targets, options_.use, clock_, conditional);
    if (clock_ != nullptr) clock_->Begin(Phase::kBackward);
    BackwardOfPart(styles, parts, terms);
    for (size_t k = 0; k < styles.size(); ++k) {
      part_values[static_cast<size_t>(part)].push_back(TermValues(terms[k]));
      part_shares[static_cast<size_t>(part)].push_back(part_batches[k].shares);
      if (tree) trees[k].Add(TakeGradients(*styles[k].adam));
    }
  }
  for (size_t k = 0; k < trees.size(); ++k) PutGradients(trees[k].Total(), *styles[k].adam);
  for (size_t k = 0; k < styles.size(); ++k) {
    AddParts(part_values, part_shares, k, values[k].mean, values[k].style_sums);
  }
  for (const StepStyle& s : styles) InjectGradientFault(s.fault, *s.adam);
  return values;
}

bool TrainingStep::AllReduceLossValues(std::vector<RankValues>& values, bool stop_requested) {
  if (clock_ != nullptr) clock_->Begin(Phase::kAllreduce, "loss values");
  if (control_.size() == 1) return stop_requested;
  std::vector<double> flat;
  for (const RankValues& v : values) {
    flat.insert(flat.end(), v.mean.begin(), v.mean.end());
    for (const auto& sums : v.style_sums) flat.insert(flat.end(), sums.begin(), sums.end());
  }
  flat.push_back(stop_requested ? 1.0 : 0.0);
  control_.AllReduceSum(flat.data(), flat.size(), "loss allreduce");
  const double ranks = control_.size();
  size_t i = 0;
  for (RankValues& v : values) {
    for (double& x : v.mean) x = flat[i++] / ranks;
    for (auto& sums : v.style_sums) {
      for (double& x : sums) x = flat[i++];  // sums stay sums: divided by their image counts
    }
  }
  return flat.back() > 0;
}

bool TrainingStep::AverageAndUpdate(const StepStyle& style, double& allreduce_seconds) {
  if (clock_ != nullptr) clock_->Begin(Phase::kAllreduce, "gradient buckets");
  if (tensors_.size() > 1) {
    style.buckets->AllReduceAverage(tensors_);
    allreduce_seconds += style.buckets->last_seconds();
  }
  if (clock_ != nullptr) clock_->Begin(Phase::kOptimizer);
  // After averaging every rank holds the same gradients, so the same verdict.
  for (const auto& p : style.adam->params()) {
    if (p.grad().defined() && !torch::isfinite(p.grad()).all().item<bool>()) return false;
  }
  style.adam->Step();
  return true;
}

}  // namespace stylefleet
