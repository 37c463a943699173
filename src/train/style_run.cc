#include "train/style_run.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "checkpoint/checkpoint_files.h"
#include "common/cpu_info.h"
#include "common/error.h"
#include "common/fnv1a.h"
#include "common/log.h"
#include "common/vgg_layers.h"
#include "data/image.h"
#include "data/image_tensor.h"
#include "runtime/group_ops.h"
#include "train/preflight.h"
#include "train/run_settings.h"

namespace stylefleet {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// The first line of `text`: a warning is one line per checkpoint.
std::string OneLine(const std::string& text) { return text.substr(0, text.find('\n')); }

// Member `j`'s log window as a checkpoint holds it: empty, or the image count
// and one sum per value AddWeightedValues adds (4 totals and `style_layers`).
// A window of another size (style layers changed, resumed with
// --allow-changed-settings) is only logging: dropped with a warning, the
// checkpoint still used. A negative image count is damage: DataError.
std::vector<double> UsableLogWindow(const std::vector<double>& sums, size_t j, size_t style_layers,
                                    const std::string& path) {
  if (sums.empty()) return sums;
  const std::string key = "'stylefleet.log_window." + std::to_string(j) + "'";
  if (sums[0] < 0) throw DataError(path + ": " + key + " holds a negative image count");
  const size_t expected = 5 + style_layers;
  if (sums.size() == expected) return sums;
  SF_LOG(kWarning) << path << ": " << key << " holds " << sums.size() << " values, expected "
                   << expected << " (the style layers changed?): the first record after the "
                   << "resume averages only the steps since";
  return {};
}

double ParameterChecksum(TransformerNet& net) {
  torch::NoGradGuard no_grad;
  double sum = 0;
  for (const auto& p : net->parameters()) sum += p.to(torch::kFloat64).sum().item<double>();
  return sum;
}

std::vector<torch::Tensor> TrainableTensors(TransformerNet& net) {
  std::vector<torch::Tensor> out;
  for (const auto& item : TrainableParameters(net)) out.push_back(item.second);
  return out;
}

}  // namespace

Precision EffectivePrecision(const std::string& configured, const torch::Device& device) {
  if (configured != "bf16") return Precision::kFp32;
  if (!device.is_cpu()) return Precision::kBf16;
  static bool warned = false;
  if (CpuHasBf16()) {
    if (!CpuHasFlag("amx_bf16") && !warned) {
      SF_LOG(kWarning) << "training.precision bf16: this CPU has BF16 dot products (avx512_bf16) "
                          "but no AMX; there bf16 convolutions ran slower than fp32 "
                          "(docs/performance.md): `stylefleet bench` measures both";
      warned = true;
    }
    return Precision::kBf16;
  }
  if (!warned) {
    SF_LOG(kWarning) << "training.precision bf16: this CPU has no BF16 instructions (avx512_bf16 "
                        "or amx_bf16), where bf16 would be slower than fp32; training in fp32";
    warned = true;
  }
  return Precision::kFp32;
}

StyleRun::StyleRun(const StyleRunContext& context, const StyleSpec& style)
    : context_(context),
      job_(context.plan->job),
      style_(style),
      control_(context.runtime->control()),
      tensors_(context.runtime->tensors()),
      root_(control_.rank() == 0),
      outputs_(style.output_dir, style.name, style.training.style_layers),
      styles_(job_, style, &outputs_) {
  if (root_) writer_ = std::make_unique<BackgroundWriter>();
  loss_use_.content_layers = VggLayerIndices(job_.loss_network.content_layers);
  loss_use_.style_layers = VggLayerIndices(style.training.style_layers);
  loss_use_.precision = EffectivePrecision(style.training.precision, context.runtime->device());
  loss_use_.style_luminance_only = style.training.style_luminance_only;
  const TrainingOptions& t = style.training;
  weights_ = {t.content_weight, t.style_weight, t.tv_weight};
}

bool StyleRun::Prepare() {
  const TrainingOptions& t = style_.training;
  RunOnRoot(control_, "output folder claim", [&] {
    // Checked before any folder is claimed: a refused run leaves nothing behind.
    styles_.CheckFoldersFree();
    ClaimOutputDir(style_.output_dir, job_.name, style_.name, style_.sweep, style_.swept);
    styles_.ClaimMemberFolders();
    // What this run trains with, for the next resume to compare (train/preflight.h).
    RecordRunSettings(style_.output_dir,
                      RunSettings(job_, style_, control_.size(), context_.plan->ContentList()));
  });
  ComputeStyleGrams();
  BuildModel();
  RunOnRoot(control_, "checkpoint resume", [&] { position_ = Resume(); });
  BroadcastRootState();
  per_epoch_ =
      static_cast<int64_t>(context_.plan->content_files.size()) / control_.size() / t.batch_size;
  total_steps_ = t.epochs > 0 ? t.epochs * per_epoch_ : INT64_MAX;
  if (t.max_steps > 0) total_steps_ = std::min(total_steps_, t.max_steps);
  if (position_.step < total_steps_) return true;
  if (root_) {
    SF_LOG(kInfo) << "[" << style_.name << "] already trained (" << position_.step
                  << " steps); writing the final model";
  }
  RunOnRoot(control_, "model write", [&] {
    WriteModel();
    // The validation set may have changed since the run trained.
    PrepareValidation();
    WriteFinalImages();
  });
  return false;
}

void StyleRun::PrepareValidation() {
  const torch::Device device = context_.runtime->device();
  for (RunOutputs* outputs : styles_.AllOutputs())
    outputs->PrepareValidation(job_.data, context_.plan->content_files, device);
}

void StyleRun::WriteFinalImages() {
  auto& members = styles_.members();
  for (size_t j = 0; j < members.size(); ++j) {
    TransformerNet member = styles_.MemberNet(net_, j);
    members[j].outputs->WriteFinalImages(member);
  }
}

void StyleRun::SubmitPreviews(int64_t step) {
  // The networks run here, with all of the rank's threads (compute is what
  // a preview costs on a CPU); encoding and writing go to the background.
  std::vector<std::pair<const RunOutputs*, torch::Tensor>> grids;
  // Each style's own preview, and a conditional network's: one row per style.
  const auto& members = styles_.members();
  std::vector<TransformerNet> styles;
  std::vector<TransformerNet*> rows;
  for (size_t j = 0; j < members.size(); ++j) {
    styles.push_back(styles_.MemberNet(net_, j));
    grids.emplace_back(members[j].outputs, members[j].outputs->PreviewGrid({&styles.back()}));
  }
  for (TransformerNet& one : styles) rows.push_back(&one);
  if (conditional()) grids.emplace_back(&outputs_, outputs_.PreviewGrid(rows));
  writer_->Submit([grids = std::move(grids), step] {
    for (const auto& [outputs, grid] : grids) outputs->WritePreviewGrid(grid, step);
  });
}

void StyleRun::PrepareHeldOut() {
  if (!styles_.arbitrary() || context_.plan->held_out.empty()) return;
  if (!outputs_.validation_batch().defined()) {
    SF_LOG(kWarning) << "[" << style_.name
                     << "] job.held_out_styles: no validation photo decoded, so the held-out "
                        "styles' losses are not measured (data.validation_images)";
    return;
  }
  // The styles' own style layers and weights (the same for all of them).
  const NetworkMember& first = styles_.members().front();
  LossNetworkUse use = loss_use_;
  use.style_layers = first.style_layers;
  const TrainingOptions& t = first.spec->training;
  held_out_ =
      std::make_unique<HeldOutStyles>(*context_.plan, *context_.vgg, use,
                                      LossWeights{t.content_weight, t.style_weight, t.tv_weight},
                                      styles_.SummaryLayers(), context_.runtime->device());
}

void StyleRun::MeasureHeldOut(int64_t step) {
  if (held_out_ == nullptr) return;
  const std::vector<HeldOutLosses> losses = held_out_->Measure(net_, outputs_.validation_batch());
  outputs_.AppendHeldOutLine(held_out_->RecordLine(step, losses), step);
  SF_LOG(kInfo) << "[" << style_.name << "] " << held_out_->Describe(step, losses);
}

void StyleRun::SubmitCheckpoint(const RunPosition& position) {
  // The dict names the live parameters and optimizer state: the next step
  // would change them while the writer reads.
  auto dict =
      std::make_shared<TensorDict>(CheckpointDict(net_, *adam_, position, Info(), LogWindows()));
  for (auto& entry : *dict) entry.second = entry.second.detach().clone();
  writer_->Submit([this, dict, step = position.step] {
    WriteCheckpoint(*dict, step);
    // Published by the training thread (ReportWrittenCheckpoints): the
    // metrics' series are not this thread's to touch.
    last_checkpoint_unix_ =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    ++checkpoints_written_;
  });
}

std::vector<std::vector<double>> StyleRun::LogWindows() const {
  std::vector<std::vector<double>> windows;
  for (const NetworkMember& m : styles_.members()) windows.push_back(m.window_sums);
  return windows;
}

ModelInfo StyleRun::Info() const {
  ModelInfo info{job_.name, style_.name, job_.data.image_size, styles_.row_names()};
  if (styles_.arbitrary()) {
    info.loss_network = job_.loss_network.weights;
    info.style_image_size = style_.training.style_image_size;
  }
  return info;
}

void StyleRun::Start(int styles_together) {
  const TrainingOptions& t = style_.training;
  if (root_) {
    SF_LOG(kInfo) << "[" << style_.name << "] training steps " << position_.step + 1 << ".."
                  << total_steps_ << " (" << per_epoch_ << " per epoch)"
                  << (styles_together > 1
                          ? ", together with " + std::to_string(styles_together - 1) +
                                " other style(s) on the same batches"
                          : std::string());
    if (control_.size() > 1) {
      SF_LOG(kInfo) << "[" << style_.name << "] data-parallel over " << control_.size()
                    << " ranks (" << tensors_.backend() << "), batch " << t.batch_size << " x "
                    << control_.size() << " = " << t.batch_size * control_.size() << ", "
                    << buckets_->bucket_count() << " gradient bucket(s) of at most "
                    << job_.distributed.bucket_mb << " MiB";
    }
    SF_LOG(kInfo) << "[" << style_.name << "] " << job_.data.image_size << " px into "
                  << style_.output_dir;
    // Styles are dealt one image each in turn: a short run leaves some without any.
    const int64_t images = (total_steps_ - position_.step) * t.batch_size * control_.size();
    const int64_t styles = static_cast<int64_t>(styles_.members().size());
    if (images < styles) {
      SF_LOG(kWarning) << "[" << style_.name << "] " << images << " image(s) left for " << styles
                       << " styles: " << styles - images
                       << " of them get no image and keep their rows as they are; raise "
                          "training.max_steps or batch_size";
    }
  }
  for (const NetworkMember& m : styles_.members()) {
    // A sweep's runs carry its name and their swept values as labels, so that
    // dashboards can put the runs of one sweep side by side (a conditional
    // network's styles are never swept).
    std::vector<std::pair<std::string, std::string>> labels;
    if (!m.spec->sweep.empty()) {
      labels.emplace_back("sweep", m.spec->sweep);
      labels.insert(labels.end(), m.spec->swept.begin(), m.spec->swept.end());
    }
    context_.metrics->StyleStarted(m.spec->name, m.spec->training.style_layers,
                                   context_.group_index, root_, labels);
  }
  if (root_) {
    for (RunOutputs* outputs : styles_.AllOutputs()) outputs->TrimMetrics(position_.step);
    PrepareValidation();
    PrepareHeldOut();
  }
  run_start_ = Clock::now();
}

StepStyle StyleRun::ForStep(int64_t step) {
  StepStyle s;
  s.net = &net_;
  s.adam = adam_.get();
  s.buckets = buckets_.get();
  // A conditional network's is unused: each image has its style's target.
  s.target = StyleLossTarget{&styles_.members().front().grams, weights_, &loss_use_.style_layers};
  s.fault = context_.plan->hooks.FaultAt(style_.name, step);
  if (conditional()) {
    batch_.rows = styles_.RowsAt(step, style_.training.batch_size, control_.size(), control_.rank())
                      .to(context_.runtime->device());
    s.conditional = &batch_;
  }
  return s;
}

void StyleRun::AfterStep(const RunPosition& position, const StyleStepValues& values,
                         const StepTiming& timing) {
  const TrainingOptions& t = style_.training;
  position_ = position;
  ++steps_this_run_;
  window_seconds_ += timing.seconds;
  window_images_ += timing.images;
  // A skipped step's values (NaN or infinite) would make its whole window's
  // mean so: the records average the steps that updated the network.
  if (!values.bad) {
    auto& members = styles_.members();
    for (size_t j = 0; j < members.size(); ++j) {
      AddWeightedValues(styles_.ValuesOf(values, j), members[j].window_sums);
    }
  }
  const bool record = Due(position.step, t.log_every_steps);
  const StepEvent event = MakeStepEvent(position, values, timing, record);
  // The Prometheus series: the group root's (the others would only repeat
  // the group averages).
  if (root_) context_.metrics->OnStep(event);
  if (timing.tty) progress_.OnStep(event);
  const bool last = position.step == total_steps_;
  if (context_.plan->hooks.PerturbsReplicaAt(style_.name, position.step)) {
    torch::NoGradGuard no_grad;
    net_->parameters().front().add_(1e-3);
  }
  // Also at the last step when the periodic check is off: a model whose
  // replicas diverged is never written as if it were fine.
  if (control_.size() > 1 && (Due(position.step, job_.distributed.check_every_steps) || last)) {
    CheckReplicasAgree(position.step);
  }
  if (record) RecordStep(event);
  if (Due(position.step, t.preview_every_steps)) {
    RunOnRoot(control_, "preview write", [&] { SubmitPreviews(position.step); });
  }
  // At preview steps and at the end, so that every run has the number.
  if (styles_.arbitrary() && !context_.plan->held_out.empty() &&
      (Due(position.step, t.preview_every_steps) || last)) {
    RunOnRoot(control_, "held-out losses", [&] { MeasureHeldOut(position.step); });
  }
  CountBadStep(position.step, values.bad);
  if (!timing.stopping && (Due(position.step, job_.checkpoint.every_steps) || last)) {
    // Taken now, written in the background: a failure to write it stops the
    // run at the next record or write; the metrics count it once it is written.
    RunOnRoot(control_, "checkpoint write", [&] { SubmitCheckpoint(position); });
  }
  if (root_) ReportWrittenCheckpoints();
}

namespace {
// The loss values of `values`, for the sinks.
LossValues LossesOf(const StyleStepValues& values) {
  return LossValues{values.content, values.style,        values.tv,
                    values.total,   values.style_layers, values.images};
}
}  // namespace

StepEvent StyleRun::MakeStepEvent(const RunPosition& position, const StyleStepValues& values,
                                  const StepTiming& timing, bool record) const {
  StepEvent e;
  e.run = style_.name;
  e.step = position.step;
  e.total_steps = total_steps_;
  e.epoch = position.epoch;
  e.epoch_position = timing.epoch;
  e.images = timing.images;
  e.total_loss = values.total;
  e.bad = values.bad;
  e.record = record;
  e.step_seconds = timing.seconds;
  e.data_wait_seconds = timing.data_wait;
  e.allreduce_seconds = timing.allreduce_seconds;
  e.eta_seconds = timing.average_seconds * double(total_steps_ - position.step);
  if (record) e.window_images_per_second = window_images_ / std::max(window_seconds_, 1e-9);
  e.skipped_images = timing.skipped_files;
  e.ranks = control_.size();
  // A style's record holds the mean over its images since its last record; a
  // per-style network whose window holds no good step records this step's
  // (non-finite) values over 0 images, a conditional network's style nothing.
  const auto add = [&](const StyleSpec& spec, const StyleStepValues& step,
                       const std::vector<double>& window) {
    StyleStepEvent s;
    s.style = spec.name;
    s.step = LossesOf(step);
    if (record && !window.empty()) s.window = LossesOf(WeightedMean(window));
    if (record && window.empty() && !conditional()) {
      s.window = s.step;
      s.window->images = 0;
    }
    s.content_weight = spec.training.content_weight;
    s.style_weight = spec.training.style_weight;
    s.tv_weight = spec.training.tv_weight;
    s.learning_rate = spec.training.learning_rate;
    e.styles.push_back(std::move(s));
  };
  const auto& members = styles_.members();
  for (size_t j = 0; j < members.size(); ++j) {
    add(*members[j].spec, styles_.ValuesOf(values, j), members[j].window_sums);
  }
  return e;
}

// The records of `event` (the run's, or each of its styles'), on the root, and
// the windows restarted.
void StyleRun::RecordStep(const StepEvent& event) {
  RunOnRoot(control_, "metrics record", [&] {
    // A failed background write (a full disk) stops the run here at the latest.
    writer_->ThrowIfFailed();
    for (NetworkMember& m : styles_.members()) m.outputs->OnStep(event);
  });
  for (NetworkMember& m : styles_.members()) m.window_sums.clear();
  window_seconds_ = 0;
  window_images_ = 0;
}

void StyleRun::ReportWrittenCheckpoints() {
  const int64_t written = checkpoints_written_.load();
  const double when = last_checkpoint_unix_.load();
  for (; checkpoints_reported_ < written; ++checkpoints_reported_) {
    for (const NetworkMember& m : styles_.members()) {
      context_.metrics->CheckpointWritten(m.spec->name, when);
    }
  }
}

void StyleRun::StopHere() {
  RunOnRoot(control_, "checkpoint write", [&] {
    writer_->Drain();
    WriteCheckpoint(CheckpointDict(net_, *adam_, position_, Info(), LogWindows()), position_.step);
  });
  if (root_) {
    SF_LOG(kWarning) << "[" << style_.name << "] stop signal: checkpoint written at step "
                     << position_.step << "; run the same command to resume";
  }
}

void StyleRun::Finish() {
  // One root action: WriteFinalImages never throws, so it needs no report of
  // its own. The background writes end first: a run whose last checkpoint
  // failed gets neither a model nor final images of a network not saved.
  RunOnRoot(control_, "model write", [&] {
    writer_->Drain();
    ReportWrittenCheckpoints();
    WriteModel();
    WriteFinalImages();
  });
  for (const NetworkMember& m : styles_.members()) context_.metrics->StyleFinished(m.spec->name);
  if (root_) {
    SF_LOG(kInfo) << "[" << style_.name << "] done: " << steps_this_run_ << " steps in "
                  << FormatDuration(
                         std::chrono::duration<double>(Clock::now() - run_start_).count())
                  << "; model " << (fs::path(style_.output_dir) / "model.pt").string();
  }
}

// True every `every` steps (0: never) and at the last step.
bool StyleRun::Due(int64_t step, int64_t every) const {
  return every > 0 && (step % every == 0 || step == total_steps_);
}

void StyleRun::CountBadStep(int64_t step, bool bad) {
  if (!bad) {
    bad_in_a_row_ = 0;
    return;
  }
  const int limit = style_.training.max_bad_steps;
  ++bad_in_a_row_;
  // A run that started from scratch and reached its last step without one
  // good step learned nothing: its "model" would be the initial weights.
  const bool learned_nothing =
      step == total_steps_ && bad_in_a_row_ == steps_this_run_ && step == steps_this_run_;
  if (root_) {
    SF_LOG(kWarning) << "[" << style_.name << "] step " << step
                     << ": NaN or infinite loss or gradient; step skipped (" << bad_in_a_row_
                     << " in a row, limit " << limit << ")";
  }
  for (const NetworkMember& m : styles_.members()) context_.metrics->BadStep(m.spec->name);
  if (learned_nothing) {
    throw NumericalFault("style '" + style_.name + "': none of its " + std::to_string(step) +
                         " steps had a finite loss and gradient, so it learned nothing; no model "
                         "was written. Check the loss network file (`stylefleet check`), then "
                         "lower training.learning_rate or the loss weights.");
  }
  if (bad_in_a_row_ < limit) return;
  const auto kept = ListCheckpoints(style_.output_dir);
  throw NumericalFault(
      "style '" + style_.name + "': " + std::to_string(bad_in_a_row_) +
      " steps in a row (up to step " + std::to_string(step) +
      ") had a NaN or infinite loss or gradient; stopped. Its last good "
      "checkpoint is kept" +
      (kept.empty() ? std::string(" (none was written yet)") : ": " + kept.front()) +
      ". Lower training.learning_rate or the loss weights.");
}

std::vector<torch::Tensor> StyleRun::GramsOf(const StyleSpec& style,
                                             const std::vector<int>& layers) const {
  // The style's targets see what the generated images' style features see:
  // the luminance alone, when the style loss is on luminance.
  const torch::Tensor pixels =
      ImageToTensor(context_.plan->StyleImageOf(style)).to(context_.runtime->device());
  return StyleGrams(*context_.vgg,
                    style.training.style_luminance_only ? LuminanceImage(pixels) : pixels, layers,
                    loss_use_.precision);
}

void StyleRun::ComputeStyleGrams() {
  const std::vector<int> summary_layers = styles_.SummaryLayers();
  for (NetworkMember& m : styles_.members()) {
    m.grams = GramsOf(*m.spec, m.style_layers);
    // The predictor's input: the style image's own colours, in float32
    // whatever the training precision (as stylize computes it).
    if (!summary_layers.empty()) {
      m.summary = StyleImageSummary(
          *context_.vgg,
          ImageToTensor(context_.plan->StyleImageOf(*m.spec)).to(context_.runtime->device()),
          summary_layers);
    }
  }
}

// Same initial weights for the same job seed and style name, wherever it runs.
void StyleRun::BuildModel() {
  // The runs of a sweep start from the same weights (seeded by the swept
  // style's name), so that they differ only by the swept values.
  uint64_t seed = job_.seed ^ Fnv1a(style_.sweep.empty() ? style_.name : style_.sweep);
  if (context_.plan->hooks.Reseeds(style_.name)) {
    seed += 1 + static_cast<uint64_t>(control_.rank());  // test only: a rank with a wrong seed
  }
  net_ = styles_.Build(seed);
  batch_ = styles_.Batch();
  net_->to(context_.runtime->device());
  net_->train();
  const std::vector<torch::Tensor> trainable = TrainableTensors(net_);
  adam_ = std::make_unique<Adam>(trainable, style_.training.learning_rate);
  buckets_ = std::make_unique<GradientBuckets>(
      trainable, static_cast<size_t>(job_.distributed.bucket_mb * 1024 * 1024));
}

// A checkpoint copied in from another style's folder (or renamed) would
// resume this style from another training; it passed its checksum, so it is
// a file a user put there: stop and say so rather than skip it silently.
void StyleRun::CheckCheckpointBelongsHere(const TensorDict& dict, const std::string& path,
                                          const RunPosition& position) const {
  const ModelOwner owner = ReadModelOwner(dict);
  const ModelInfo info = Info();
  if ((!owner.job.empty() && owner.job != info.job) ||
      (!owner.style.empty() && owner.style != info.style)) {
    throw ConfigError({path + ": checkpoint of style '" + owner.style + "' of job '" + owner.job +
                       "', found in the folder of style '" + info.style + "' of job '" + info.job +
                       "'; move it out of " + style_.output_dir + "/checkpoints"});
  }
  if (fs::path(path).filename() !=
      fs::path(CheckpointPath(style_.output_dir, position.step)).filename()) {
    throw ConfigError(
        {path + ": the file is named for another step than the " + std::to_string(position.step) +
         " it holds (renamed or copied?); move it out of " + style_.output_dir + "/checkpoints"});
  }
}

// The predictor reads the summary's numbers by position: layers of the same
// sizes in another order (a resume with --allow-changed-settings, or after
// settings.json was lost) would load and read each layer's statistics as
// another's. Refused like a changed style list.
void StyleRun::CheckPredictorLayers(const TensorDict& dict, const std::string& path) const {
  const std::vector<int> recorded = ReadPredictedNorms(dict, path).summary_layers;
  const std::vector<int>& mine = net_->predicted_norms().summary_layers;
  if (recorded == mine) return;
  auto names = [](const std::vector<int>& layers) {
    std::string out;
    for (int layer : layers)
      out += (out.empty() ? "" : ", ") + VggLayerNames()[static_cast<size_t>(layer)];
    return "[" + out + "]";
  };
  throw ConfigError({path + ": its style predictor reads job.predictor_layers " + names(recorded) +
                     ", the job's are " + names(mine) +
                     "; set them back, or train into another job.output_dir"});
}

RunPosition StyleRun::Resume() {
  const std::vector<std::string> checkpoints = ListCheckpoints(style_.output_dir);
  std::string newest_problem;
  for (const auto& path : checkpoints) {
    std::string problem;
    try {
      const TensorDict dict = LoadTensorDict(path);
      // A conditional network's rows belong to its styles in order: a job
      // that lists other styles (or the same in another order) is another network.
      const std::string changed =
          NetworkStylesProblem(path, ModelStyleNames(dict), styles_.row_names());
      if (!changed.empty()) throw ConfigError({changed});
      if (net_->predicts_norms()) CheckPredictorLayers(dict, path);
      const RunPosition position = RestoreCheckpoint(dict, path, net_, *adam_);
      CheckCheckpointBelongsHere(dict, path, position);
      // A checkpoint written before windows were kept holds none: the first
      // record after the resume is then a mean over fewer steps.
      auto& members = styles_.members();
      const auto windows = ReadLogWindows(dict, members.size());
      std::vector<std::vector<double>> usable(windows.size());
      for (size_t j = 0; j < windows.size(); ++j) {
        const size_t layers = members[j].spec->training.style_layers.size();
        usable[j] = UsableLogWindow(windows[j], j, layers, path);
      }
      for (size_t j = 0; j < members.size(); ++j) members[j].window_sums = usable[j];
      SF_LOG(kInfo) << "[" << style_.name << "] resuming from " << path << " (step "
                    << position.step << ")";
      return position;
    } catch (const DataError& e) {
      problem = OneLine(e.what());
    } catch (const c10::Error& e) {
      // LibTorch's own checks: its message's first line says why; the rest
      // (a C++ backtrace) means nothing to a user.
      problem = path + ": " + OneLine(e.what_without_backtrace());
    }
    SF_LOG(kWarning) << "[" << style_.name << "] ignoring unreadable checkpoint: " << problem;
    if (newest_problem.empty()) newest_problem = problem;
  }
  // Training from step 0 would replace what the damaged files held (and a
  // finished style's model.pt) without a word beyond the warnings above.
  if (!checkpoints.empty()) {
    throw Error("style '" + style_.name + "': none of its " + std::to_string(checkpoints.size()) +
                " checkpoint(s) can be read (the newest: " + newest_problem +
                "); nothing was trained or overwritten. Restore them from a copy, or move them "
                "out of " +
                (fs::path(style_.output_dir) / "checkpoints").string() +
                " to train this style from step 0");
  }
  return RunPosition{};
}

// Every rank starts from the root's state: parameters (fresh or restored),
// optimizer state and position, after checking that all built the same model.
void StyleRun::BroadcastRootState() {
  if (control_.size() == 1) return;
  std::ostringstream shapes;
  for (const auto& p : adam_->params()) shapes << p.sizes() << ";";
  CheckRanksAgree(control_,
                  {{"style '" + style_.name + "' model parameters",
                    std::to_string(adam_->params().size()) + " tensors, shapes hash " +
                        std::to_string(Fnv1a(shapes.str()))}},
                  "every rank must build the same model");
  int64_t numbers[4] = {position_.step, position_.epoch, position_.batch, adam_->steps()};
  control_.Broadcast(numbers, sizeof(numbers), 0, "run position broadcast");
  position_ = RunPosition{numbers[0], numbers[1], numbers[2]};
  adam_->set_steps(numbers[3]);
  std::vector<torch::Tensor> state = net_->parameters();  // frozen ones too: same model everywhere
  for (size_t i = 0; i < adam_->params().size(); ++i) {
    state.push_back(adam_->exp_avg(i));
    state.push_back(adam_->exp_avg_sq(i));
  }
  BroadcastTensors(tensors_, state, "root state broadcast");
}

// Replicas must stay bitwise equal; a difference means a broken rank or network.
void StyleRun::CheckReplicasAgree(int64_t step) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.17g", ParameterChecksum(net_));
  const auto all = control_.AllGather(text, "replica checksum allgather");
  for (int r = 1; r < control_.size(); ++r) {
    if (all[static_cast<size_t>(r)] != all[0]) {
      throw Error("style '" + style_.name + "': at step " + std::to_string(step) + " rank " +
                  std::to_string(r) + " of its group holds parameters with checksum " +
                  all[static_cast<size_t>(r)] + ", rank 0 holds " + all[0] +
                  ": the replicas diverged");
    }
  }
}

void StyleRun::WriteCheckpoint(const TensorDict& dict, int64_t step) {
  const std::string path = CheckpointPath(style_.output_dir, step);
  SaveTensorDict(dict, path);
  PruneCheckpoints(style_.output_dir, job_.checkpoint.keep);
  SF_LOG(kDebug) << "[" << style_.name << "] checkpoint " << path;
}

void StyleRun::WriteModel() {
  SaveTensorDict(ModelDict(net_, Info()), (fs::path(style_.output_dir) / "model.pt").string());
}

}  // namespace stylefleet
