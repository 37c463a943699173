#include "train/style_run.h"

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "checkpoint/checkpoint_files.h"
#include "common/cpu_info.h"
#include "common/error.h"
#include "common/fnv1a.h"
#include "common/log.h"
#include "data/image.h"
#include "data/image_tensor.h"
#include "runtime/group_ops.h"
#include "train/run_settings.h"

namespace stylefleet {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

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
  if (!device.is_cpu() || CpuHasBf16()) return Precision::kBf16;
  static bool warned = false;
  if (!warned) {
    SF_LOG(kWarning) << "training.precision bf16: this CPU has no BF16 instructions (avx512_bf16 "
                        "or amx_bf16), where bf16 would be slower than fp32; training in fp32";
    warned = true;
  }
  return Precision::kFp32;
}

StyleRun::StyleRun(const StyleRunContext& context, const StyleSpec& style)
    : context_(context),
      job_(*context.job),
      style_(style),
      control_(context.runtime->control()),
      tensors_(context.runtime->tensors()),
      root_(control_.rank() == 0),
      outputs_(style.output_dir, style.name, style.training.style_layers) {
  loss_use_.content_layers = VggLayerIndices(job_.loss_network.content_layers);
  loss_use_.style_layers = VggLayerIndices(style.training.style_layers);
  loss_use_.precision = EffectivePrecision(style.training.precision, context.runtime->device());
  const TrainingOptions& t = style.training;
  weights_ = {t.content_weight, t.style_weight, t.tv_weight};
}

bool StyleRun::Prepare() {
  const TrainingOptions& t = style_.training;
  RunOnRoot(control_, "output folder claim", [&] {
    ClaimOutputDir(style_.output_dir, job_.name, style_.name, style_.sweep, style_.swept);
    // What this run trains with, for the next resume to compare (train/preflight.h).
    RecordRunSettings(style_.output_dir, RunSettings(job_, style_, control_.size()));
  });
  ComputeStyleGrams();
  BuildModel();
  RunOnRoot(control_, "checkpoint resume", [&] { position_ = Resume(); });
  BroadcastRootState();
  per_epoch_ = static_cast<int64_t>(context_.files->size()) / control_.size() / t.batch_size;
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
    outputs_.PrepareValidation(job_.data, *context_.files, context_.runtime->device());
    outputs_.WriteFinalImages(net_);
  });
  return false;
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
  }
  // A sweep's runs carry its name and their swept values as labels, so that
  // dashboards can put the runs of one sweep side by side.
  std::vector<std::pair<std::string, std::string>> labels;
  if (!style_.sweep.empty()) {
    labels.emplace_back("sweep", style_.sweep);
    labels.insert(labels.end(), style_.swept.begin(), style_.swept.end());
  }
  context_.metrics->StyleStarted(style_.name, style_.training.style_layers, context_.group_index,
                                 root_, labels);
  if (root_) {
    outputs_.TrimMetrics(position_.step);
    outputs_.PrepareValidation(job_.data, *context_.files, context_.runtime->device());
  }
  run_start_ = Clock::now();
}

StepStyle StyleRun::ForStep(int64_t step) {
  StepStyle s;
  s.net = &net_;
  s.adam = adam_.get();
  s.buckets = buckets_.get();
  s.target = StyleLossTarget{&style_grams_, weights_, &loss_use_.style_layers};
  s.fault = FaultAt(step);
  return s;
}

InjectedFault StyleRun::FaultAt(int64_t step) const {
  const std::string here = style_.name + ":" + std::to_string(step) + ":";
  for (const std::string& entry : context_.options->inject_faults) {
    if (entry.compare(0, here.size(), here) == 0)
      return InjectedFaultNamed(entry.substr(here.size()));
  }
  return InjectedFault::kNone;
}

bool StyleRun::Injected(const std::vector<std::string>& faults, int64_t step) const {
  return std::find(faults.begin(), faults.end(), style_.name + ":" + std::to_string(step)) !=
         faults.end();
}

void StyleRun::AfterStep(const RunPosition& position, const StyleStepValues& values,
                         const StepTiming& timing) {
  const TrainingOptions& t = style_.training;
  position_ = position;
  ++steps_this_run_;
  window_seconds_ += timing.seconds;
  window_images_ += timing.images;
  const double eta = timing.average_seconds * double(total_steps_ - position.step);
  ReportStep(position, values, timing, eta);
  const bool last = position.step == total_steps_;
  if (Injected(context_.options->perturb_replica, position.step)) {
    torch::NoGradGuard no_grad;
    net_->parameters().front().add_(1e-3);
  }
  // Also at the last step when the periodic check is off: a model whose
  // replicas diverged is never written as if it were fine.
  if (control_.size() > 1 && (Due(position.step, job_.distributed.check_every_steps) || last)) {
    CheckReplicasAgree(position.step);
  }
  if (Due(position.step, t.log_every_steps)) {
    if (timing.tty) std::printf("\n");
    StepRecord record{position.step,
                      total_steps_,
                      position.epoch,
                      values,
                      window_images_ / std::max(window_seconds_, 1e-9),
                      eta,
                      timing.skipped_files,
                      control_.size()};
    RunOnRoot(control_, "metrics record", [&] { outputs_.Record(record); });
    window_seconds_ = 0;
    window_images_ = 0;
  }
  if (Due(position.step, t.preview_every_steps)) {
    RunOnRoot(control_, "preview write", [&] { outputs_.WritePreview(net_, position.step); });
  }
  CountBadStep(position.step, values.bad);
  if (!timing.stopping && (Due(position.step, job_.checkpoint.every_steps) || last)) {
    RunOnRoot(control_, "checkpoint write", [&] { WriteCheckpoint(position); });
    if (root_) {
      context_.metrics->CheckpointWritten(
          style_.name,
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count());
    }
  }
}

void StyleRun::StopHere() {
  RunOnRoot(control_, "checkpoint write", [&] { WriteCheckpoint(position_); });
  if (root_) {
    SF_LOG(kWarning) << "[" << style_.name << "] stop signal: checkpoint written at step "
                     << position_.step << "; run the same command to resume";
  }
}

void StyleRun::Finish() {
  // One root action: WriteFinalImages never throws, so it needs no report of its own.
  RunOnRoot(control_, "model write", [&] {
    WriteModel();
    outputs_.WriteFinalImages(net_);
  });
  context_.metrics->StyleFinished(style_.name);
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

void StyleRun::ReportStep(const RunPosition& position, const StyleStepValues& values,
                          const StepTiming& timing, double eta) {
  if (root_) {
    StepReport report;
    report.step = position.step;
    report.total_steps = total_steps_;
    report.images = timing.images;
    report.epoch = timing.epoch;
    report.content = values.content;
    report.style = values.style;
    report.tv = values.tv;
    report.total = values.total;
    report.content_weight = weights_.content;
    report.style_weight = weights_.style;
    report.tv_weight = weights_.tv;
    report.style_layers = values.style_layers;
    report.learning_rate = style_.training.learning_rate;
    report.step_seconds = timing.seconds;
    report.data_wait_seconds = timing.data_wait;
    report.allreduce_seconds = timing.allreduce_seconds;
    report.eta_seconds = eta;
    context_.metrics->StepDone(style_.name, report);
  }
  if (timing.tty) {
    PrintProgress(style_.name, position.step, total_steps_, values.total,
                  timing.images / std::max(timing.seconds, 1e-9), eta);
  }
}

void StyleRun::CountBadStep(int64_t step, bool bad) {
  if (!bad) {
    bad_in_a_row_ = 0;
    return;
  }
  const int limit = style_.training.max_bad_steps;
  ++bad_in_a_row_;
  if (root_) {
    SF_LOG(kWarning) << "[" << style_.name << "] step " << step
                     << ": NaN or infinite loss or gradient; step skipped (" << bad_in_a_row_
                     << " in a row, limit " << limit << ")";
  }
  context_.metrics->BadStep(style_.name);
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

void StyleRun::ComputeStyleGrams() {
  DecodeOptions decode;
  decode.max_pixels = job_.data.max_image_pixels;
  RgbImage image;
  try {
    image = ResizeCenterCrop(LoadImageFile(style_.image, decode), style_.training.style_image_size);
  } catch (const DataError& e) {
    throw DataError("style '" + style_.name + "': bad style image: " + e.what());
  }
  style_grams_ = StyleGrams(*context_.vgg, ImageToTensor(image).to(context_.runtime->device()),
                            loss_use_.style_layers, loss_use_.precision);
}

// Same initial weights for the same job seed and style name, wherever it runs.
void StyleRun::BuildModel() {
  net_ = TransformerNet();
  // The runs of a sweep start from the same weights (seeded by the swept
  // style's name), so that they differ only by the swept values.
  uint64_t seed = job_.seed ^ Fnv1a(style_.sweep.empty() ? style_.name : style_.sweep);
  const auto& reseeded = context_.options->reseed_initial_model;
  if (std::find(reseeded.begin(), reseeded.end(), style_.name) != reseeded.end()) {
    seed += 1 + static_cast<uint64_t>(control_.rank());  // test only: a rank with a wrong seed
  }
  InitializeTransformer(net_, seed);
  net_->to(context_.runtime->device());
  net_->train();
  const std::vector<torch::Tensor> trainable = TrainableTensors(net_);
  adam_ = std::make_unique<Adam>(trainable, style_.training.learning_rate);
  buckets_ = std::make_unique<GradientBuckets>(
      trainable, static_cast<size_t>(job_.distributed.bucket_mb * 1024 * 1024));
}

RunPosition StyleRun::Resume() {
  for (const auto& path : ListCheckpoints(style_.output_dir)) {
    try {
      const TensorDict dict = LoadTensorDict(path);
      const RunPosition position = RestoreCheckpoint(dict, path, net_, *adam_);
      SF_LOG(kInfo) << "[" << style_.name << "] resuming from " << path << " (step "
                    << position.step << ")";
      return position;
    } catch (const DataError& e) {
      SF_LOG(kWarning) << "[" << style_.name << "] ignoring unreadable checkpoint: " << e.what();
    }
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

void StyleRun::WriteCheckpoint(const RunPosition& position) {
  const std::string path = CheckpointPath(style_.output_dir, position.step);
  SaveTensorDict(CheckpointDict(net_, *adam_, position,
                                ModelInfo{job_.name, style_.name, job_.data.image_size}),
                 path);
  PruneCheckpoints(style_.output_dir, job_.checkpoint.keep);
  SF_LOG(kDebug) << "[" << style_.name << "] checkpoint " << path;
}

void StyleRun::WriteModel() {
  SaveTensorDict(ModelDict(net_, ModelInfo{job_.name, style_.name, job_.data.image_size}),
                 (fs::path(style_.output_dir) / "model.pt").string());
}

}  // namespace stylefleet
