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

}  // namespace

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
  std::vector<std::vector<double>> values = ForwardBackward(content, styles);
  StepOutcome outcome;
  outcome.stop = AllReduceLossValues(values, stop_requested);
  for (size_t k = 0; k < styles.size(); ++k) {
    outcome.styles.push_back(ToStepValues(values[k]));
    StyleStepValues& v = outcome.styles.back();
    // The averaged total is the same on every rank, so is this verdict: a NaN
    // must never reach the weights.
    v.bad =
        !std::isfinite(v.total) || !AverageAndUpdate(styles[k], outcome.gradient_allreduce_seconds);
  }
  if (clock_ != nullptr) clock_->End();
  return outcome;
}

std::vector<std::vector<double>> TrainingStep::ForwardBackward(
    const torch::Tensor& content, const std::vector<StepStyle>& styles) {
  std::vector<TransformerNet*> nets;
  std::vector<StyleLossTarget> targets;
  for (const StepStyle& s : styles) {
    s.adam->ZeroGrad();
    nets.push_back(s.net);
    targets.push_back(s.target);
  }
  const int parts = options_.micro_batches;
  std::vector<std::vector<double>> values(styles.size());
  for (int part = 0; part < parts; ++part) {
    // Part m takes images m, m+M, ... (strided like the shards of a group, so
    // M parts in one process reproduce M ranks bit for bit).
    const torch::Tensor images =
        parts == 1 ? content : content.slice(0, part, content.size(0), parts).contiguous();
    std::vector<LossTerms> terms =
        ForwardStyleLosses(nets, vgg_, images, targets, options_.use, clock_);
    if (clock_ != nullptr) clock_->Begin(Phase::kBackward);
    // One backward for all styles: each network's gradient comes from its own loss only.
    torch::Tensor total;
    for (size_t k = 0; k < styles.size(); ++k) {
      InjectLossFault(styles[k].fault, terms[k].total);
      // Scaling the loss by 1/M scales every gradient exactly when M is a power of 2.
      const torch::Tensor scaled = parts == 1 ? terms[k].total : terms[k].total * (1.0 / parts);
      total = k == 0 ? scaled : total + scaled;
    }
    total.backward();
    for (size_t k = 0; k < styles.size(); ++k) {
      const std::vector<double> part_values = TermValues(terms[k]);
      values[k].resize(part_values.size(), 0.0);
      for (size_t i = 0; i < part_values.size(); ++i) values[k][i] += part_values[i] / parts;
    }
  }
  for (const StepStyle& s : styles) InjectGradientFault(s.fault, *s.adam);
  return values;
}

bool TrainingStep::AllReduceLossValues(std::vector<std::vector<double>>& values,
                                       bool stop_requested) {
  if (clock_ != nullptr) clock_->Begin(Phase::kAllreduce, "loss values");
  if (control_.size() == 1) return stop_requested;
  std::vector<double> flat;
  for (const auto& v : values) flat.insert(flat.end(), v.begin(), v.end());
  flat.push_back(stop_requested ? 1.0 : 0.0);
  control_.AllReduceSum(flat.data(), flat.size(), "loss allreduce");
  const double ranks = control_.size();
  size_t i = 0;
  for (auto& v : values) {
    for (double& x : v) x = flat[i++] / ranks;
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
